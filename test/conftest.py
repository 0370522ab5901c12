import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

# Keep torch from fighting the DDS threads and the other core on a 2-core CI box.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_model():
    """A PCNet with the real block structure but 2 CRBs: fast enough for many tests."""
    from pcnet_ros.model import PCNet

    torch.manual_seed(0)
    return PCNet(n_feat=16, num_crb=2, num_rcab=1).eval()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_or_skip(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p
