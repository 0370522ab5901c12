"""The inference thread and the per-frame rules, without ROS: one place decides what happens to every frame.

Callbacks call :meth:`DerainWorker.admit` (header checks, no pixel copied) and
:meth:`DerainWorker.offer`, which parks the frame in its camera's one-slot
buffer and returns at once.  One dedicated thread takes frames round-robin,
decodes, runs the model and hands the result to the ``publish`` callback.
Every frame ends as exactly one :class:`Outcome`, and is counted:
received = published + passed through + dropped (stale) + rejected + failed.
"""
from __future__ import annotations

from dataclasses import dataclass
import enum
import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from pcnet_ros.core.engine import DerainEngine, DerainResult, estimate_frame_bytes, InputError
from pcnet_ros.ros.frame_slots import FrameSlots
from pcnet_ros.ros.image_codec import MalformedImage
from pcnet_ros.ros.stats import CameraStats


class OutputsClosed(Exception):
    """Raised by a publish callback whose topics are gone (a managed node deactivating)."""


class Outcome(enum.Enum):
    DERAINED = "derained"
    PASSED_THROUGH = "passed_through"   # enabled=false: the input message goes out untouched
    REJECTED = "rejected"               # unusable frame, counted by reason
    FAILED = "failed"                   # inference or publish error, counted
    DISCARDED = "discarded"             # finished after the outputs closed: counted as dropped


@dataclass(frozen=True)
class Settings:
    """The run-time parameters; swapped whole on ``ros2 param set``, read without locks."""
    enabled: bool = True
    publish_residue: bool = True
    residue_mode: str = "positive"
    max_input_size: int = 1920
    oversize_policy: str = "downscale"
    max_frame_memory_mb: int = 4096

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "Settings":
        return cls(**{k: values[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray      # HxWxC (or HxW) uint8/uint16
    bgr: bool              # colour order, for the model


#: payload -> Decoded; raises MalformedImage (counted by its reason) for data that is not an image.
Decoder = Callable[[Any], Decoded]
#: (camera, payload, result or None for pass-through, settings) -> None; runs on the inference thread.
Publisher = Callable[[int, Any, "DerainResult | None", Settings], None]


class DerainWorker:
    """Owns the slots, the inference thread, the frame rules and all per-camera counters."""

    def __init__(self, engine: DerainEngine, cameras: list[str], decode: Decoder, publish: Publisher,
                 settings: Settings, log: logging.Logger | Any = None, warmup: bool = True,
                 is_shutting_down: Callable[[], bool] = lambda: False) -> None:
        self.engine = engine
        self.cameras = list(cameras)
        self.settings = settings
        self.stats = [CameraStats() for _ in self.cameras]
        self.slots = FrameSlots(len(self.cameras))
        self._decode, self._publish = decode, publish
        self._log = log or logging.getLogger("pcnet.worker")
        self._warmup = warmup
        self._shutting_down = is_shutting_down
        self._thread: threading.Thread | None = None

    # ---- callback side (executor thread) ---------------------------------------------------
    def admit(self, camera: int, height: int, width: int, channels: int) -> bool:
        """Header-level size rules, before the frame can displace a good one; False = rejected and counted."""
        why = self._size_problem(height, width, channels, self.settings)
        if why:
            self.reject(camera, "oversize", why)
            return False
        return True

    def offer(self, camera: int, payload: Any, t_recv: float | None = None) -> None:
        """Park the newest frame of ``camera``; an unprocessed older one is dropped (counted)."""
        self.slots.put(camera, (payload, time.monotonic() if t_recv is None else t_recv))

    def received(self, camera: int, t: float | None = None) -> None:
        self.stats[camera].on_input(t)

    def reject(self, camera: int, reason: str, detail: str) -> Outcome:
        self.stats[camera].on_reject(reason)
        self._warn(f"{self.cameras[camera]}: dropped frame ({detail})")
        return Outcome.REJECTED

    def dropped(self, camera: int) -> int:
        return self.slots.dropped[camera]

    # ---- the rules (inference thread) -------------------------------------------------------
    def _size_problem(self, h: int, w: int, c: int, s: Settings) -> str | None:
        if not s.enabled:
            return None
        if s.max_input_size and max(h, w) > s.max_input_size and s.oversize_policy == "refuse":
            return f"{w}x{h} exceeds max_input_size {s.max_input_size} (oversize_policy refuse)"
        need = estimate_frame_bytes(h, w, c, s.max_input_size) / 2**20
        if need > s.max_frame_memory_mb:
            return (f"{w}x{h} would need about {need:.0f} MB, over max_frame_memory_mb {s.max_frame_memory_mb} "
                    f"(lower max_input_size or raise the budget)")
        return None

    def process(self, camera: int, payload: Any, t_recv: float) -> Outcome:
        """Everything that happens to one frame; returns how it ended (also counted)."""
        s = self.settings
        stats = self.stats[camera]
        result = None
        if s.enabled:
            try:
                frame = self._decode(payload)
            except MalformedImage as exc:
                return self.reject(camera, exc.reason, str(exc))
            img = frame.image
            why = self._size_problem(img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2], s)
            if why:
                return self.reject(camera, "oversize", why)
            try:
                if s.max_input_size and max(img.shape[:2]) > s.max_input_size:
                    result = self.engine.derain_downscaled(img, s.max_input_size, bgr=frame.bgr)
                else:
                    result = self.engine.derain(img, bgr=frame.bgr)
            except InputError as exc:
                return self.reject(camera, "bad_input", str(exc))
            except Exception as exc:  # CUDA OOM, driver errors: count, log, keep serving
                stats.on_error()
                self._error(f"{self.cameras[camera]}: inference failed: {exc!r}")
                self.engine.release_cached_memory()
                return Outcome.FAILED
        try:
            self._publish(camera, payload, result, s)
        except OutputsClosed:
            self.slots.count_drop(camera)
            return Outcome.DISCARDED
        except Exception as exc:
            if self._shutting_down():       # the context went away mid-frame: stop quietly
                self.slots.close()
                return Outcome.FAILED
            stats.on_error()
            self._error(f"{self.cameras[camera]}: publish failed: {exc!r}")
            return Outcome.FAILED
        stats.on_output(result.infer_s if result else 0.0, time.monotonic() - t_recv)
        return Outcome.DERAINED if result is not None else Outcome.PASSED_THROUGH

    # ---- thread lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pcnet-inference", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._warmup and self.engine.backend == "compile":
            self._info("backend 'compile': the first frame of each size compiles (about a minute on CPU)")
        elif self._warmup:
            try:
                self.engine.warmup()
            except Exception as exc:  # a broken device shows up here first; keep serving errors per frame
                self._error(f"warm-up failed: {exc!r}")
        while True:
            got = self.slots.take(timeout=0.5)
            if got is None:
                if self.slots.closed:
                    return
                continue
            camera, (payload, t_recv) = got
            self.process(camera, payload, t_recv)

    @property
    def busy(self) -> bool:
        """True while the thread is still inside a frame after :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 0.5) -> bool:
        """Stop taking frames; wait up to ``timeout`` for the frame in flight. True when the thread ended.

        A CPU frame can take seconds, and shutdown must stay prompt, so the thread
        (a daemon) is not waited for beyond ``timeout``.
        """
        self.slots.close()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        return not self.busy

    # ---- logging (rclpy logger or logging.Logger) -------------------------------------------
    def _warn(self, text: str) -> None:
        try:
            self._log.warning(text, throttle_duration_sec=5.0)
        except TypeError:
            self._log.warning(text)

    def _error(self, text: str) -> None:
        try:
            self._log.error(text, throttle_duration_sec=5.0)
        except TypeError:
            self._log.error(text)

    def _info(self, text: str) -> None:
        self._log.info(text)
