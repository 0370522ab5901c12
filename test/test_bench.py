"""pcnet-bench's work count: GFLOP/s and the fraction of peak are only as true as the FLOPs they divide."""
import time

import pytest
import torch

from pcnet_ros.core.backends import openvino_available
from pcnet_ros.core.model import PCNet
from pcnet_ros.tools.bench import pcnet_gflop, peak_for, peak_runs


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


def test_each_precision_is_judged_against_its_own_peak():
    peaks = {"torch fp32": 200.0, "openvino fp32": 180.0, "openvino bf16": 410.0}
    assert peak_for(peaks, "fp32") == 200.0
    assert peak_for(peaks, "bf16") == 410.0                  # not the fp32 peak, which would flatter a bf16 row
    with pytest.raises(ValueError, match="no fp16"):
        peak_for(peaks, "fp16")


def test_peak_runs_cover_every_precision_asked_for_and_run():
    cpu = torch.device("cpu")
    peaks = peak_runs(cpu)
    assert "torch fp32" in peaks and all(k.endswith(" fp32") for k in peaks)
    for fn, gflop in peaks.values():
        fn()
        assert gflop == pytest.approx(2 * 128 * 128 * 9 * 128 * 128 / 1e9)
    if openvino_available():
        both = peak_runs(cpu, precisions=("fp32", "bf16"))
        assert {"torch fp32", "openvino fp32", "openvino bf16"} <= set(both)


def test_batch_row_times_every_batch_and_the_flip_averaged_frames(tiny_model):
    from pcnet_ros.core.engine import DerainEngine
    from pcnet_ros.tools.bench import bench_batches

    engine = DerainEngine(tiny_model, device="cpu")
    rows = bench_batches(engine, "480x320", repeats=1)
    assert [r["batch"] for r in rows] == [1, 2, 4, "flip", "flip both"]
    assert rows[0]["vs_batch_1"] == 1.0 and all(r["ms_per_frame"] > 0 for r in rows)
    assert engine.flip_average is False and engine.flip_axes == "horizontal"   # left as it was found
    assert all("of_peak" not in r for r in rows)              # no work or peak given: no fraction to claim


def test_batch_rows_count_their_work_against_the_peak_timed_beside_them(tiny_model):
    from pcnet_ros.core.engine import DerainEngine
    from pcnet_ros.tools.bench import bench_batches

    peak = (lambda: time.sleep(0.01), 0.5)                    # at most 50 GFLOP/s: it sleeps 10 ms or more
    rows = bench_batches(DerainEngine(tiny_model, device="cpu"), "480x320", repeats=2, work_gflop=2.0, peak=peak)
    for r in rows:
        passes = {"flip": 2, "flip both": 4}.get(r["batch"], 1)   # a flip-averaged frame is a pass per view
        assert r["gflops"] == pytest.approx(passes * 2.0 / (r["ms_per_frame"] / 1e3))
        assert 25.0 < r["peak_gflops"] <= 50.0
        assert r["of_peak"] == pytest.approx(r["gflops"] / r["peak_gflops"])


def test_engine_rows_divide_by_the_peak_measured_in_their_own_loop(tiny_model):
    from pcnet_ros.core.engine import DerainEngine
    from pcnet_ros.tools.bench import _baseline, _engine_fn, bench_engine

    calls = []
    peaks = {"torch fp32": (lambda: (calls.append(1), time.sleep(0.005)), 1.0)}     # at most 200 GFLOP/s
    engine = DerainEngine(tiny_model, device="cpu")
    variants = {"baseline eager fp32": (_baseline(tiny_model), None), "eager fp32": (_engine_fn(engine), engine)}
    gflop = {"480x320": {"full": 3.0, "clean": 2.0}}
    rows, measured = bench_engine(variants, {}, ["480x320"], "cpu", 3, peaks, gflop)
    assert len(calls) == 1 + 2 * 3                             # warmed once, then twice a round, one timed
    assert 100.0 < measured["480x320"]["torch fp32"] <= 200.0
    for r in rows:
        assert r["of_peak"] == pytest.approx(r["gflops"] / measured["480x320"]["torch fp32"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_cuda_asked_for_without_a_gpu_is_one_line_not_a_traceback(capsys):
    from pcnet_ros.tools.bench import main

    assert main(["--device", "cuda", "--skip-node"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcnet-bench: device 'cuda' requested but CUDA is not available") and "Traceback" not in err


def test_missing_weights_are_one_line_before_any_timing(tmp_path, capsys):
    from pcnet_ros.tools.bench import main

    assert main(["--weights", str(tmp_path / "none.pth"), "--device", "cpu", "--skip-node"]) == 2
    out, err = capsys.readouterr()
    assert "weights file not found" in err and out == ""
