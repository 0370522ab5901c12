"""pcnet-export: PCNet as ONNX (ONNX Runtime, TensorRT) or an OpenVINO IR, each checked against torch.

    pcnet-export --format onnx --out pcnet.onnx                       # dynamic N, H, W; fp32
    pcnet-export --format onnx --size 480x640 --fp16 --out pcnet_fp16_480x640.onnx
    pcnet-export --format openvino --out pcnet.xml                     # + pcnet.bin
    trtexec --onnx=pcnet.onnx --fp16 --minShapes=rainy:1x3x64x64 --optShapes=rainy:1x3x480x640 \\
            --maxShapes=rainy:4x3x1088x1920 --saveEngine=pcnet.plan

The graph's input ``rainy`` is N,3,H,W in [0, 1] with H and W multiples of 4
(the node pads to 32); its one output is ``clean``.  Every export is run once
on a random frame and compared with torch: ONNX through ONNX Runtime (max
|difference| <= 1e-4 in fp32, <= 5e-3 in fp16), the IR through OpenVINO.
The dynamic fp32 graph is kept in the same disk cache as the onnxruntime
backend's, so exporting the same weights again takes seconds, not ~20 s.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from pcnet_ros.core import export
from pcnet_ros.core.backends import onnx_graph
from pcnet_ros.core.weights import build_model, WeightsError
from pcnet_ros.paths import atomic_write
from pcnet_ros.tools.common import fail, OK

TOLERANCE = {False: 1e-4, True: 5e-3}


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 480x640, got '{text}'") from None
    if h % 4 or w % 4 or h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"height and width must be positive multiples of 4, got {h}x{w}")
    return h, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="light", help="bundled name (light, heavy) or a .pth path")
    ap.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    ap.add_argument("--out", type=Path, required=True, help="output file (.onnx, or .xml for OpenVINO)")
    ap.add_argument("--size", type=_size, help="fixed HxW (default: dynamic N, H, W)")
    ap.add_argument("--fp16", action="store_true", help="ONNX in half precision (for TensorRT --fp16 engines)")
    args = ap.parse_args(argv)
    try:
        model, meta = build_model(args.weights)
    except WeightsError as exc:
        return fail("pcnet-export", str(exc))
    h, w = args.size or (96, 128)
    limit = TOLERANCE[args.fp16]
    if args.format == "onnx":
        try:
            if args.size is None and not args.fp16:      # the graph the onnxruntime backend caches (20 s to make)
                data = onnx_graph(model)
            else:
                data = export.onnx_bytes(model, dynamic=args.size is None, height=h, width=w, fp16=args.fp16)
        except ImportError as exc:
            return fail("pcnet-export", str(exc))
        diff = export.check_onnx(data, model, h, w, fp16=args.fp16)     # checked before it is written
        checked = "ONNX Runtime"
        if diff <= limit:
            try:
                atomic_write(args.out, lambda tmp: tmp.write_bytes(data))
            except OSError as exc:
                return fail("pcnet-export", f"cannot write {args.out}: {exc}")
    else:
        if args.fp16:
            return fail("pcnet-export", "--fp16 applies to ONNX; OpenVINO chooses precision at compile time")
        if args.out.suffix != ".xml":
            return fail("pcnet-export", "an OpenVINO IR is written as NAME.xml (+ NAME.bin)")
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            export.export_openvino(model, args.out, *(args.size or (0, 0)))
        except (OSError, RuntimeError) as exc:
            return fail("pcnet-export", f"cannot write {args.out}: {exc}")
        diff = export.check_openvino(args.out, model, h, w)
        checked = "OpenVINO"
        if diff > limit:       # no IR that failed its check is left where a user would load it
            args.out.unlink(missing_ok=True)
            args.out.with_suffix(".bin").unlink(missing_ok=True)
    if diff > limit:
        return fail("pcnet-export", f"exported graph differs from torch by {diff:.2e} > {limit:.0e} on a {h}x{w} "
                                    f"frame ({checked}); nothing was written to {args.out}")
    shape = f"{h}x{w}" if args.size else "dynamic N, H, W"
    print(f"wrote {args.out} ({shape}, {'fp16' if args.fp16 else 'fp32'}, weights step {meta.get('step', '?')}); "
          f"{checked} vs torch on a {h}x{w} frame: max |diff| {diff:.2e} (limit {limit:.0e})")
    return OK


if __name__ == "__main__":
    sys.exit(main())
