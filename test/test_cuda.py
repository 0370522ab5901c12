"""What only a GPU runs: the pinned-memory upload, fp16/bf16 inference, the compiled backend and training on CUDA.

Skipped where torch sees no GPU (CI); run on a lent GPU machine with ``pytest test/test_cuda.py``.
"""

import time

import numpy as np
import pytest
import torch

from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.weights import build_model
from pcnet_ros.ros.worker import Decoded, DerainWorker, Outcome, Settings
from pcnet_ros.training import train
from pcnet_ros.training.metrics import psnr
from pcnet_ros.training.run_log import read_run_log

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _frames(rng, n=2, h=320, w=480):
    """Smooth scenes with bright streaks: real-looking input for the shipped weights."""
    import cv2

    out = []
    for _ in range(n):
        small = rng.integers(0, 256, size=(6, 8, 3)).astype(np.float32)
        img = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
        for _ in range(150):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.line(img, (x, y), (x + 3, y + 20), (230, 230, 230), 1)
        out.append(img)
    return out


@pytest.fixture(scope="module")
def light():
    return build_model("light")[0]


def test_cuda_fp32_matches_the_cpu(light, rng):
    frames = _frames(rng)
    cpu = DerainEngine(build_model("light")[0], device="cpu")
    gpu = DerainEngine(light, device="cuda")
    assert gpu.device.type == "cuda" and gpu.default_batch == 4
    for a, b in zip(cpu.derain_batch(frames), gpu.derain_batch(frames)):
        assert np.abs(a.clean.astype(int) - b.clean.astype(int)).max() <= 2     # rounding of ~1e-5 differences
        assert psnr(a.clean, b.clean) > 55


def test_on_cuda_only_the_host_copies_count_against_the_memory_budget(light, rng, monkeypatch):
    """Four 1080p frames need about 400 MB of host copies, 6 GB with their model passes on a CPU: under a 512 MB
    max_frame_memory_mb they run as one batch on CUDA, where running out raises instead of killing the node."""
    engine = DerainEngine(light, device="cuda")
    published = []
    w = DerainWorker(engine, ["/a", "/b", "/c", "/d"], lambda img: Decoded(img, False, "rgb8"),
                     lambda camera, *rest: published.append(camera), Settings(max_frame_memory_mb=512),
                     warmup=False, max_batch=4)
    calls = []
    real = engine.derain_batch
    monkeypatch.setattr(engine, "derain_batch",
                        lambda imgs, bgr=False, max_side=0: calls.append(len(imgs)) or real(imgs, bgr, max_side))
    frames = _frames(rng, 4, 1080, 1920)
    assert w.process_many([(c, f, time.monotonic()) for c, f in enumerate(frames)]) == [Outcome.DERAINED] * 4
    assert calls == [4] and sorted(published) == [0, 1, 2, 3]


def test_running_out_of_gpu_memory_halves_the_call_and_keeps_every_frame(light, rng):
    """Four 720p frames in four flip views each are 16 images a call. Capped to about 1.5x what one frame's four
    views need, the GPU runs out: the call is halved until it fits, the cap is kept for that size, and every frame
    comes back as it does alone."""
    engine = DerainEngine(light, device="cuda", flip_average=True, flip_axes="both")
    frames = _frames(rng, 4, 720, 1280)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    alone = [engine.derain(f).clean for f in frames]
    peak = torch.cuda.max_memory_allocated()
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(1.5 * peak / torch.cuda.get_device_properties(0).total_memory)
    try:
        together = engine.derain_batch(frames)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert list(engine.pass_cap) == [(736, 1280)] and engine.pass_cap[(736, 1280)] in (2, 4)
    for a, b in zip(alone, together):
        assert np.abs(a.astype(int) - b.clean.astype(int)).max() <= 1


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_half_precisions_stay_close_to_fp32(rng, precision):
    frames = _frames(rng)
    ref = DerainEngine(build_model("light")[0], device="cuda").derain_batch(frames)
    half = DerainEngine(build_model("light")[0], device="cuda", precision=precision).derain_batch(frames)
    for frame, a, b in zip(frames, ref, half):
        assert psnr(a.clean, b.clean) > (40 if precision == "fp16" else 33)
        np.testing.assert_array_equal(b.clean.astype(np.int32) + b.residue, frame)


def test_cuda_compiled_backend_matches_eager(rng):
    x = torch.from_numpy(rng.random((2, 3, 96, 128))).float()
    eager = DerainEngine(build_model("light")[0], device="cuda")
    compiled = DerainEngine(build_model("light")[0], device="cuda", backend="compile")
    with torch.inference_mode():
        assert (eager.forward_tensor(x) - compiled.forward_tensor(x)).abs().max().item() < 1e-3


def test_cuda_uint16_frames_round_trip(light, rng):
    img = (rng.random((64, 96, 3)) * 65535).astype(np.uint16)
    res = DerainEngine(light, device="cuda").derain(img)
    assert res.clean.dtype == np.uint16
    np.testing.assert_array_equal(res.clean.astype(np.int64) + res.residue, img)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_training_lowers_the_loss(pair_dir, tmp_path, precision):
    out = tmp_path / precision
    assert train.main(["--data", str(pair_dir), "--out", str(out), "--batch", "4", "--patch", "32", "--lr", "2e-3",
                       "--model-size", "tiny", "--log-every", "1", "--eval-every", "20", "--quiet",
                       "--device", "cuda", "--steps", "40", "--val-every", "3", "--precision", precision]) == 0
    losses = [r["loss"] for r in read_run_log(out)]
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.02
    ck = torch.load(out / "last.pth", map_location="cpu", weights_only=False)
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())   # weights stay fp32
    assert [h["step"] for h in ck["state"]["history"]] == [20, 40]     # validated on the GPU model
