"""Ways to run the PCNet forward pass: each turns N,3,H,W floats in [0, 1] (H, W multiples of 4) into B.

All of them run the clean-only pass (``PCNet.clean``), which never builds the training-only R output.

eager        torch, channels_last, inference_mode
compile      torch.compile (inductor); CUDA graphs ("reduce-overhead") on a GPU, where sizes are stable
onnxruntime  the exported ONNX graph in ONNX Runtime (CUDA provider on a GPU)
openvino     the model converted once to OpenVINO, compiled per input size (LRU-cached): the fastest CPU path;
             a batch runs as single frames over its throughput streams
auto         compile-free and safe: eager on CUDA, openvino on a CPU where it is installed, else eager

Precision: fp32 everywhere; fp16 on CUDA; bf16 on CUDA, or on OpenVINO's CPU plugin where the CPU has
native bf16.  A precision a device cannot run is an error, never a silent fallback.
"""
from __future__ import annotations

import collections
import hashlib
import importlib.util
import os
from pathlib import Path
import tempfile
from typing import Callable, TypeVar

import numpy as np
import torch

from pcnet_ros.core.model import CLEAN_GRAPH, CleanOutput, PCNet

BACKENDS = ("auto", "eager", "compile", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16")
#: OpenVINO's INFERENCE_PRECISION_HINT for each precision it runs on a CPU.
OPENVINO_HINT = {"fp32": "f32", "bf16": "bf16"}
#: OpenVINO compilations kept (one per input size and mode: single frame or batch); older ones are dropped.
OPENVINO_CACHE = 4
#: Converted models kept on disk per format (OpenVINO IR, ONNX), newest first.
DISK_CACHE = 6
#: What ONNX Runtime's errors say when an allocation fails (its arena, CUDA, cuBLAS): it has no error type of its
#: own for that (microsoft/onnxruntime#16307), so the message is all there is to tell it from a broken graph.
ORT_OUT_OF_MEMORY = ("Failed to allocate memory", "is smaller than requested bytes", "out of memory",
                     "ALLOC_FAILED", "bad allocation")

Runner = Callable[[torch.Tensor], torch.Tensor]
T = TypeVar("T")


class BackendError(RuntimeError):
    """The backend or precision cannot run here; the message says why and what to use."""


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if device.type == "cpu" and openvino_available():
        return "openvino"
    return "eager"


def cpu_has_native_bf16() -> bool:
    """What OpenVINO's CPU plugin reports (avx512_bf16 or AMX); torch's CPU bf16 is emulated elsewhere."""
    if not openvino_available():
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def check_precision(precision: str, backend: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
    if precision == "fp32" or device.type == "cuda" and backend != "openvino":
        return
    if precision == "bf16" and backend == "openvino":
        if not cpu_has_native_bf16():
            raise BackendError("precision bf16 needs a CPU with native bf16 (avx512_bf16 or AMX); this one has "
                               "none: use fp32")
        return
    raise BackendError(f"precision {precision} with backend {backend} on {device.type} is not supported: "
                       f"fp16 runs on CUDA; bf16 on CUDA or with the openvino backend on a bf16 CPU")


def torch_dtype(precision: str, backend: str) -> torch.dtype:
    """The dtype the torch model and its inputs use (OpenVINO keeps fp32 tensors and lowers precision itself)."""
    if backend == "openvino":
        return torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def eager(model: PCNet) -> Runner:
    return model.clean


def compiled(model: PCNet, device: torch.device) -> Runner:
    mode = "reduce-overhead" if device.type == "cuda" else None     # CUDA graphs replay a stable size
    return torch.compile(CleanOutput(model), dynamic=False, mode=mode)


def onnxruntime(model: PCNet, device: torch.device, dtype: torch.dtype) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendError("backend 'onnxruntime' needs the onnxruntime package (pip install onnxruntime)") from exc
    if dtype != torch.float32:
        raise BackendError("the onnxruntime backend runs fp32; export an fp16 graph with pcnet-export for TensorRT")
    providers = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    # an application that registered shared allocators (ort.create_and_register_allocator, e.g. to cap the arena
    # or share it among engines) has them used here; without any this changes nothing
    opts.add_session_config_entry("session.use_env_allocators", "1")
    try:
        graph = onnx_graph(model)
    except ImportError as exc:
        raise BackendError(f"backend 'onnxruntime': {exc}") from exc
    session = ort.InferenceSession(graph, opts, providers=providers)

    def run(x: torch.Tensor) -> torch.Tensor:
        try:
            out = session.run(["clean"], {"rainy": x.float().contiguous().cpu().numpy()})[0]
        except Exception as exc:    # ORT's errors share no base of their own; an allocation failure becomes
            if any(m in str(exc) for m in ORT_OUT_OF_MEMORY):    # torch's, so the engine halves the call
                raise torch.OutOfMemoryError(f"onnxruntime ran out of memory: {exc}") from exc
            raise
        return torch.from_numpy(out).to(x.device)
    return run


def onnx_graph(model: PCNet) -> bytes:
    """The dynamic fp32 ONNX graph: exported once per weights (about 20 s: torch.export traces the whole
    network), then read from disk."""
    from pcnet_ros.core.export import OPSET, onnx_bytes

    name = f"pcnet-{CLEAN_GRAPH}-{_weights_digest(model)}-torch{torch.__version__}-opset{OPSET}.onnx"
    path = cache_dir() / "onnx" / name

    def load(p: Path) -> bytes:
        import onnx

        data = p.read_bytes()
        onnx.checker.check_model(onnx.load_from_string(data))     # a truncated or damaged file is made again
        return data
    return disk_cached(path, load, lambda: onnx_bytes(model, dynamic=True), lambda data, p: p.write_bytes(data))


def cache_dir() -> Path:
    """$PCNET_CACHE_DIR, else $XDG_CACHE_HOME/pcnet_ros, else ~/.cache/pcnet_ros."""
    if os.environ.get("PCNET_CACHE_DIR"):
        return Path(os.environ["PCNET_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pcnet_ros"


def _weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def disk_cached(path: Path, load: Callable[[Path], T], make: Callable[[], T], save: Callable[[T, Path], None]) -> T:
    """``load(path)`` where a good copy is on disk, else ``make()`` and keep it there for the next start.

    ``save`` writes into a staging folder; its files then move next to ``path``, ``path`` itself last, so a
    reader never finds it beside a half-written companion. A damaged entry is made again; a cache folder that
    cannot be written (a read-only home) is skipped. Only the newest ``DISK_CACHE`` entries are kept.
    """
    if path.is_file():
        try:
            return load(path)
        except Exception:  # any damage: make it again below
            pass
    made = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            save(made, staged)
            for f in sorted(Path(tmp).iterdir(), key=lambda f: f == staged):
                os.replace(f, path.parent / f.name)
        _prune(path.parent, path.suffix, keep=DISK_CACHE)
    except OSError:
        pass
    return made


def _prune(folder: Path, suffix: str, keep: int) -> None:
    """Keep the ``keep`` most recently written models (one per weights file seen), each with its companions."""
    models = sorted(folder.glob(f"pcnet-*{suffix}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in models[keep:]:
        for f in folder.glob(old.stem + ".*"):
            f.unlink(missing_ok=True)


def openvino_model(model: PCNet):
    """The clean-only graph as OpenVINO sees it, dynamic N, H, W: converted once per weights, then read from disk.

    Conversion traces the whole network (13 s on 2 busy cores); reading the cached IR takes a fraction.
    """
    import openvino as ov

    from pcnet_ros.core.export import openvino_graph

    core = ov.Core()
    name = f"pcnet-{CLEAN_GRAPH}-{_weights_digest(model)}-ov{ov.__version__.split('-')[0]}.xml"
    path = cache_dir() / "openvino" / name
    return disk_cached(path, lambda p: core.read_model(str(p)), lambda: openvino_graph(model),
                       lambda m, p: ov.save_model(m, str(p), compress_to_fp16=False))


def openvino(model: PCNet, precision: str, threads: int = 0) -> Runner:
    """One frame runs on a latency-compiled model (all threads on it); a batch runs as single-frame requests
    spread over OpenVINO's throughput streams, which on a few cores costs less per frame than either a batched
    graph or frames one at a time (pcnet-bench row (n))."""
    if not openvino_available():
        raise BackendError("backend 'openvino' needs the openvino package (pip install openvino)")
    import openvino as ov

    core = ov.Core()
    base = openvino_model(model)
    config = {"INFERENCE_PRECISION_HINT": OPENVINO_HINT[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled: collections.OrderedDict = collections.OrderedDict()   # (hint, shape) -> compiled model or queue

    def compiled_for(hint: str, shape: tuple[int, ...]):
        key = (hint, shape)
        if key in compiled:
            compiled.move_to_end(key)
            return compiled[key]
        m = base.clone()
        m.reshape({m.inputs[0]: ov.PartialShape(list(shape))})
        net = core.compile_model(m, "CPU", {**config, "PERFORMANCE_HINT": hint})
        if hint == "THROUGHPUT":
            net = ov.AsyncInferQueue(net, int(net.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        compiled[key] = net
        while len(compiled) > OPENVINO_CACHE:
            compiled.popitem(last=False)
        return net

    def run(x: torch.Tensor) -> torch.Tensor:
        frames = x.float().contiguous().numpy()
        if len(frames) == 1:
            net = compiled_for("LATENCY", frames.shape)
            return torch.from_numpy(net(frames)[net.outputs[0]])
        queue = compiled_for("THROUGHPUT", (1,) + frames.shape[1:])
        out = [None] * len(frames)

        def done(request, i: int) -> None:
            out[i] = request.get_output_tensor(0).data.copy()
        queue.set_callback(done)
        for i in range(len(frames)):
            queue.start_async({0: frames[i:i + 1]}, i)
        queue.wait_all()
        return torch.from_numpy(np.concatenate(out))
    return run


def make_runner(backend: str, model: PCNet, device: torch.device, precision: str,
                dtype: torch.dtype, threads: int = 0) -> Runner:
    if backend == "eager":
        return eager(model)
    if backend == "compile":
        return compiled(model, device)
    if backend == "onnxruntime":
        return onnxruntime(model, device, dtype)
    if backend == "openvino":
        if device.type != "cpu":
            raise BackendError("backend 'openvino' runs on the CPU here; use eager or compile on CUDA")
        return openvino(model, precision, threads)
    raise ValueError(f"unknown backend '{backend}'")
