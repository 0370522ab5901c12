"""pcnet-bench: speed and memory of the engine and the live node, as ratios measured side by side in one run.

    pcnet-bench                          # all rows, CPU (and CUDA rows when a GPU is present)
    pcnet-bench --soak 600               # plus the 10-minute memory soak of the node

Rows:
  (a) each engine backend (and precision) vs a plain eager fp32 PyTorch run of the same weights on the same
      frames: speed-up, max |difference|, PSNR against the fp32 output, GFLOP/s and its fraction of
  (p) this machine's achievable convolution throughput: a large dense 3x3 convolution in each framework,
      timed interleaved with the rows of (a) and (n) so that each fraction divides numbers of one moment;
  (n) per-frame cost of batches of 1, 2 and 4 frames (cameras of a rig), best backend, and the fraction of
      (p) each reaches;
  (b) the node's frames/s over DDS under a flood vs the engine alone: ratio;
  (c) the node's p95 end-to-end latency under a 30 Hz flood / one inference time;
  (d) node RSS at the start and end of the flood: growth in %;
  (e) node RSS under a stream of random sizes (8-200 px at 50 Hz): growth in %.
This machine is noisy: variants are interleaved (ABAB...) and medians compared, never absolute numbers
across runs.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import torch

from pcnet_ros.core.backends import (BackendError, cpu_has_native_bf16, openvino_available, OPENVINO_HINT,
                                     torch_dtype)
from pcnet_ros.core.engine import DerainEngine, FLIP_VIEWS, pad_to_multiple, resolve_device, SIZE_BUCKET
from pcnet_ros.core.model import PCNet
from pcnet_ros.core.weights import build_model, LOAD_ERRORS
from pcnet_ros.paths import SOURCE_ROOT
from pcnet_ros.ros.transport import keep_dds_local
from pcnet_ros.tools.common import add_engine_args, fail, process_memory_mb, start_node, stop_node

VARY_WARMUP_S = 20.0      # row (e): random sizes sent before RSS is sampled
SIZES = {"480x320": (320, 480), "640x480": (480, 640), "1280x720": (720, 1280)}


def _baseline(model: torch.nn.Module):
    """What a user would write first: eager, NCHW, fp32, no_grad."""
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            xp, h, w = pad_to_multiple(x, SIZE_BUCKET)    # same padding as the engine: diffs are numerics
            return model(xp)[0][..., :h, :w].clamp(0, 1)
    return run


def _engine_fn(engine: DerainEngine):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return engine.forward_tensor(x)
    return run


def pcnet_gflop(model: PCNet, h: int, w: int, clean_only: bool = False) -> float:
    """Multiply-adds x 2 of every convolution in one forward pass at h x w (padded as the engine pads);
    ``clean_only``: the engines' pass, which leaves out the training-only R reconstruction.

    The count depends on shapes alone, so a copy of the architecture runs on the meta device: no
    arithmetic (a full 1280x720 pass took seconds on a CPU) and the caller's model is left as it was."""
    with torch.device("meta"):
        model = PCNet(**model.config).eval()
    flops = []

    def conv_hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, torch.nn.ConvTranspose2d):
            flops.append(2 * inp[0].numel() * mod.out_channels // mod.groups * k)
        else:
            flops.append(2 * out.numel() * mod.in_channels // mod.groups * k)
    for m in model.modules():                   # the copy is thrown away, hooks and all
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(conv_hook)
    x, _, _ = pad_to_multiple(torch.zeros(1, 3, h, w, device="meta"), SIZE_BUCKET)
    with torch.inference_mode():
        (model.clean if clean_only else model)(x)
    return sum(flops) / 1e9


def peak_runs(device: torch.device, precisions: tuple[str, ...] = ("fp32",)) -> dict[str, tuple[Callable, float]]:
    """A large dense 3x3 convolution (128 -> 128 channels, 128x128) per framework and precision, as
    "framework precision" -> (run function, its GFLOP). Rows (a) and (n) run these interleaved with their
    variants, so a row's fraction of peak divides two numbers measured under the same load.

    A bf16 or fp16 row is judged against the peak of its own precision: on a CPU with native bf16 that peak is
    well above the fp32 one (1.45-1.66x on the seventh session's EPYC), so one shared peak would flatter it.
    """
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False).eval().to(device)
    x = torch.rand(1, 128, 128, 128, device=device)
    gflop = 2 * 128 * 128 * 9 * 128 * 128 / 1e9
    out = {}
    for precision in precisions:
        if device.type == "cuda" or precision == "fp32":
            dtype = torch_dtype(precision, backend="eager")
            cl = copy.deepcopy(conv).to(dtype=dtype, memory_format=torch.channels_last)
            xc = x.to(dtype).contiguous(memory_format=torch.channels_last)

            def torch_run(cl=cl, xc=xc):
                with torch.inference_mode():
                    cl(xc)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            out[f"torch {precision}"] = (torch_run, gflop)
        if device.type == "cpu" and openvino_available() and precision in OPENVINO_HINT:
            import openvino as ov

            net = ov.Core().compile_model(ov.convert_model(copy.deepcopy(conv), example_input=x), "CPU",
                                          {"INFERENCE_PRECISION_HINT": OPENVINO_HINT[precision],
                                           "PERFORMANCE_HINT": "LATENCY"})
            out[f"openvino {precision}"] = ((lambda net=net, xn=x.numpy(): net(xn)), gflop)
    return out


def precision_of(name: str) -> str:
    """Variant and peak names are "<framework or backend> <precision>", e.g. "openvino bf16"."""
    return name.split()[-1]


def best_peak(peaks: dict[str, float], precision: str) -> str:
    """The name of the best framework's peak at this precision; never another precision's, which would mislead."""
    same = [k for k in peaks if precision_of(k) == precision]
    if not same:
        raise ValueError(f"no {precision} convolution peak was measured (have: {', '.join(peaks)})")
    return max(same, key=peaks.__getitem__)


def peak_for(peaks: dict[str, float], precision: str) -> float:
    return peaks[best_peak(peaks, precision)]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def engine_variants(weights: str, backends: list[str], device: str) -> tuple[dict, dict]:
    """name -> (run function, engine or None); plus first-call seconds (conversion, compilation)."""
    dev = torch.device(device)
    base_model, _ = build_model(weights)
    variants = {"baseline eager fp32": (_baseline(base_model.to(dev)), None)}
    setup_s = {}
    wanted = [(b, "fp32") for b in backends]
    if dev.type == "cuda":
        wanted += [(b, p) for b in backends if b in ("eager", "compile") for p in ("fp16", "bf16")]
    elif "openvino" in backends and cpu_has_native_bf16():
        wanted.append(("openvino", "bf16"))
    for backend, precision in wanted:
        model, _ = build_model(weights)
        t0 = time.perf_counter()
        try:
            engine = DerainEngine(model, device=device, backend=backend, precision=precision)
        except (BackendError, ValueError) as exc:
            print(f"  skipping {backend} {precision}: {exc}")
            continue
        name = f"{backend} {precision}"
        variants[name] = (_engine_fn(engine), engine)
        setup_s[name] = time.perf_counter() - t0
    return variants, setup_s


def interleaved(fns: dict, repeats: int, sync: bool = False) -> dict[str, float]:
    """Median seconds of each function, run in turn AABBCC... so that noise hits all of them alike; only the
    second call of each pair is timed. A call right after another network's runs cold (its threads, caches):
    measured on 2 cores, the 8 ms peak convolution then read half its throughput, which no node sees, since a
    node runs one network back to back."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            f()
            if sync:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            f()
            if sync:
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_engine(variants: dict, setup_s: dict, sizes: list[str], device: str, repeats: int,
                 peaks: dict[str, tuple[Callable, float]], gflop: dict[str, dict[str, float]]
                 ) -> tuple[list[dict], dict[str, dict[str, float]]]:
    """Row (a): interleaved timing of the baseline, each variant and each peak convolution (``peak_runs``), per
    size; GFLOP/s counts the work each does (``gflop[size]["full"]`` for the baseline's full forward,
    ``["clean"]`` for the engines), and the fraction of peak divides by the peak of the row's own precision
    measured in the same loop. Returns the rows and, per size, the peaks measured."""
    rows, measured = [], {}
    dev = torch.device(device)
    for size in sizes:
        h, w = SIZES[size]
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
        ref = variants["baseline eager fp32"][0](x).float()
        diffs, psnrs, first = {}, {}, {}
        for k, (f, _) in variants.items():                 # warm-up (and compile) outside the timing
            t0 = time.perf_counter()
            y = f(x).float()
            first[k] = time.perf_counter() - t0 + setup_s.get(k, 0.0)
            diffs[k], psnrs[k] = (y - ref).abs().max().item(), _psnr(y, ref)
        for fn, _ in peaks.values():
            fn()
        fns = {k: (lambda f=f: f(x)) for k, (f, _) in variants.items()} | {f"peak {k}": fn for k, (fn, _) in
                                                                           peaks.items()}
        med = interleaved(fns, repeats, sync=dev.type == "cuda")
        here = measured[size] = {k: g / med[f"peak {k}"] for k, (_, g) in peaks.items()}
        base = med["baseline eager fp32"]
        for k in variants:
            work = gflop[size]["full" if variants[k][1] is None else "clean"]
            rows.append({"size": size, "variant": k, "ms": med[k] * 1e3, "fps": 1 / med[k],
                         "speedup": base / med[k], "max_abs_diff": diffs[k], "psnr_vs_fp32": psnrs[k],
                         "first_call_s": first[k], "gflops": work / med[k],
                         "of_peak": work / med[k] / peak_for(here, precision_of(k))})
    return rows, measured


#: Row (n)'s flip-averaged rows, by flip_axes: the row's ``batch`` label and how it prints.
FLIP_ROWS = {"horizontal": ("flip", "one frame flip-averaged"),
             "both": ("flip both", "one frame flip-averaged on both axes")}


def bench_batches(engine: DerainEngine, size: str, repeats: int, batches=(1, 2, 4), work_gflop: float = 0.0,
                  peak: tuple[Callable, float] | None = None) -> list[dict]:
    """Row (n): per-frame time of same-size batches, and of one frame flip-averaged (``batch`` "flip": with its
    mirror image; "flip both": in all four views of ``flip_axes: both``), interleaved. Given one frame's work and the
    peak convolution of the engine's precision (run function and GFLOP, from ``peak_runs``, timed in the same loop),
    each row also has its GFLOP/s and fraction of that peak, a flip-averaged frame counting one pass per view: a
    rig's cameras run batched, so their per-frame throughput is what the node gets."""
    h, w = SIZES[size]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(max(batches))]
    kinds = [(b, None) for b in batches] + [(1, axes) for axes in FLIP_ROWS]
    was = engine.flip_average, engine.flip_axes

    def run(b: int, axes: str | None) -> None:
        engine.flip_average, engine.flip_axes = axes is not None, axes or was[1]
        try:
            engine.derain_batch(frames[:b])
        finally:
            engine.flip_average, engine.flip_axes = was

    fns = {k: (lambda k=k: run(*k)) for k in kinds}
    if peak:
        fns["peak"] = peak[0]
    med = interleaved(fns, repeats)                      # its untimed first call compiles each batch shape
    per_frame = {k: med[k] / k[0] for k in kinds}
    one = per_frame[(batches[0], None)]
    rows = []
    for b, axes in kinds:
        t = per_frame[(b, axes)]
        row = {"batch": FLIP_ROWS[axes][0] if axes else b, "ms_per_frame": t * 1e3, "vs_batch_1": t / one}
        if work_gflop and peak:
            row["gflops"] = (len(FLIP_VIEWS[axes]) if axes else 1) * work_gflop / t
            row["peak_gflops"] = peak[1] / med["peak"]
            row["of_peak"] = row["gflops"] / row["peak_gflops"]
        rows.append(row)
    return rows


def bench_node(weights: str, size: str, backend: str, device: str, engine_fps: float, seconds: float,
               flood_hz: float = 30.0, soak: float = 0.0, vary_seconds: float = 0.0) -> dict:
    """Rows (b)-(e): flood a real pcnet_node process over DDS and measure what comes out."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from pcnet_ros.ros import image_codec

    h, w = SIZES[size]
    log = open(SOURCE_ROOT / "out" / "bench_node.log", "w") if (SOURCE_ROOT / "out").is_dir() else subprocess.DEVNULL
    proc = start_node({"weights": weights, "device": device, "backend": backend, "input_qos": "reliable",
                       "publish_residue": True}, "/bench", log)   # default input_qos_depth: as deep as `pub`
    rclpy.init()
    node = rclpy.create_node("pcnet_bench")
    got = []
    node.create_subscription(Image, "/bench/image_raw/derained", lambda m: got.append((time.monotonic(), m)),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    pub = node.create_publisher(Image, "/bench/image_raw", 10)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        deadline = time.monotonic() + 120
        while (pub.get_subscription_count() == 0 or node.count_publishers("/bench/image_raw/derained") == 0) \
                and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
            if proc.poll() is not None:
                raise RuntimeError("pcnet_node exited during start-up")
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        msg = Image()
        image_codec.fill(msg, frame, "rgb8", msg.header)
        deadline = time.monotonic() + 600                   # first frame of a size may compile for minutes
        while not got and time.monotonic() < deadline:      # warm up on this size before measuring
            msg.header.stamp.sec = 0
            pub.publish(msg)
            ex.spin_once(timeout_sec=0.5)
            if proc.poll() is not None:
                raise RuntimeError("pcnet_node exited during warm-up")
        if not got:
            raise RuntimeError("pcnet_node produced no output within 600 s")

        def drive(rate: float, seconds: float, rss: list | None = None) -> dict:
            """Publish at ``rate`` for ``seconds``; throughput and latency of what comes back."""
            got.clear()
            sent, k, t0 = {}, 0, time.monotonic()
            while time.monotonic() - t0 < seconds:
                k += 1
                msg.header.stamp.sec = k
                sent[k] = time.monotonic()
                pub.publish(msg)
                nxt = t0 + k / rate
                while time.monotonic() < nxt:
                    ex.spin_once(timeout_sec=max(0.0, nxt - time.monotonic()))
                if rss is not None and k % max(1, int(rate * 10)) == 0:
                    rss.append(process_memory_mb(proc.pid))
            t_stop = time.monotonic() + 5
            while time.monotonic() < t_stop:
                ex.spin_once(timeout_sec=0.1)
            outs = [(t, m.header.stamp.sec) for t, m in got if m.header.stamp.sec in sent]
            lat = [t - sent[s] for t, s in outs]
            times = [t for t, _ in outs if t <= t0 + seconds]
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
            return {"input_hz": rate, "sent": k, "derained": len(outs), "node_fps": fps,
                    "latency_p50_ms": 1e3 * float(np.percentile(lat, 50)) if lat else float("nan"),
                    "latency_p95_ms": 1e3 * float(np.percentile(lat, 95)) if lat else float("nan")}

        # (b) saturated but not drowned: a fresh frame is always waiting, the publisher costs little
        saturated = drive(2.0 * engine_fps, seconds)
        # (c), (d) the 30 Hz flood a camera produces
        rss = [process_memory_mb(proc.pid)]
        flood = drive(flood_hz, soak or seconds, rss)
        during = rss[1:] or rss                              # samples taken every 10 s of flood
        q = max(1, len(during) // 4)
        first, last = statistics.median(during[:q]), statistics.median(during[-q:])
        result = {"size": size, "backend": backend, "saturated": saturated, "flood": flood, "rss_mb": rss,
                  "rss_start_mb": first, "rss_end_mb": last, "rss_growth_pct": 100 * (last - first) / first}
        if vary_seconds:
            # (e) random sizes 8-200 px at 50 Hz: what once grew RSS 483 -> 682 MB in 95 s
            rng = np.random.default_rng(1)

            def random_sizes(seconds: float, samples: list | None) -> int:
                """Publish random sizes at 50 Hz for ``seconds``; returns how many were sent."""
                t0, sent = time.monotonic(), 0
                while time.monotonic() - t0 < seconds:
                    sent += 1
                    hh, ww = (int(v) for v in rng.integers(8, 201, 2))
                    m = Image()
                    image_codec.fill(m, rng.integers(0, 256, (hh, ww, 3), dtype=np.uint8), "rgb8", m.header)
                    pub.publish(m)
                    nxt = t0 + sent / 50.0
                    while time.monotonic() < nxt:
                        ex.spin_once(timeout_sec=max(0.0, nxt - time.monotonic()))
                    # each second: RSS swings by +-50 MB as sizes come and go, so each quarter's median needs many
                    # samples (5 read a swing as growth)
                    if samples is not None and sent % 50 == 0:
                        samples.append(process_memory_mb(proc.pid))
                return sent

            # the first seconds fill the engine's compiled-shape cache and the allocator's arenas (a run of the
            # thirty-ninth session rose 648 -> 679 MB in its first quarter, then held 675-684): growth after
            # that is what a leak would show
            before = process_memory_mb(proc.pid)
            k = random_sizes(VARY_WARMUP_S, None)
            vary = [process_memory_mb(proc.pid)]
            k += random_sizes(vary_seconds, vary)
            during = vary[1:] or vary
            q = max(1, len(during) // 4)
            a, b = statistics.median(during[:q]), statistics.median(during[-q:])
            result.update(vary_rss_mb=vary, vary_frames=k, vary_before_mb=before, vary_start_mb=a, vary_end_mb=b,
                          vary_growth_pct=100 * (b - a) / a)
        return result

    finally:
        stop_node(proc)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--backends", nargs="*", default=["eager", "onnxruntime", "openvino", "compile"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--node-size", default="640x480", choices=list(SIZES))
    ap.add_argument("--seconds", type=float, default=30.0, help="flood duration for rows (b)-(d)")
    ap.add_argument("--soak", type=float, default=0.0, help="flood duration for (d) instead, e.g. 600")
    ap.add_argument("--vary-seconds", type=float, default=95.0, help="duration of row (e), random sizes")
    ap.add_argument("--skip-node", action="store_true")
    ap.add_argument("--json", type=Path, default=Path("out/bench.json"))
    add_engine_args(ap, backend_default=None, backend_help="backend for the node rows (default: the fastest in (a))",
                    flip_average=False)
    args = ap.parse_args(argv)
    try:        # no GPU for --device cuda, or weights that are not there: one line, not a traceback
        args.device = str(resolve_device(args.device))
        model, _ = build_model(args.weights)
    except LOAD_ERRORS as exc:
        return fail("pcnet-bench", str(exc))
    keep_dds_local()
    dev = torch.device(args.device)

    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} cores", flush=True)
    sizes = args.sizes + ([args.node_size] if not args.skip_node and args.node_size not in args.sizes else [])
    gflop = {size: {"full": pcnet_gflop(model, *SIZES[size]), "clean": pcnet_gflop(model, *SIZES[size], True)}
             for size in sizes}
    variants, setup_s = engine_variants(args.weights, args.backends, args.device)
    precisions = tuple(dict.fromkeys(precision_of(k) for k in variants))
    peaks = peak_runs(dev, precisions)
    rows, measured = bench_engine(variants, setup_s, sizes, args.device, args.repeats, peaks, gflop)
    print("\n(p) achievable convolution throughput (dense 3x3, 128 -> 128 channels, 128x128), timed interleaved "
          "with (a) at each size:")
    for size, here in measured.items():
        print(f"    {size}: " + ", ".join(f"{k} {v:.1f}" for k, v in here.items()) + " GFLOP/s; peak taken as " +
              ", ".join(f"{p} {peak_for(here, p):.1f}" for p in precisions))
    print("    PCNet per frame, full forward (baseline) / clean output only (engines): " +
          ", ".join(f"{s_} {g['full']:.1f} / {g['clean']:.1f} GFLOP" for s_, g in gflop.items()))
    print("\n(a) engine vs plain eager fp32 (same weights, same frames; median of interleaved runs)")
    print(f"{'size':<10}{'variant':<22}{'ms/frame':>10}{'fps':>8}{'speed-up':>10}{'max|diff|':>11}{'PSNR fp32':>10}"
          f"{'GFLOP/s':>9}{'of peak':>9}{'1st call s':>11}")
    for r in rows:
        print(f"{r['size']:<10}{r['variant']:<22}{r['ms']:>10.1f}{r['fps']:>8.2f}{r['speedup']:>9.2f}x"
              f"{r['max_abs_diff']:>11.1e}{r['psnr_vs_fp32']:>10.1f}{r['gflops']:>9.1f}{r['of_peak']:>8.0%}"
              f"{r['first_call_s']:>11.1f}")
    result = {"engine": rows, "conv_peak_gflops": measured, "pcnet_gflop": gflop}
    fastest = max((r for r in rows if r["size"] == sizes[0] and variants[r["variant"]][1] is not None),
                  key=lambda r: r["speedup"])
    precision = precision_of(fastest["variant"])
    peak_name = best_peak(measured[sizes[0]], precision)
    batches = bench_batches(variants[fastest["variant"]][1], sizes[0], args.repeats,
                            work_gflop=gflop[sizes[0]]["clean"], peak=peaks[peak_name])
    result["batches"] = batches
    print(f"\n(n) batches of same-size frames, {fastest['variant']}, {sizes[0]}: " + ", ".join(
        f"{dict(FLIP_ROWS.values()).get(b['batch']) or 'batch ' + str(b['batch'])}: "
        f"{b['ms_per_frame']:.0f} ms/frame ({b['vs_batch_1']:.2f}x, {b['of_peak']:.0%} of peak)" for b in batches)
        + f"; {peak_name} peak timed in the same loop: {batches[0]['peak_gflops']:.1f} GFLOP/s")
    if not args.skip_node:
        cands = [r for r in rows if r["size"] == args.node_size and variants[r["variant"]][1] is not None
                 and r["variant"].endswith("fp32")]
        best = max(cands, key=lambda r: r["speedup"])
        backend = args.backend or variants[best["variant"]][1].backend
        engine_fps = next(r["fps"] for r in cands if r["variant"] == f"{backend} fp32")
        engine_ms = 1e3 / engine_fps
        node = bench_node(args.weights, args.node_size, backend, args.device, engine_fps, args.seconds, 30.0,
                          args.soak, args.vary_seconds)
        result["node"] = node | {"engine_fps": engine_fps}
        sat, flood = node["saturated"], node["flood"]
        print(f"\n(b)-(e) live pcnet_node over DDS, {args.node_size} rgb8, backend {backend}")
        print(f"  (b) node {sat['node_fps']:.2f} fps / engine alone {engine_fps:.2f} fps = "
              f"{sat['node_fps'] / engine_fps:.2f}   (target >= 0.9; input at {sat['input_hz']:.1f} Hz = 2x engine)")
        print(f"  (c) 30 Hz flood: p95 latency {flood['latency_p95_ms']:.0f} ms / one inference {engine_ms:.0f} ms = "
              f"{flood['latency_p95_ms'] / engine_ms:.2f}   (target < 2); p50 {flood['latency_p50_ms']:.0f} ms; "
              f"{flood['derained']} of {flood['sent']} frames derained, the rest dropped as stale")
        print("      RSS every 10 s (MB): " + " ".join(f"{v:.0f}" for v in node["rss_mb"]))
        print(f"  (d) node RSS, median of the first vs the last quarter of the flood: "
              f"{node['rss_start_mb']:.0f} MB -> {node['rss_end_mb']:.0f} MB over "
              f"{args.soak or args.seconds:.0f} s of flood: {node['rss_growth_pct']:+.1f}%   "
              f"(target < +5% over a 600 s soak: --soak 600)")
        if "vary_growth_pct" in node:
            print(f"  (e) random sizes 8-200 px at 50 Hz, {node['vary_frames']} frames ({VARY_WARMUP_S:.0f} s of them "
                  f"a warm-up from {node['vary_before_mb']:.0f} MB, not sampled): RSS "
                  f"{node['vary_start_mb']:.0f} MB -> {node['vary_end_mb']:.0f} MB: {node['vary_growth_pct']:+.1f}%"
                  f"   (target <= +5%); samples every 5 s: " + " ".join(f"{v:.0f}" for v in node["vary_rss_mb"][::5]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
