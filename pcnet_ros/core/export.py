"""PCNet as ONNX (for ONNX Runtime and TensorRT) and as an OpenVINO IR, each checked against torch.

The exported graph takes ``rainy`` N,3,H,W in [0, 1] (H, W multiples of 4; pad
like the engine) and gives ``clean`` (B) alone: the re-rendered rainy image only
serves the training loss, and leaving it out spares its share of the work.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path
import warnings

import numpy as np
import torch

from pcnet_ros.core.model import CleanOutput, PCNet, SIZE_MULTIPLE

#: The torch.export-based exporter writes opset 18; the graph is brought down to 17, the newest that
#: TensorRT 8.6 (JetPack 6.0) reads. In PCNet only ReduceMean differs between the two.
OPSET = 17
#: Largest dynamic height and width: 4 * 2048 px.
MAX_SIDE = 8192


def onnx_bytes(model: PCNet, dynamic: bool = True, height: int = 64, width: int = 64, fp16: bool = False) -> bytes:
    """The ONNX graph; ``dynamic`` leaves batch, height and width (multiples of 4) free, and TensorRT then
    needs shape profiles. Made by torch's torch.export-based exporter: the TorchScript one is deprecated."""
    import importlib.util

    from torch.export import Dim

    for needed in ("onnx", "onnxscript"):
        if importlib.util.find_spec(needed) is None:
            raise ImportError(f"ONNX export needs the {needed} package (pip install onnx onnxscript)")
    m = CleanOutput(copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format))
    dummy = torch.zeros(1, 3, height, width)
    if fp16:
        m, dummy = m.half(), dummy.half()
    shapes = None
    if dynamic:
        side = MAX_SIDE // SIZE_MULTIPLE
        shapes = {"x": {0: Dim("n", min=1, max=1024), 2: SIZE_MULTIPLE * Dim("h", min=1, max=side),
                        3: SIZE_MULTIPLE * Dim("w", min=1, max=side)}}
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)          # "torchvision is not installed": true, and nothing here needs it
    try:
        with contextlib.redirect_stdout(io.StringIO()):      # its step-by-step progress lines
            program = torch.onnx.export(m, (dummy,), input_names=["rainy"], output_names=["clean"],
                                        dynamic_shapes=shapes, opset_version=18, dynamo=True, verbose=False)
    finally:
        registry.setLevel(level)
    return _to_opset(program.model_proto, OPSET).SerializeToString()


def _to_opset(proto, opset: int):
    """ONNX's own version converter, after dropping ReduceMean's ``noop_with_empty_axes`` where it holds its
    default 0: the attribute is new in opset 18, and the converter keeps it, which opset 17 rejects."""
    import onnx
    import onnx.version_converter

    for node in proto.graph.node:
        if node.op_type == "ReduceMean":
            keep = [a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
            del node.attribute[:]
            node.attribute.extend(keep)
    converted = onnx.version_converter.convert_version(proto, opset)
    onnx.checker.check_model(converted, full_check=True)
    return converted


def check_onnx(data: bytes, model: PCNet, height: int, width: int, fp16: bool = False) -> float:
    """Max |ONNX Runtime - torch| on a random frame of this size (fp32 torch reference)."""
    import onnxruntime as ort

    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model.float().eval()(x)[0].numpy()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feed = x.numpy().astype(np.float16 if fp16 else np.float32)
    out = sess.run(["clean"], {"rainy": feed})[0].astype(np.float32)
    return float(np.abs(out - ref).max())


def openvino_graph(model: PCNet, height: int = 0, width: int = 0):
    """The clean-only graph as an OpenVINO model; 0 for height/width leaves them dynamic (N is always free).

    Converted from a torch.jit trace although torch deprecates tracing: the graph OpenVINO 2026.4 makes
    from ``torch.export`` ran 1.5x (fp32) and 1.8x (bf16) slower at 480x320 on 2 cores, side by side
    (171 vs 263 ms, 114 vs 203 ms), and took twice as long to convert.
    """
    import openvino as ov

    m = CleanOutput(copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.trace", DeprecationWarning)   # chosen, see above
        return ov.convert_model(m, example_input=torch.zeros(1, 3, height or 64, width or 64),
                                input=[ov.PartialShape([-1, 3, height or -1, width or -1])])


def export_openvino(model: PCNet, path: Path, height: int = 0, width: int = 0) -> Path:
    """An OpenVINO IR (``.xml`` + ``.bin``); 0 for height/width leaves them dynamic."""
    import openvino as ov

    ov.save_model(openvino_graph(model, height, width), str(path), compress_to_fp16=False)
    return path


def check_openvino(path: Path, model: PCNet, height: int, width: int) -> float:
    import openvino as ov

    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model.float().eval()(x)[0].numpy()
    net = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = net(x.numpy())[net.outputs[0]]
    return float(np.abs(out - ref).max())
