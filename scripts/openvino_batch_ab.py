"""How four same-size frames should run in OpenVINO on a few cores: the engine's way against the others, side by side.

    .venv/bin/python scripts/openvino_batch_ab.py --precision bf16 --repeats 15

Interleaved in one loop, as pcnet-bench times its rows (this machine is noisy): one frame on a latency-compiled
model (both threads), four frames one at a time on it, four as one batched graph, four over the throughput
streams (one thread each), and the engine's own ``derain_batch`` of one and of four frames (the streams, plus the
uint8 work around them). It backs the README's Performance row (n) and the ``max_batch: 0`` default; the row
itself comes from pcnet-bench.
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from pcnet_ros.core.backends import OPENVINO_HINT, openvino_model
from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.weights import build_model
from pcnet_ros.tools.bench import interleaved


def main() -> None:
    import openvino as ov

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="bf16", choices=sorted(OPENVINO_HINT))
    ap.add_argument("--size", default="480x320")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    engine = DerainEngine(build_model("light")[0], device="cpu", precision=args.precision, backend="openvino")
    base = openvino_model(engine.model)        # the graph the engine runs, from the same disk cache
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": OPENVINO_HINT[args.precision]}

    def compiled(n: int, hint: str):
        m = base.clone()
        m.reshape({m.inputs[0]: ov.PartialShape([n, 3, h, w])})
        return core.compile_model(m, "CPU", {**config, "PERFORMANCE_HINT": hint})

    one, four, tput = compiled(1, "LATENCY"), compiled(4, "LATENCY"), compiled(1, "THROUGHPUT")
    queue = ov.AsyncInferQueue(tput, int(tput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    x = np.random.default_rng(0).random((4, 3, h, w), dtype=np.float32)
    frames = list(np.random.default_rng(1).integers(0, 256, (4, h, w, 3), dtype=np.uint8))

    def streams() -> None:
        for i in range(4):
            queue.start_async({0: x[i:i + 1]}, i)
        queue.wait_all()

    runs: dict[str, tuple[Callable[[], object], int]] = {
        "raw: 1 frame": (lambda: one(x[:1]), 1),
        "raw: 4 one at a time": (lambda: [one(x[i:i + 1]) for i in range(4)], 4),
        "raw: 4 batched graph": (lambda: four(x), 4),
        "raw: 4 streams": (streams, 4),
        "engine: 1 frame": (lambda: engine.derain_batch(frames[:1]), 1),
        "engine: 4 frames": (lambda: engine.derain_batch(frames), 4),
    }
    med = interleaved({k: f for k, (f, _) in runs.items()}, args.repeats)
    med = {k: t / runs[k][1] for k, t in med.items()}            # per frame
    for k, t in med.items():
        ref = med["engine: 1 frame" if k.startswith("engine") else "raw: 1 frame"]
        print(f"{args.precision} {args.size} {k:22s} {t * 1e3:7.1f} ms a frame  {t / ref:.2f}x of one frame")


if __name__ == "__main__":
    main()
