"""Where OpenVINO spends a PCNet frame, and what the exported form (CleanOutput) gains over the authors' order.

    .venv/bin/python scripts/openvino_profile.py --precision bf16 --size 480x320 --repeats 31

Both graphs are compiled for one static size with every thread, run interleaved with pcnet-bench's own loop (this
machine is noisy), and their medians compared; then each one's per-layer-type time from OpenVINO's PERF_COUNT.
It explains the README's Performance rows; the rows themselves come from pcnet-bench.
"""
from __future__ import annotations

import argparse
import collections
import warnings

import numpy as np
import torch

from pcnet_ros.core.backends import OPENVINO_HINT
from pcnet_ros.core.model import CleanOutput
from pcnet_ros.core.weights import build_model
from pcnet_ros.tools.bench import interleaved


def main() -> None:
    import openvino as ov

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="light")
    ap.add_argument("--precision", default="bf16", choices=sorted(OPENVINO_HINT))
    ap.add_argument("--size", default="480x320")
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    model, _ = build_model(args.weights)
    model = model.float().eval()
    shape = (1, 3, h, w)
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": OPENVINO_HINT[args.precision], "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": args.threads, "PERF_COUNT": True}
    requests = {}
    for name, module in (("authors' order", CleanOutput(model, fusable=False)), ("exported form", CleanOutput(model))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                  # torch.jit.trace's deprecation, as in export.py
            graph = ov.convert_model(module, example_input=torch.zeros(shape), input=[ov.PartialShape(shape)])
        requests[name] = core.compile_model(graph, "CPU", config).create_infer_request()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).numpy()
    outputs = {}
    for name, request in requests.items():
        for _ in range(3):
            request.infer({0: x})
        outputs[name] = request.get_output_tensor(0).data.copy()
    times = interleaved({name: (lambda r=request: r.infer({0: x})) for name, request in requests.items()},
                        args.repeats)
    base = times["authors' order"]
    print(f"OpenVINO {ov.__version__}, {args.precision}, {args.size}, {args.threads} threads, "
          f"median of {args.repeats} interleaved runs")
    for name, t in times.items():
        diff = float(np.abs(outputs[name] - outputs["authors' order"]).max())
        print(f"  {name:15s} {1e3 * t:6.1f} ms  ({t / base:.3f}x)  max |diff| {diff:.1e}")
    for name, request in requests.items():
        per_type: dict[str, float] = collections.defaultdict(float)
        count: collections.Counter = collections.Counter()
        for p in request.profiling_info:
            if p.status == p.Status.EXECUTED:
                per_type[p.node_type] += p.real_time.total_seconds() * 1e3
                count[p.node_type] += 1
        total = sum(per_type.values())
        print(f"  {name}: {sum(count.values())} layers, {total:.1f} ms in the last run:")
        for kind, ms in sorted(per_type.items(), key=lambda kv: -kv[1]):
            print(f"    {kind:26s} {ms:6.2f} ms {100 * ms / total:5.1f}%  ({count[kind]} layers)")


if __name__ == "__main__":
    main()
