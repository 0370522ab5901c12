from contextlib import contextmanager
import os
from pathlib import Path
import resource
import signal
import struct

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
    from pcnet_ros.core.model import PCNet

    torch.manual_seed(0)
    return PCNet(n_feat=16, num_crb=2, num_rcab=1).eval()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def scene(rng, h=64, w=64):
    """A smooth random 'photo': low-frequency colour blobs."""
    import cv2

    small = rng.integers(0, 256, size=(4, 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def forged_jpeg(height: int, width: int) -> bytes:
    """A real 64x64 JPEG whose frame header claims ``height`` x ``width``: a few hundred bytes that a decoder
    expands to the full claimed size."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
    data, i = bytearray(buf.tobytes()), 2
    while data[i + 1] != 0xC0:
        i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture
def pair_dir(tmp_path, rng):
    """Six small rain/clean pairs with synthesized light rain: a real folder for the training tools."""
    from pcnet_ros.imageio import write_rgb
    from pcnet_ros.training import rain

    for i in range(6):
        clean = scene(rng)
        write_rgb(tmp_path / "clean" / f"{i}.png", clean)
        write_rgb(tmp_path / "rain" / f"{i}.png", rain.add_rain(clean, rain.random_params(rng, "light"), rng))
    return tmp_path


def assert_same_to_a_grey_level(a: np.ndarray, b: np.ndarray) -> None:
    """The same weights summing in another order (a batch against single frames, another process, another
    backend) may round a pixel the other way (CI saw one of 3,888 do so); anything more is a real difference,
    such as frames out of place."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def shared_or_skip(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


def zero_a_stretch(bag: Path) -> None:
    """Zero the middle sixth of a bag's one MCAP file, as a bad sector would: rosbags' MCAP reader then stops
    there without an error."""
    [data] = list(bag.glob("*.mcap"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 3: len(raw) // 2] = bytes(len(raw) // 2 - len(raw) // 3)
    data.write_bytes(bytes(raw))


@contextmanager
def file_size_limit(nbytes: int):
    """A full disk, made real: writes by this process, and by processes it starts meanwhile, fail with EFBIG past
    ``nbytes`` (SIGXFSZ ignored, so the write returns an error instead of killing the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


# DDS traffic must stay on this machine: `make test` runs inside scripts/isolated-net (a private
# network namespace). Run directly, keep discovery on localhost and on a per-run domain.
ISOLATED_NET = os.environ.get("PCNET_ISOLATED_NET") == "1"
if not ISOLATED_NET:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(20 + os.getpid() % 80)


@pytest.fixture(scope="session")
def graph():
    from ros_harness import Graph

    g = Graph()
    yield g
    g.close()
