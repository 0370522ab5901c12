"""pcnet-bench's work count: GFLOP/s and the fraction of peak are only as true as the FLOPs they divide."""
import pytest

from pcnet_ros.core.model import PCNet
from pcnet_ros.tools.bench import pcnet_gflop


def test_gflop_counts_the_paper_model_and_the_engines_lighter_pass():
    m = PCNet()
    full, clean = pcnet_gflop(m, 320, 480), pcnet_gflop(m, 320, 480, clean_only=True)
    assert full == pytest.approx(16.107, abs=1e-3)            # the 16.1 GFLOP of issue 12 at 480x320
    # the engines skip UP_R (a 3x3 transposed conv, 32 -> 32, from 240x160), recon_R (3x3, 32 -> 3 at 480x320)
    # and the re-rendering gate's two 1x1 convs (3 -> 32 -> 3 on the pooled 1x1 image)
    up_r = 2 * 32 * 160 * 240 * 32 * 9
    recon_r = 2 * 3 * 320 * 480 * 32 * 9
    gate = 2 * 32 * 3 + 2 * 3 * 32
    assert full - clean == pytest.approx((up_r + recon_r + gate) / 1e9, rel=1e-12)
