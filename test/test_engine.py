import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import assert_same_to_a_grey_level
from pcnet_ros.core.backends import BackendError, cpu_has_native_bf16, openvino_available
from pcnet_ros.core.engine import (DerainEngine, InputError, pad_to_multiple, residue_to_image, resolve_device,
                                   SIZE_BUCKET)
from pcnet_ros.core.model import SIZE_MULTIPLE


@pytest.fixture
def engine(tiny_model):
    return DerainEngine(tiny_model, device="cpu")


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 7), (37, 53), (64, 48)])
def test_pad_then_crop_is_lossless(h, w):
    x = torch.rand(1, 3, h, w)
    p, h0, w0 = pad_to_multiple(x)
    assert p.shape[-2] % SIZE_MULTIPLE == 0 and p.shape[-1] % SIZE_MULTIPLE == 0
    assert torch.equal(p[..., :h0, :w0], x)


@pytest.mark.parametrize("shape", [(37, 53, 3), (1, 1, 3), (6, 10, 3), (33, 17, 4), (21, 19), (21, 19, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_shapes_and_residue_identity(engine, rng, shape, dtype):
    img = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    res = engine.derain(img)
    expect = shape
    assert res.clean.shape == expect and res.clean.dtype == dtype
    # clean + residue == rainy, exactly (no rounding slack needed: residue is int32)
    np.testing.assert_array_equal(res.clean.astype(np.int64) + res.residue, img.reshape(expect).astype(np.int64))
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(res.clean[:, :, 3], img[:, :, 3])  # alpha untouched
        assert not res.residue[:, :, 3].any()


def test_bgr_flag_is_a_channel_swap(engine, rng):
    rgb = rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    a = engine.derain(rgb).clean
    b = engine.derain(rgb[:, :, ::-1].copy(), bgr=True).clean
    np.testing.assert_array_equal(a, b[:, :, ::-1])


@pytest.mark.parametrize("bad, why", [
    (np.zeros((0, 5, 3), np.uint8), "non-empty"),
    (np.zeros((4, 4, 2), np.uint8), "channel count 2"),
    (np.zeros((4, 4, 3), np.float32), "dtype float32"),
    (np.zeros((2, 4, 4, 3), np.uint8), "HxW"),
    ([[1, 2]], "numpy array"),
])
def test_refuses_bad_input_clearly(engine, bad, why):
    with pytest.raises(InputError, match=why):
        engine.derain(bad)


def test_matches_float64_reference_within_1e4(rng):
    from pcnet_ros.core.model import PCNet

    torch.manual_seed(3)
    model = PCNet().eval()           # full-size network: 20 CRBs
    ref_model = PCNet().eval()
    ref_model.load_state_dict(model.state_dict())
    ref_model = ref_model.double()
    engine = DerainEngine(model, device="cpu", channels_last=True)
    x = torch.from_numpy(rng.random((1, 3, 45, 62)))
    with torch.inference_mode():
        got = engine.forward_tensor(x.float()).double()
        xp, h, w = pad_to_multiple(x, SIZE_BUCKET)      # the engine buckets sizes to multiples of 32
        want = ref_model(xp)[0][..., :h, :w].clamp(0, 1)
    assert got.shape == x.shape
    assert (got - want).abs().max().item() < 1e-4


def test_residue_images():
    residue = np.array([[-10, 0, 3, 300]], np.int32)
    np.testing.assert_array_equal(residue_to_image(residue, np.uint8, "positive"), [[0, 0, 3, 255]])
    np.testing.assert_array_equal(residue_to_image(residue, np.uint8, "signed"), [[123, 128, 129, 255]])
    with pytest.raises(ValueError, match="unknown residue mode"):
        residue_to_image(residue, np.uint8, "bogus")


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_a_precision_the_device_cannot_run_is_an_error(tiny_model):
    """fp16 on a CPU was once ignored with a warning: now it stops, saying what to use."""
    with pytest.raises(BackendError, match="fp16 runs on CUDA"):
        DerainEngine(tiny_model, device="cpu", precision="fp16", backend="eager")
    if not cpu_has_native_bf16():
        with pytest.raises(BackendError, match="native bf16"):
            DerainEngine(tiny_model, device="cpu", precision="bf16", backend="openvino")
    with pytest.raises(ValueError, match="unknown precision"):
        DerainEngine(tiny_model, device="cpu", precision="int8")


def test_openvino_bf16_runs_close_to_fp32_where_the_cpu_has_it(tiny_model, rng):
    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (the engine refuses it: tested above)")
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    fp32 = DerainEngine(tiny_model, device="cpu", backend="openvino").derain(img).clean.astype(int)
    bf16 = DerainEngine(tiny_model, device="cpu", backend="openvino", precision="bf16").derain(img)
    diff = np.abs(bf16.clean.astype(int) - fp32)
    assert diff.max() <= 8 and diff.mean() < 1.0                  # bf16 keeps 8 bits of mantissa
    assert diff.any()                                              # and it did run in bf16, not fp32
    np.testing.assert_array_equal(bf16.clean.astype(np.int32) + bf16.residue, img)


@pytest.mark.parametrize("shape", [(40, 64, 3), (40, 64, 1), (40, 64, 4), (40, 64)])
def test_downscaled_path_keeps_size_and_identity(engine, rng, shape):
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    res = engine.derain_downscaled(img, max_side=16)
    assert res.clean.shape == img.shape
    np.testing.assert_array_equal(res.clean.astype(np.int32) + res.residue, img)
    same = engine.derain_downscaled(img, max_side=64)   # within the limit: the ordinary path
    np.testing.assert_array_equal(same.clean, engine.derain(img).clean)


def test_a_batch_over_max_side_runs_each_frame_downscaled(engine, rng):
    """What pcnet-derain, pcnet-bag and the node's worker rely on for --max-side / max_input_size."""
    big = [rng.integers(0, 256, size=(40, 64, 3), dtype=np.uint8) for _ in range(2)]
    for img, res in zip(big, engine.derain_batch(big, max_side=16)):
        np.testing.assert_array_equal(res.clean, engine.derain_downscaled(img, max_side=16).clean)
        assert not np.array_equal(res.clean, engine.derain(img).clean)          # not the full-size pass
    for img, res in zip(big, engine.derain_batch(big, max_side=64)):       # within it: the batch as before
        assert_same_to_a_grey_level(res.clean, engine.derain(img).clean)


def test_a_negative_max_side_is_refused_not_run_at_1x1(engine, rng):
    img = rng.integers(0, 256, size=(40, 64, 3), dtype=np.uint8)
    for run in (lambda side: engine.derain_batch([img], max_side=side)[0],
                lambda side: engine.derain_downscaled(img, max_side=side)):
        with pytest.raises(InputError, match="max_side -1 is negative"):
            run(-1)
        np.testing.assert_array_equal(run(0).clean, engine.derain(img).clean)     # 0: never downscale


@pytest.mark.parametrize("backend", ["onnxruntime", "compile", "openvino"])
def test_backends_match_eager(tiny_model, rng, backend):
    pytest.importorskip(backend) if backend in ("onnxruntime", "openvino") else None
    eager = DerainEngine(tiny_model, device="cpu")
    other = DerainEngine(tiny_model, device="cpu", backend=backend)
    for shape in [(24, 36, 3), (31, 17, 3)]:      # ORT graph has dynamic H, W; compile recompiles
        x = torch.from_numpy(rng.random((1, 3) + shape[:2])).float()
        with torch.inference_mode():
            assert (eager.forward_tensor(x) - other.forward_tensor(x)).abs().max().item() < 1e-4


def test_unknown_backend(tiny_model):
    with pytest.raises(ValueError, match="unknown backend"):
        DerainEngine(tiny_model, device="cpu", backend="tensorrt")


def test_auto_backend_is_openvino_on_a_cpu_where_installed(tiny_model):
    pytest.importorskip("openvino")
    assert DerainEngine(tiny_model, device="cpu", backend="auto").backend == "openvino"


def test_default_batch_follows_what_pays_on_the_device(tiny_model):
    assert DerainEngine(tiny_model, device="cpu", backend="eager").default_batch == 1
    if openvino_available():
        assert DerainEngine(tiny_model, device="cpu", backend="openvino").default_batch == 4


def test_openvino_compiles_per_size_and_keeps_a_bounded_cache(tiny_model, rng, monkeypatch):
    pytest.importorskip("openvino")
    from pcnet_ros.core import backends

    monkeypatch.setattr(backends, "OPENVINO_CACHE", 2)
    e = DerainEngine(tiny_model, device="cpu", backend="openvino")
    ref = DerainEngine(tiny_model, device="cpu", backend="eager")
    for h, w in [(24, 36), (70, 40), (100, 130), (24, 36)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert_same_to_a_grey_level(e.derain(img).clean, ref.derain(img).clean)


@pytest.mark.parametrize("backend", ["eager", "openvino"])
def test_batch_equals_one_at_a_time(tiny_model, rng, backend):
    """openvino runs a batch as single frames over its throughput streams: each must come back in its place."""
    pytest.importorskip(backend) if backend == "openvino" else None
    e = DerainEngine(tiny_model, device="cpu", backend=backend)
    imgs = [rng.integers(0, 256, (30, 44, 3), dtype=np.uint8) for _ in range(5)]   # more frames than streams
    batch = e.derain_batch(imgs)
    for img, got in zip(imgs, batch):
        one = e.derain(img)
        assert_same_to_a_grey_level(got.clean, one.clean)
        np.testing.assert_array_equal(got.clean.astype(np.int32) + got.residue, img)
    with pytest.raises(InputError, match="one size and type"):
        e.derain_batch([imgs[0], imgs[0][:20]])


def test_a_size_capped_after_running_out_of_memory_runs_in_smaller_calls_with_the_same_answers(tiny_model):
    """pass_cap (learned on CUDA when a call runs out of memory; test_cuda runs that) splits the frames x views of
    one call into calls of at most the cap for that padded size; other sizes still run whole."""
    e = DerainEngine(tiny_model, device="cpu", flip_average=True, flip_axes="both")
    x = torch.rand(3, 3, 30, 45, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        whole = e.forward_tensor(x)
        calls, run = [], e._run
        e._run = lambda t: calls.append(t.shape[0]) or run(t)
        e.pass_cap[(32, 64)] = 5
        got = e.forward_tensor(x)
        assert calls == [5, 5, 2]
        torch.testing.assert_close(got, whole, atol=1e-5, rtol=0)
        calls.clear()
        e.forward_tensor(torch.rand(3, 3, 40, 45))
        assert calls == [12]


def test_a_call_that_runs_out_of_memory_is_halved_until_it_fits_and_the_size_remembered(tiny_model, caplog):
    """The retry loop, on a runner that, like a small GPU, raises torch.OutOfMemoryError over 4 images a call (a
    real one on CUDA: test_cuda); a frame whose views alone do not fit still raises, to be reported as failed."""
    e = DerainEngine(tiny_model, device="cpu", flip_average=True, flip_axes="both")
    x = torch.rand(3, 3, 30, 45, generator=torch.Generator().manual_seed(9))
    run, room, calls = e._run, [4], []

    def small_gpu(t):
        calls.append(t.shape[0])
        if t.shape[0] > room[0]:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return run(t)

    with torch.inference_mode():
        whole = e.forward_tensor(x)
        e._run = small_gpu
        torch.testing.assert_close(e.forward_tensor(x), whole, atol=1e-5, rtol=0)
        assert calls == [12, 6, 3, 3, 3, 3] and e.pass_cap == {(32, 64): 3}
        assert "running 6 at a time" in caplog.text and "running 3 at a time" in caplog.text
        assert "out of cpu memory at 12 images of 64x32 a call" in caplog.text     # names the device that ran out
        calls.clear()
        e.forward_tensor(x)
        assert calls == [3, 3, 3, 3]                       # remembered: no failed call first
        room[0] = 0
        with pytest.raises(torch.OutOfMemoryError):
            e.forward_tensor(x)
        assert e.pass_cap == {(32, 64): 1}


ORT_CAPPED_ARENA = """
import sys, onnxruntime as ort, torch
from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.model import PCNet
info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
torch.manual_seed(0)
model = PCNet(n_feat=8, num_crb=1, num_rcab=1).eval()
x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(3))
with torch.inference_mode():
    whole = DerainEngine(model, device="cpu").forward_tensor(x)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg({"max_mem": 3_000_000, "arena_extend_strategy": 1}))
    e = DerainEngine(model, device="cpu", backend="onnxruntime")
    got = e.forward_tensor(x)
print("cap", e.pass_cap.get((64, 64), 0), "diff", (got - whole).abs().max().item())
"""


def test_onnxruntime_running_out_of_memory_halves_the_call_like_torch(tmp_path):
    """ONNX Runtime has no error type for a failed allocation: its arena's message is turned into
    torch.OutOfMemoryError, so the engine halves the call (as on CUDA) instead of failing every frame.  Run for real,
    in a process of its own, on a CPU arena capped at 3 MB (registered allocators stay for the process's life):
    8 images of 64x64 need more, one fits (about 0.5-1 MB each with ORT 1.32)."""
    pytest.importorskip("onnxruntime")
    done = subprocess.run([sys.executable, "-c", ORT_CAPPED_ARENA], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PCNET_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    cap, diff = re.search(r"cap (.*) diff (\S+)", done.stdout).groups()
    assert 0 < int(cap) < 8 and float(diff) < 1e-4, done.stdout       # halved, every image answered the same
    assert "is smaller than requested bytes" in done.stderr           # ORT's own arena refused, nothing faked


@pytest.mark.parametrize("backend, folder, pattern",
                         [("openvino", "openvino", "*.xml"), ("onnxruntime", "onnx", "*.onnx")])
def test_converted_graph_is_cached_on_disk(tiny_model, rng, tmp_path, monkeypatch, backend, folder, pattern):
    """Conversion traces the whole network (torch.export takes about 20 s): a node restart must not pay it again."""
    pytest.importorskip(backend)
    monkeypatch.setenv("PCNET_CACHE_DIR", str(tmp_path))
    img = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    first = DerainEngine(tiny_model, device="cpu", backend=backend).derain(img).clean
    [graph] = list((tmp_path / folder).glob(pattern))
    stamp = graph.stat().st_mtime_ns
    again = DerainEngine(tiny_model, device="cpu", backend=backend).derain(img).clean
    assert graph.stat().st_mtime_ns == stamp                    # read back, not converted again
    np.testing.assert_array_equal(first, again)
    graph.write_bytes(graph.read_bytes()[:100])                 # a damaged entry is converted again
    np.testing.assert_array_equal(DerainEngine(tiny_model, device="cpu", backend=backend).derain(img).clean, first)
    assert graph.stat().st_size > 100


def test_openvino_disk_cache_keeps_only_the_newest_models(rng, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from pcnet_ros.core import backends
    from pcnet_ros.core.model import PCNet

    monkeypatch.setenv("PCNET_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "DISK_CACHE", 2)
    for seed in range(3):                                # three different weights, e.g. untrained test models
        torch.manual_seed(seed)
        DerainEngine(PCNet(n_feat=8, num_crb=1, num_rcab=1), device="cpu", backend="openvino")
    assert len(list((tmp_path / "openvino").glob("*.xml"))) == 2
    assert len(list((tmp_path / "openvino").glob("*.bin"))) == 2


@pytest.mark.parametrize("backend", ["eager", "openvino"])
def test_flip_average_is_the_mean_of_the_frame_and_its_mirror(tiny_model, rng, backend):
    """Each frame of a batch gets the mean of its own answer and its mirror's answer mirrored back."""
    pytest.importorskip(backend) if backend == "openvino" else None
    plain = DerainEngine(tiny_model, device="cpu", backend=backend)
    flip = DerainEngine(tiny_model, device="cpu", backend=backend, flip_average=True)
    assert (plain.passes, flip.passes) == (1, 2) and "flip-averaged" in flip.describe()
    x = torch.rand(2, 3, 30, 45, generator=torch.Generator().manual_seed(5))   # odd width: the crop must line up
    with torch.inference_mode():
        want = (plain.forward_tensor(x) + plain.forward_tensor(x.flip(-1)).flip(-1)) / 2
        got = flip.forward_tensor(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want.clamp(0, 1), atol=1e-5, rtol=0)
    assert (got - plain.forward_tensor(x)).abs().max() > 1e-3       # the mirror changes the answer
    img = rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)
    res = flip.derain(img)
    np.testing.assert_array_equal(res.clean.astype(np.int32) + res.residue, img)


def test_flip_axes_both_averages_four_views_and_answers_alike_for_any_of_them(tiny_model):
    """flip_axes="both": the mean of the answers as it is, mirrored, upside down and turned half round, each
    flipped back; so a frame's flipped copy gets the flipped answer, which the mirror alone does not give."""
    plain = DerainEngine(tiny_model, device="cpu")
    mirror = DerainEngine(tiny_model, device="cpu", flip_average=True)
    both = DerainEngine(tiny_model, device="cpu", flip_average=True, flip_axes="both")
    assert both.passes == 4 and "flip-averaged (both, 4 views)" in both.describe()
    x = torch.rand(2, 3, 30, 45, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        want = sum(plain.forward_tensor(x.flip(d)).flip(d) if d else plain.forward_tensor(x)
                   for d in ((), (-1,), (-2,), (-2, -1))) / 4
        torch.testing.assert_close(both.forward_tensor(x), want, atol=1e-5, rtol=0)
        square = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))   # no padding to break symmetry
        for engine, gap in ((both, 1e-5), (mirror, None)):
            upside_down = engine.forward_tensor(square.flip(-2)).flip(-2)
            diff = (upside_down - engine.forward_tensor(square)).abs().max()
            assert diff <= gap if gap else diff > 1e-3, (engine.describe(), diff)
    with pytest.raises(ValueError, match="flip_axes"):
        DerainEngine(tiny_model, device="cpu", flip_axes="diagonal")
