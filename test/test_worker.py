"""DerainWorker's per-frame rules and counters, without DDS: every frame ends as exactly one counted outcome."""
import time

import numpy as np
import pytest

from pcnet_ros.core.backends import openvino_available
from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.memory_budget import estimate_frame_bytes
from pcnet_ros.ros.image_codec import MalformedImage
from pcnet_ros.ros.stats import SequenceGaps
from pcnet_ros.ros.worker import Decoded, DerainWorker, Outcome, OutputsClosed, Settings


class Sink:
    """Collects what the worker publishes; can be told to fail."""

    def __init__(self):
        self.items, self.fail_with = [], None

    def __call__(self, camera, payload, frame, result, settings):
        if self.fail_with is not None:
            raise self.fail_with
        self.items.append((camera, payload, result, settings))


def _decode(payload):
    if isinstance(payload, str):
        raise MalformedImage("short_data", payload)
    return Decoded(payload, bgr=False, encoding="rgb8")


@pytest.fixture
def worker(tiny_model):
    sink = Sink()
    w = DerainWorker(DerainEngine(tiny_model, device="cpu"), ["/a", "/b"], _decode, sink, Settings(), warmup=False)
    w.sink = sink
    return w


def _img(rng, h=24, w=32):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_derained_frames_are_published_with_their_result(worker, rng):
    img = _img(rng)
    assert worker.process(0, img, 0.0) is Outcome.DERAINED
    [(cam, payload, result, _)] = worker.sink.items
    assert cam == 0 and payload is img and result.clean.shape == img.shape
    np.testing.assert_array_equal(result.clean.astype(np.int32) + result.residue, img)
    assert worker.stats[0].published == 1


def test_pass_through_is_not_a_rejection(worker, rng):
    worker.settings = Settings(enabled=False)
    assert worker.process(1, "not even decoded", 0.0) is Outcome.PASSED_THROUGH
    [(_, payload, result, _)] = worker.sink.items
    assert payload == "not even decoded" and result is None          # the input itself goes out
    assert worker.stats[1].published == 1 and sum(worker.stats[1].rejected.values()) == 0


def test_a_pass_through_that_must_decode_keeps_a_memory_budget_and_rejects_junk(worker):
    """Compressed in, raw out, enabled=false: a few bytes may declare a frame that would not fit once decoded."""
    worker.settings = Settings(enabled=False, max_frame_memory_mb=512)
    assert worker.admit(0, 20000, 20000, 3)                            # no decode: the bytes go out as they are
    worker.passthrough_decodes = True
    assert not worker.admit(0, 20000, 20000, 3)                        # 2 x 1144 MB decoded
    assert worker.admit(0, 2160, 3840, 3)                              # a 4K frame: 47 MB
    assert worker.stats[0].rejected["oversize"] == 1
    worker.sink.fail_with = MalformedImage("bad_compressed", "not a JPEG")
    assert worker.process(1, b"junk", 0.0) is Outcome.REJECTED          # counted by reason, not as an error
    assert worker.stats[1].rejected["bad_compressed"] == 1 and worker.stats[1].errors == 0


def test_malformed_and_bad_input_are_rejected_by_reason(worker):
    assert worker.process(0, "cut short", 0.0) is Outcome.REJECTED
    assert worker.process(0, np.zeros((4, 4, 3), np.float32), 0.0) is Outcome.REJECTED
    assert dict(worker.stats[0].rejected) == {"short_data": 1, "bad_input": 1}
    assert worker.sink.items == []


def test_oversize_downscales_or_refuses(worker, rng):
    img = _img(rng, 40, 64)
    worker.settings = Settings(max_input_size=32)
    assert worker.process(0, img, 0.0) is Outcome.DERAINED
    assert worker.sink.items[-1][2].clean.shape == img.shape           # full size out
    worker.settings = Settings(max_input_size=32, oversize_policy="refuse")
    assert worker.process(0, img, 0.0) is Outcome.REJECTED
    assert worker.stats[0].rejected["oversize"] == 1
    assert not worker.admit(0, 40, 64, 3) and worker.stats[0].rejected["oversize"] == 2   # also at the callback


def test_a_huge_frame_is_refused_before_it_costs_memory(worker):
    """8000x8000 once needed 9.2 GB before the allocator failed; the defaults now refuse it up front."""
    s = Settings()
    assert s.max_input_size == 1920 and s.max_frame_memory_mb == 4096
    assert estimate_frame_bytes(8000, 8000, 3, 1920) > 4096 * 2**20
    assert not worker.admit(0, 8000, 8000, 3)
    assert worker.admit(0, 1080, 1920, 3)                              # a camera frame still fits
    assert worker.stats[0].rejected["oversize"] == 1
    worker.settings = Settings(enabled=False)
    assert worker.admit(0, 8000, 8000, 3)                              # pass-through never runs the model


def test_flip_averaging_counts_two_model_passes_against_the_memory_budget(worker):
    worker.settings = Settings(max_frame_memory_mb=2000)
    assert worker.admit(0, 1080, 1920, 3)                              # about 1.5 GB: one pass fits
    worker.engine.flip_average = True
    assert not worker.admit(0, 1080, 1920, 3)                          # about 2.9 GB: two do not
    assert worker.stats[0].rejected["oversize"] == 1


def test_inference_and_publish_errors_are_counted_and_survived(worker, rng, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory")
    monkeypatch.setattr(worker.engine, "derain_batch", boom)
    assert worker.process(0, _img(rng), 0.0) is Outcome.FAILED
    monkeypatch.undo()
    worker.sink.fail_with = RuntimeError("publisher gone")
    assert worker.process(0, _img(rng), 0.0) is Outcome.FAILED
    assert worker.stats[0].errors == 2
    worker.sink.fail_with = OutputsClosed()
    assert worker.process(0, _img(rng), 0.0) is Outcome.DISCARDED      # deactivating: a drop, not an error
    assert worker.stats[0].errors == 2 and worker.dropped(0) == 1
    worker.sink.fail_with = None
    assert worker.process(0, _img(rng), 0.0) is Outcome.DERAINED        # and it keeps serving


def test_a_frame_that_fails_to_decode_is_counted_and_the_thread_keeps_serving(tiny_model, rng):
    """Anything a decoder raises besides MalformedImage (MemoryError, a codec bug) fails that frame only: an
    uncaught error would end the inference thread and the node would publish nothing more, silently."""
    sink = Sink()

    def decode(payload):
        if payload is None:
            raise MemoryError("no room for the frame")
        return Decoded(payload, bgr=False, encoding="rgb8")

    w = DerainWorker(DerainEngine(tiny_model, device="cpu"), ["/a"], decode, sink, Settings(), warmup=False)
    w.start()
    try:
        for payload in (None, _img(rng)):
            w.received(0)
            w.offer(0, payload)
            deadline = time.monotonic() + 30
            while (w.slots.pending() or w.stats[0].errors + w.stats[0].published < w.stats[0].received) \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        assert w.stop(timeout=30)
    st = w.stats[0]
    assert st.errors == 1 and st.published == 1 and len(sink.items) == 1
    assert st.received == st.published + st.errors + w.dropped(0) + sum(st.rejected.values())


def test_diagnostics_turn_error_while_frames_fail_and_ok_once_they_stop(worker, rng, monkeypatch):
    """The status a camera publishes comes from the worker's counters: ERROR, naming the failure, only in the
    period in which a frame failed; WARN for rejections; OK again when nothing new happened."""
    from diagnostic_msgs.msg import DiagnosticStatus

    from pcnet_ros.ros.diagnostics import CameraHealth

    health = CameraHealth()

    def status():
        return health.status("/a", "cpu", worker.stats[0].snapshot(), worker.dropped(0), {}, subscribed=True)

    assert worker.process(0, _img(rng), 0.0) is Outcome.DERAINED
    got = status()
    assert (got.level, got.message) == (DiagnosticStatus.OK, "ok")
    monkeypatch.setattr(worker.engine, "derain_batch", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    assert worker.process(0, _img(rng), 0.0) is Outcome.FAILED
    got = status()
    assert got.level == DiagnosticStatus.ERROR and "frames failed" in got.message
    assert {kv.key: kv.value for kv in got.values}["errors"] == "1"
    assert status().level == DiagnosticStatus.OK                       # nothing new since
    assert worker.process(0, "x", 0.0) is Outcome.REJECTED
    got = status()
    assert (got.level, got.message) == (DiagnosticStatus.WARN, "rejecting frames")


def test_diagnostics_warn_when_the_gpu_runs_out_of_memory_and_show_the_smaller_calls(tiny_model, rng):
    """A call the engine had to halve (a runner that, like a small GPU, raises torch.OutOfMemoryError over 2 images
    a call; test_cuda raises a real one) is WARN once, and ``images_per_call`` keeps showing the limit."""
    import torch
    from diagnostic_msgs.msg import DiagnosticStatus

    from pcnet_ros.ros.diagnostics import CameraHealth

    engine = DerainEngine(tiny_model, device="cpu", flip_average=True)
    health, run = CameraHealth(), engine._run

    def status():
        got = health.status("/a", "cpu", {"errors": 0, "rejected": 0}, 0, {}, True, pass_cap=engine.pass_cap)
        return got.level, got.message, {kv.key: kv.value for kv in got.values}["images_per_call"]

    frames = [_img(rng) for _ in range(2)]
    engine.derain_batch(frames)
    assert status() == (DiagnosticStatus.OK, "ok", "all")
    engine._run = lambda t: run(t) if t.shape[0] <= 2 else (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA"))
    assert len(engine.derain_batch(frames)) == 2                 # 4 images (2 frames x 2 views) as two calls
    *_, ph, pw = DerainEngine.input_shape(1, *frames[0].shape[:2])
    size = f"{pw}x{ph}"
    assert status() == (DiagnosticStatus.WARN, "out of memory: fewer images a model call", f"{size}: 2")
    assert status() == (DiagnosticStatus.OK, "ok", f"{size}: 2")    # nothing new since


def test_thread_serves_newest_frames_round_robin_and_counts_every_frame(worker, rng):
    worker.start()
    try:
        for k in range(6):
            worker.received(k % 2)
            worker.offer(k % 2, _img(rng))
        worker.received(0)
        worker.reject(0, "zero_size", "0x0")
        deadline = time.monotonic() + 30
        while worker.slots.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assert worker.stop(timeout=30)
    for cam in (0, 1):
        st = worker.stats[cam]
        assert st.received == st.published + worker.dropped(cam) + sum(st.rejected.values())
    assert {c for c, *_ in worker.sink.items} == {0, 1}


def test_sequence_gaps_count_what_never_reached_the_callback():
    g = SequenceGaps()
    assert g.update(b"pubA", 10) == 0            # the first sample seen only starts the count
    assert g.update(b"pubA", 11) == 0
    assert g.update(b"pubA", 15) == 3            # 12, 13, 14 were cut from the queue or lost
    assert g.update(b"pubB", 3) == 0             # publishers are counted apart
    assert g.update(b"pubA", 14) == 0            # late or repeated samples are not gaps
    assert g.update(b"pubA", None) == 0          # an RMW without sequence numbers


def test_same_size_frames_of_different_cameras_run_as_one_batch(tiny_model, rng, monkeypatch):
    sink = Sink()
    engine = DerainEngine(tiny_model, device="cpu")
    w = DerainWorker(engine, ["/a", "/b", "/c"], _decode, sink, Settings(), warmup=False, max_batch=4)
    calls = []
    real = engine.derain_batch
    monkeypatch.setattr(engine, "derain_batch",
                        lambda imgs, bgr=False, max_side=0: calls.append(len(imgs)) or real(imgs, bgr, max_side))
    a, b, c = _img(rng), _img(rng), _img(rng, 40, 48)
    for cam, img in enumerate((a, b, c)):
        w.offer(cam, img)
    got = w.slots.take_many(4)
    assert [cam for cam, _ in got] == [0, 1, 2]                         # one per camera, round-robin
    outcomes = w.process_many([(cam, item[0], item[1]) for cam, item in got])
    assert outcomes == [Outcome.DERAINED] * 3
    assert sorted(calls) == [1, 2]                                      # a and b together, c alone
    assert [(cam, payload is img) for (cam, payload, _, _), img in zip(sink.items, (a, b, c))] == \
        [(0, True), (1, True), (2, True)]                               # published in order, each its own


def test_warm_up_runs_each_given_size_the_way_its_frames_will_run(tiny_model, monkeypatch):
    """Alone, at the batch the cameras fill, downscaled when oversize; too big for the memory budget: skipped."""
    engine = DerainEngine(tiny_model, device="cpu")
    warnings = []
    w = DerainWorker(engine, ["/a", "/b", "/c"], _decode, Sink(), Settings(max_input_size=64), max_batch=2,
                     warmup_sizes=[(48, 32), (96, 40), (20000, 16000)])
    monkeypatch.setattr(w, "_warn", warnings.append)
    calls = []
    real_batch, real_down = engine.derain_batch, engine.derain_downscaled
    monkeypatch.setattr(engine, "derain_batch",
                        lambda imgs, bgr=False: calls.append(("batch", len(imgs), imgs[0].shape)) or real_batch(imgs))
    monkeypatch.setattr(engine, "derain_downscaled",
                        lambda img, side, bgr=False: calls.append(("down", side, img.shape)) or real_down(img, side))
    w.warm_up()
    assert calls == [("batch", 1, (32, 48, 3)), ("batch", 2, (32, 48, 3)),       # 3 cameras, max_batch 2
                     ("down", 64, (40, 96, 3)),                                  # over max_input_size 64
                     ("batch", 1, (27, 64, 3))]                                  # what derain_downscaled runs
    assert len(warnings) == 1 and "20000x16000" in warnings[0] and "max_frame_memory_mb" in warnings[0]
    assert all(s.published == 0 and s.errors == 0 for s in w.stats)               # warm-up is not traffic


def test_warm_up_without_sizes_runs_one_small_frame(tiny_model, monkeypatch):
    engine = DerainEngine(tiny_model, device="cpu")
    w = DerainWorker(engine, ["/a", "/b"], _decode, Sink(), Settings(), max_batch=4)
    calls = []
    real = engine.derain_batch
    monkeypatch.setattr(engine, "derain_batch", lambda imgs, bgr=False: calls.append(imgs[0].shape) or real(imgs))
    w.warm_up()
    assert calls and all(shape == (64, 64, 3) for shape in calls)


def test_a_failed_warm_up_is_kept_for_the_managed_node(tiny_model):
    """The managed node's configure waits on wait_warmed() and fails on warmup_error (the plain node logs it
    and goes on serving errors per frame)."""
    engine = DerainEngine(tiny_model, device="cpu")
    engine.model.half()                  # fp16 weights fed fp32 frames: torch raises on the first frame, as a
    #                                      device that breaks on its first real convolution would
    sink = Sink()
    w = DerainWorker(engine, ["/a"], _decode, sink, Settings(), warmup_sizes=[(32, 24)])
    errors = []
    w._error = errors.append
    w.start()
    try:
        assert w.wait_warmed(30) and not w.warming_up
        assert isinstance(w.warmup_error, RuntimeError) and errors and "warm-up failed" in errors[0]
    finally:
        w.stop()


def test_wait_warmed_times_out_while_the_warm_up_runs(tiny_model):
    w = DerainWorker(DerainEngine(tiny_model, device="cpu"), ["/a"], _decode, Sink(), Settings())
    assert not w.wait_warmed(0.05)                        # not started: nothing has warmed it
    w.start()
    try:
        assert w.wait_warmed(30) and w.warmup_error is None
    finally:
        w.stop()


@pytest.mark.parametrize("backend, warned", [("openvino", True), ("eager", False)])
def test_warm_up_says_when_the_backend_cannot_keep_every_size(tiny_model, monkeypatch, backend, warned):
    """openvino keeps 4 compiled shapes (memory): 3 sizes for 2 cameras need 6, and the first would compile again."""
    if backend == "openvino" and not openvino_available():
        pytest.skip("openvino is not installed")
    engine = DerainEngine(tiny_model, device="cpu", backend=backend)
    w = DerainWorker(engine, ["/a", "/b"], _decode, Sink(), Settings(), max_batch=2,
                     warmup_sizes=[(32, 32), (64, 32), (96, 32)])
    warnings = []
    monkeypatch.setattr(w, "_warn", warnings.append)
    w.warm_up()
    assert warnings == (["warm-up: openvino keeps 4 compiled shapes, 6 asked for; the first 2 will compile again "
                         "on their first frame"] if warned else [])


def test_warm_up_counts_the_shapes_the_backend_compiles_not_the_sizes_listed(tiny_model, monkeypatch):
    """Sizes are padded to 32-pixel buckets, and a downscaled frame runs at its smaller size: 70x50, 90x60 and
    96x64 share the 96x64 shape (batch 1 and 2), 180x120 runs downscaled at 96x64 alone, 64x64 adds 2: 4, no
    warning."""
    if not openvino_available():
        pytest.skip("openvino is not installed")
    engine = DerainEngine(tiny_model, device="cpu", backend="openvino")
    sizes = [(70, 50), (90, 60), (180, 120), (96, 64), (64, 64)]

    def warnings_for(sizes):
        w = DerainWorker(engine, ["/a", "/b"], _decode, Sink(), Settings(max_input_size=96), max_batch=2,
                         warmup_sizes=sizes)
        warnings = []
        monkeypatch.setattr(w, "_warn", warnings.append)
        w.warm_up()
        return warnings

    assert warnings_for(sizes) == []
    assert warnings_for(sizes + [(96, 32)]) == [      # a third shape, at batch 1 and 2: 6 > 4
        "warm-up: openvino keeps 4 compiled shapes, 6 asked for; the first 2 will compile again on their first frame"]


@pytest.mark.parametrize("budget_mb,batches", [(64, [1, 1]), (128, [2])])
def test_a_batch_holds_only_as_many_frames_as_the_memory_budget(tiny_model, rng, monkeypatch, budget_mb, batches):
    """290x210 needs about 43 MB: max_frame_memory_mb 64 holds one at a time, 128 two; warm-up runs the same."""
    assert 40 < estimate_frame_bytes(210, 290, 3) / 2**20 < 45
    engine = DerainEngine(tiny_model, device="cpu")
    w = DerainWorker(engine, ["/a", "/b"], _decode, Sink(), Settings(max_frame_memory_mb=budget_mb), warmup=False,
                     max_batch=4, warmup_sizes=[(290, 210)])
    calls = []
    real = engine.derain_batch
    monkeypatch.setattr(engine, "derain_batch",
                        lambda imgs, bgr=False, max_side=0: calls.append(len(imgs)) or real(imgs, bgr, max_side))
    frames = [_img(rng, 210, 290), _img(rng, 210, 290)]
    assert w.process_many([(cam, img, time.monotonic()) for cam, img in enumerate(frames)]) == [Outcome.DERAINED] * 2
    assert calls == batches
    calls.clear()
    w.warm_up()
    assert calls == sorted({1, batches[0]})


def test_on_a_cpu_the_model_pass_counts_against_the_memory_budget(tiny_model, rng):
    """1080p needs about 1.5 GB with its model pass on a CPU, so 512 MB refuses it before it runs (test_cuda runs
    four such frames as one batch under the same budget on a GPU, where only the host copies count)."""
    sink = Sink()
    w = DerainWorker(DerainEngine(tiny_model, device="cpu"), ["/a"], _decode, sink,
                     Settings(max_frame_memory_mb=512), warmup=False, max_batch=4)
    assert w.process(0, _img(rng, 1080, 1920), time.monotonic()) is Outcome.REJECTED
    assert w.stats[0].rejected == {"oversize": 1} and sink.items == []
