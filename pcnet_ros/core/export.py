"""PCNet as ONNX (for ONNX Runtime and TensorRT) and as an OpenVINO IR, each checked against torch.

The exported graph takes ``rainy`` N,3,H,W in [0, 1] (H, W multiples of 4; pad
like the engine) and gives ``clean`` (B) alone: the re-rendered rainy image only
serves the training loss, and leaving it out spares its share of the work.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from pcnet_ros.core.model import CleanOutput, PCNet

OPSET = 17


def onnx_bytes(model: PCNet, dynamic: bool = True, height: int = 64, width: int = 64, fp16: bool = False) -> bytes:
    """The ONNX graph; ``dynamic`` leaves batch, height and width free (TensorRT then needs shape profiles)."""
    import copy

    m = CleanOutput(copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format))
    dummy = torch.zeros(1, 3, height, width)
    if fp16:
        m, dummy = m.half(), dummy.half()
    buf = io.BytesIO()
    axes = {"rainy": {0: "n", 2: "h", 3: "w"}, "clean": {0: "n", 2: "h", 3: "w"}} if dynamic else None
    torch.onnx.export(m, dummy, buf, input_names=["rainy"], output_names=["clean"], dynamic_axes=axes,
                      opset_version=OPSET, dynamo=False)
    return buf.getvalue()


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


def export_openvino(model: PCNet, path: Path, height: int = 0, width: int = 0) -> Path:
    """An OpenVINO IR (``.xml`` + ``.bin``); 0 for height/width leaves them dynamic."""
    import openvino as ov

    shape = [-1, 3, height or -1, width or -1]
    ov_model = ov.convert_model(CleanOutput(model.float().eval().to(memory_format=torch.contiguous_format)),
                                example_input=torch.zeros(1, 3, height or 64, width or 64),
                                input=[ov.PartialShape(shape)])
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return path


def check_openvino(path: Path, model: PCNet, height: int, width: int) -> float:
    import openvino as ov

    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model.float().eval()(x)[0].numpy()
    net = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = net(x.numpy())[net.outputs[0]]
    return float(np.abs(out - ref).max())
