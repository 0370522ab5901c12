"""Array in, clean image and rain residue out: PCNet inference without ROS.

Data flow: HxWxC array -> float tensor in [0, 1] -> reflect-pad to a multiple
of 32 -> PCNet -> crop, clamp -> array of the input's dtype and layout.

Memory stays bounded under a stream of varying sizes: padding to a multiple of
32 (not just the model's 4) buckets sizes, oneDNN's primitive cache is capped,
and freed heap is handed back to the OS when the size changes (measured: 900
random 8-200 px frames grew RSS 353 -> 412 MB without buckets, 340 -> 342 MB
with them).

The residue is ``rainy - clean`` computed on the output dtype, returned as a
signed int32 array, so ``clean + residue == rainy`` holds exactly.  To show it
as an image see :func:`residue_to_image`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
import logging
import os
import threading
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pcnet_ros.core.backends import (BACKENDS, check_precision, make_runner, OPENVINO_CACHE, PRECISIONS,
                                     resolve_backend, torch_dtype)
from pcnet_ros.core.model import PCNet, SIZE_MULTIPLE
from pcnet_ros.core.rain_level import RainLevel
from pcnet_ros.imageio import resize_longest_side

# Read by oneDNN when it first builds a primitive: set before any convolution runs, override from outside.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

log = logging.getLogger(__name__)

#: Inputs are padded to a multiple of this: the model needs 4; 32 buckets sizes so caches stay small.
SIZE_BUCKET = 32
RESIDUE_MODES = ("positive", "signed")
#: The views a flip-averaged frame is run in, as the tensor dims each flips: ``horizontal``, the frame and its mirror
#: image; ``both``, also upside down and turned half round.  Quarter turns are left out: they lay near-vertical rain
#: flat, which the weights never saw (README, *Flip averaging*).
FLIP_VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {"horizontal": ((), (-1,)),
                                                      "both": ((), (-1,), (-2,), (-2, -1))}
FLIP_AXES = tuple(FLIP_VIEWS)


class InputError(ValueError):
    """The array cannot be derained (wrong shape, dtype or size)."""


@dataclass
class DerainResult:
    clean: np.ndarray      # same shape and dtype as the input
    residue: np.ndarray    # int32, rainy - clean, same shape as the input
    infer_s: float         # model time only, seconds
    rain: "RainLevel | None" = None   # filled in by whoever measures it (the node's worker)


def resolve_device(spec: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is an error, not a silent CPU fallback."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device '{spec}' requested but CUDA is not available "
                               f"(torch {torch.__version__}); use 'auto' or 'cpu'")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device '{spec}' requested but only {torch.cuda.device_count()} GPU(s) present")
        return dev
    raise ValueError(f"unknown device '{spec}': use auto, cpu, cuda or cuda:N")


def _malloc_trim():
    """glibc's malloc_trim, or a no-op elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda _pad: 0


_TRIM = _malloc_trim()


def padded(size: int, multiple: int = SIZE_MULTIPLE) -> int:
    """The side a padded input has: the smallest multiple of ``multiple`` not below ``size``."""
    return size + (-size) % multiple


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[torch.Tensor, int, int]:
    """Pad bottom/right so H and W are multiples; reflect where the image is large enough."""
    h, w = x.shape[-2:]
    ph, pw = padded(h, multiple) - h, padded(w, multiple) - w
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def residue_to_image(residue: np.ndarray, dtype: np.dtype, mode: str = "positive") -> np.ndarray:
    """Map the signed residue into a displayable image of ``dtype``.

    positive: max(rainy - clean, 0). Rain streaks add light, so this is the rain
              layer itself; pixels the model brightened (rare) read as 0.
    signed:   mid-grey + residue / 2, so darkening is visible too and
              rainy ~= clean + 2 * (image - mid) within 1 count.
    """
    top = np.iinfo(dtype).max
    if mode == "positive":
        return np.clip(residue, 0, top).astype(dtype)
    if mode == "signed":
        mid = (top + 1) // 2
        return np.clip(np.floor_divide(residue, 2) + mid, 0, top).astype(dtype)
    raise ValueError(f"unknown residue mode '{mode}': use one of {RESIDUE_MODES}")


class DerainEngine:
    """Runs PCNet on arrays, one frame or a batch of same-size frames. Thread-safe: calls are serialised.

    The pipeline is the same on every device: frames are stacked as integers on
    the host (in a pinned buffer on CUDA), uploaded asynchronously, normalised on
    the device, run by the chosen backend, rounded and narrowed to the frame's
    integer type on the device, and downloaded.  The CPU tests therefore cover
    all of it but the pinned copy.
    """

    def __init__(self, model: PCNet, device: str = "auto", precision: str = "fp32", channels_last: bool = True,
                 num_threads: int | None = None, backend: str = "eager", flip_average: bool = False,
                 flip_axes: str = "horizontal") -> None:
        if flip_axes not in FLIP_VIEWS:
            raise ValueError(f"unknown flip_axes '{flip_axes}': use one of {', '.join(FLIP_AXES)}")
        self.device = resolve_device(device)
        if num_threads:
            torch.set_num_threads(num_threads)
        self.backend = resolve_backend(backend, self.device)
        check_precision(precision, self.backend, self.device)
        self.precision = precision
        self.dtype = torch_dtype(precision, self.backend)
        self.channels_last = channels_last
        self.flip_average = flip_average
        self.flip_axes = flip_axes
        self.model = model.eval().to(self.device, dtype=self.dtype)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()
        self._last_shape: tuple[int, ...] | None = None
        self._pinned: dict[tuple, torch.Tensor] = {}
        #: The most images (frames x views) one model call may take, by padded H, W: learned where a larger call ran
        #: out of GPU memory, so a small GPU serves max_batch 4 x 4 views as several calls, not as failed frames.
        self.pass_cap: dict[tuple[int, int], int] = {}
        self._run = make_runner(self.backend, self.model, self.device, precision, self.dtype, num_threads or 0)

    @property
    def fp16(self) -> bool:
        return self.precision == "fp16"

    @property
    def views(self) -> tuple[tuple[int, ...], ...]:
        """The dims each view of a frame flips (``()``: as it is): one view unless flip-averaged."""
        return FLIP_VIEWS[self.flip_axes] if self.flip_average else ((),)

    @property
    def passes(self) -> int:
        """Model passes per frame: one per view."""
        return len(self.views)

    @property
    def default_batch(self) -> int:
        """How many same-size frames to run together: on a GPU, and with OpenVINO's throughput streams on a CPU
        (pcnet-bench row (n): 0.73-0.80x the per-frame time at batch 4 on 2 cores); torch on a few CPU cores
        gains nothing from a batch (1.07-1.3x)."""
        return 4 if self.device.type == "cuda" or self.backend == "openvino" else 1

    @property
    def shapes_kept(self) -> int | None:
        """How many compiled input shapes the backend keeps before it drops the oldest (None: no limit).
        openvino's cap is memory: measured RSS per compiled shape, 0.2-0.4 GB at 640x480, about 0.9 GB at 1280x720."""
        return OPENVINO_CACHE if self.backend == "openvino" else None

    @staticmethod
    def input_shape(n: int, h: int, w: int) -> tuple[int, int, int, int]:
        """The N,3,H,W tensor the backend sees for n frames of h x w: padded to SIZE_BUCKET, so nearby sizes
        share one compiled shape."""
        return n, 3, padded(h, SIZE_BUCKET), padded(w, SIZE_BUCKET)

    def describe(self) -> str:
        """How it runs, for logs: backend, precision and whether frames are flip-averaged."""
        return f"{self.backend}, {self.precision}" + (
            f", flip-averaged ({self.flip_axes}, {self.passes} views)" if self.flip_average else "")

    def warmup(self, height: int = 64, width: int = 64, runs: int = 2) -> None:
        """Run dummy frames so allocator and kernel selection happen before real traffic."""
        dummy = np.zeros((height, width, 3), np.uint8)
        for _ in range(runs):
            self.derain(dummy)

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """N,3,H,W float in [0, 1] (any size) -> clean N,3,H,W float in [0, 1].

        With ``flip_average`` each frame runs in every view of ``flip_axes`` (its mirror image; with ``both`` also
        upside down and turned half round), all as one batch (in smaller calls where ``pass_cap`` holds it), and the
        answers, flipped back, are averaged: 2 or 4 times the model work for a cleaner frame (measured in README,
        *Flip averaging*), for offline work or a GPU with time to spare.
        """
        x = x.to(self.device, dtype=self.dtype, non_blocking=True)
        n, views = x.shape[0], self.views
        if len(views) > 1:
            x = torch.cat([x.flip(v) if v else x for v in views])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x, h, w = pad_to_multiple(x, SIZE_BUCKET)
        out = self._run_capped(x)[..., :h, :w].clamp_(0.0, 1.0)
        if len(views) > 1:                  # the mean of the answers, each as it would be alone
            out = sum(a.flip(v) if v else a for a, v in zip(out.split(n), views)) / len(views)
        return out

    def _run_capped(self, x: torch.Tensor) -> torch.Tensor:
        """The model on N padded images, in calls of at most ``pass_cap`` for their size.  A call that runs out of
        memory (a GPU's, or an ONNX Runtime arena's) is halved and retried, and the smaller size kept for that frame
        size; a single image that does not fit raises, as before."""
        key = (x.shape[-2], x.shape[-1])
        while True:
            cap = self.pass_cap.get(key, x.shape[0])
            try:
                return torch.cat([self._run(part) for part in x.split(cap)]) if cap < x.shape[0] else self._run(x)
            except torch.OutOfMemoryError:
                if cap <= 1:
                    raise
            # out of the except block, so the failed call's activations are freed before the cache is emptied
            self.pass_cap[key] = cap // 2
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("out of %s memory at %d images of %dx%d a call: running %d at a time from now on",
                        self.device.type, cap, key[1], key[0], cap // 2)

    def release_cached_memory(self) -> None:
        """Give cached device memory and freed heap back (after an error, or when the input size changes)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self._pinned.clear()
        _TRIM(0)

    def _upload(self, host: np.ndarray) -> torch.Tensor:
        """N,H,W,3 integers -> the same on the device, asynchronously from pinned memory on CUDA."""
        t = torch.from_numpy(host if host.dtype == np.uint8 else host.astype(np.int32))
        if self.device.type != "cuda":
            return t
        key = (tuple(t.shape), t.dtype)
        if key not in self._pinned:
            self._pinned = {key: torch.empty(t.shape, dtype=t.dtype).pin_memory()}   # one size at a time
        buf = self._pinned[key]
        buf.copy_(t)
        return buf.to(self.device, non_blocking=True)

    def _download(self, out: torch.Tensor, top: float, dtype: np.dtype) -> np.ndarray:
        """Clean N,3,H,W floats -> N,H,W,3 integers of ``dtype``, rounded and narrowed on the device."""
        q = out.float().mul_(top).round_().clamp_(0, top)
        q = q.to(torch.uint8 if dtype == np.uint8 else torch.int32)
        return q.permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(dtype, copy=False)

    def derain(self, image: np.ndarray, bgr: bool = False) -> DerainResult:
        """Derain an HxW, HxWx1, HxWx3 or HxWx4 uint8/uint16 array.

        Colour order does not change the model's math much but is honoured:
        ``bgr=True`` swaps to RGB for the model and back. A 4th (alpha)
        channel passes through untouched; grey input is run as RGB and
        returned as grey.
        """
        return self.derain_batch([image], bgr)[0]

    def derain_batch(self, images: list[np.ndarray], bgr: bool = False, max_side: int = 0) -> list[DerainResult]:
        """Several frames of one size and type in one forward pass (cameras of a rig, frames of a bag);
        frames longer than ``max_side`` (if set) run one at a time through :meth:`derain_downscaled`."""
        if max_side < 0:
            raise InputError(f"max_side {max_side} is negative (0: never downscale)")
        if not images:
            return []
        first = images[0]
        if max_side and max(first.shape[:2]) > max_side:
            return [self.derain_downscaled(im, max_side, bgr) for im in images]
        prepared = [_to_rgb(im, bgr) for im in images]
        if any(im.shape != first.shape or im.dtype != first.dtype for im in images[1:]):
            raise InputError("a batch needs frames of one size and type")
        host = np.stack([np.ascontiguousarray(rgb) for rgb, _ in prepared])
        top = float(np.iinfo(first.dtype).max)
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            x = self._upload(host).permute(0, 3, 1, 2).to(self.dtype).div_(top)   # normalised on the device
            out = self._download(self.forward_tensor(x), top, first.dtype)
            infer_s = (time.perf_counter() - t0) / len(images)
        if first.shape != self._last_shape:
            self._last_shape = first.shape
            _TRIM(0)
        results = []
        for (_, restore), im, o in zip(prepared, images, out):
            clean = restore(o)
            results.append(DerainResult(clean=clean, residue=im.astype(np.int32) - clean.astype(np.int32),
                                        infer_s=infer_s))
        return results

    def derain_downscaled(self, image: np.ndarray, max_side: int, bgr: bool = False) -> DerainResult:
        """Derain a frame larger than ``max_side`` at reduced size, keeping full-resolution detail.

        The rain residue is estimated on the downscaled frame, upsampled, and
        subtracted from the full-resolution input: the background is never
        resampled, only the (smooth-ish) rain layer is.
        """
        if max_side < 0:
            raise InputError(f"max_side {max_side} is negative (0: never downscale)")
        h, w = image.shape[:2]
        if not max_side or max(h, w) <= max_side:
            return self.derain(image, bgr)
        small = resize_longest_side(image, max_side)
        res = self.derain(small, bgr)
        up = cv2.resize(res.residue.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(image.shape)
        top = np.iinfo(image.dtype).max
        clean = np.clip(np.round(image.astype(np.float32) - up), 0, top).astype(image.dtype)
        return DerainResult(clean, image.astype(np.int32) - clean.astype(np.int32), res.infer_s)


def _to_rgb(image: np.ndarray, bgr: bool):
    """Validate and convert to HxWx3 RGB; returns it and a function mapping RGB output back."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported dtype {image.dtype}: expected uint8 or uint16")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"expected a non-empty HxW or HxWxC image, got shape {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        keep_axis = image.ndim == 3
        grey = image[:, :, 0] if keep_axis else image

        def back_grey(rgb: np.ndarray) -> np.ndarray:
            # mean, not luma: the three channels came from one
            out = np.round(rgb.astype(np.float32).mean(axis=2)).astype(grey.dtype)
            return out[:, :, None] if keep_axis else out

        return np.repeat(grey[:, :, None], 3, axis=2), back_grey
    channels = image.shape[2]
    if channels not in (3, 4):
        raise InputError(f"unsupported channel count {channels}: expected 1, 3 or 4")
    colour = image[:, :, 2::-1] if bgr else image[:, :, :3]
    alpha = image[:, :, 3:] if channels == 4 else None

    def back(rgb: np.ndarray) -> np.ndarray:
        out = rgb[:, :, ::-1] if bgr else rgb
        return np.ascontiguousarray(out if alpha is None else np.concatenate([out, alpha], axis=2))

    return colour, back


__all__ = ["BACKENDS", "FLIP_AXES", "PRECISIONS", "DerainEngine", "DerainResult", "InputError", "RESIDUE_MODES",
           "pad_to_multiple", "residue_to_image", "resolve_device", "SIZE_BUCKET"]
