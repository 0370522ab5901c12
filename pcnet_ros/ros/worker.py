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
from typing import Any, Callable, Sequence

import numpy as np

from pcnet_ros.core import rain_level
from pcnet_ros.core.engine import DerainEngine, DerainResult, InputError
from pcnet_ros.core.memory_budget import FrameBudget
from pcnet_ros.imageio import longest_side_shape, shape_of
from pcnet_ros.ros.frame_slots import FrameSlots
from pcnet_ros.ros.image_codec import MalformedImage
from pcnet_ros.ros.stats import CameraStats


class OutputsClosed(Exception):
    """Raised by a publish callback whose topics are gone (a managed node deactivating)."""


class Outcome(enum.Enum):
    DERAINED = "derained"
    PASSED_THROUGH = "passed_through"   # enabled=false: the input message goes out untouched
    REJECTED = "rejected"               # unusable frame, counted by reason
    FAILED = "failed"                   # decode, inference or publish error, counted
    DISCARDED = "discarded"             # finished after the outputs closed: counted as dropped


@dataclass(frozen=True)
class Settings:
    """The run-time parameters; swapped whole on ``ros2 param set``, read without locks."""
    enabled: bool = True
    publish_residue: bool = True
    publish_rain_level: bool = True
    jpeg_quality: int = 90
    residue_mode: str = "positive"
    max_input_size: int = 1920
    oversize_policy: str = "downscale"
    max_frame_memory_mb: int = 4096

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "Settings":
        return cls(**{k: values[k] for k in cls.__dataclass_fields__})

    def oversize(self, h: int, w: int) -> bool:
        """Longer than max_input_size: refused or run alone, downscaled, by oversize_policy."""
        return bool(self.max_input_size) and max(h, w) > self.max_input_size


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray      # HxWxC (or HxW) uint8/uint16
    bgr: bool              # colour order, for the model
    encoding: str          # sensor_msgs encoding of ``image`` (rgb8, bgr8, mono16, ...)


#: A pass-through that decodes holds the decoded frame and the message made from it.
PASSTHROUGH_COPIES = 2

#: payload -> Decoded; raises MalformedImage (counted by its reason) for data that is not an image.
Decoder = Callable[[Any], Decoded]
#: (camera, payload, decoded frame and result, or None and None for pass-through, settings) -> None;
#: runs on the inference thread.
Publisher = Callable[[int, Any, "Decoded | None", "DerainResult | None", Settings], None]


class DerainWorker:
    """Owns the slots, the inference thread, the frame rules and all per-camera counters."""

    def __init__(self, engine: DerainEngine, cameras: list[str], decode: Decoder, publish: Publisher,
                 settings: Settings, log: logging.Logger | Any = None, warmup: bool = True,
                 is_shutting_down: Callable[[], bool] = lambda: False, max_batch: int = 1,
                 warmup_sizes: Sequence[tuple[int, int]] = (), passthrough_decodes: bool = False) -> None:
        self.engine = engine
        #: enabled=false still decodes (compressed in, raw out): the budget then covers that decode.
        self.passthrough_decodes = passthrough_decodes
        self.cameras = list(cameras)
        self.settings = settings
        self.stats = [CameraStats() for _ in self.cameras]
        self.slots = FrameSlots(len(self.cameras))
        self._decode, self._publish = decode, publish
        self._log = log or logging.getLogger("pcnet.worker")
        self._warmup = warmup
        self._warmup_sizes = list(warmup_sizes)
        self._shutting_down = is_shutting_down
        self.max_batch = max(1, int(max_batch))
        self._thread: threading.Thread | None = None
        self._warmed = threading.Event()
        #: What the warm-up raised, if it did: the managed node's configure fails on it.
        self.warmup_error: Exception | None = None

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
            need = PASSTHROUGH_COPIES * h * w * max(c, 1) / 2**20 if self.passthrough_decodes else 0
            if need > s.max_frame_memory_mb:
                return (f"{w}x{h} would need about {need:.0f} MB to pass through decoded, over "
                        f"max_frame_memory_mb {s.max_frame_memory_mb}")
            return None
        if s.oversize(h, w) and s.oversize_policy == "refuse":
            return f"{w}x{h} exceeds max_input_size {s.max_input_size} (oversize_policy refuse)"
        budget = self.budget(s)
        if not budget.fits(h, w, c):
            return (f"{w}x{h} would need about {budget.need_mb(h, w, c):.0f} MB, over max_frame_memory_mb "
                    f"{s.max_frame_memory_mb} (lower max_input_size or raise the budget)")
        return None

    def budget(self, s: Settings) -> FrameBudget:
        """max_frame_memory_mb as the rule the tools' --max-frame-memory-mb also follows."""
        return FrameBudget.for_engine(s.max_frame_memory_mb, s.max_input_size, self.engine)

    def batch_limit(self, h: int, w: int, c: int, s: Settings) -> int:
        """How many such frames run together: max_batch, as few as max_frame_memory_mb holds."""
        return self.budget(s).batch_size(h, w, c, self.max_batch)

    def process(self, camera: int, payload: Any, t_recv: float) -> Outcome:
        """Everything that happens to one frame; returns how it ended (also counted)."""
        return self.process_many([(camera, payload, t_recv)])[0]

    def process_many(self, items: list[tuple[int, Any, float]]) -> list[Outcome]:
        """Frames taken together (one per camera): decoded, checked, run in same-size batches, published in order."""
        s = self.settings
        outcomes: list[Outcome | None] = [None] * len(items)
        frames: dict[int, Decoded] = {}
        results: dict[int, DerainResult] = {}
        if s.enabled:
            for i, (camera, payload, _) in enumerate(items):
                try:
                    frame = self._decode(payload)
                except MalformedImage as exc:
                    outcomes[i] = self.reject(camera, exc.reason, str(exc))
                    continue
                except Exception as exc:  # MemoryError, a codec bug: this frame fails, the thread lives on
                    self._fail(items, [i], outcomes, f"{self.cameras[camera]}: decoding failed: {exc!r}")
                    continue
                img = frame.image
                why = self._size_problem(*shape_of(img), s)
                if why:
                    outcomes[i] = self.reject(camera, "oversize", why)
                    continue
                frames[i] = frame
            self._infer(items, frames, results, outcomes, s)
        for i, (camera, payload, t_recv) in enumerate(items):
            if outcomes[i] is None:
                outcomes[i] = self._finish(camera, payload, frames.get(i), results.get(i), s, t_recv)
        return outcomes

    def _infer(self, items, frames: dict[int, Decoded], results: dict, outcomes: list, s: Settings) -> None:
        """Run the model: same-size frames as one batch (up to max_batch); oversize ones (refused earlier under
        ``oversize_policy: refuse``) run one at a time, downscaled."""
        groups: dict[tuple, list[int]] = {}
        for i, f in frames.items():
            groups.setdefault((f.image.shape, f.image.dtype.str, f.bgr), []).append(i)
        for key, idx in groups.items():
            step = self.batch_limit(*shape_of(frames[idx[0]].image), s)
            for start in range(0, len(idx), step):
                chunk = idx[start:start + step]
                try:
                    got = self.engine.derain_batch([frames[i].image for i in chunk], bgr=key[2],
                                                   max_side=s.max_input_size)
                    rains = [rain_level.measure(res.residue, res.clean.dtype) for res in got]
                except InputError as exc:
                    for i in chunk:
                        outcomes[i] = self.reject(items[i][0], "bad_input", str(exc))
                    continue
                except Exception as exc:  # CUDA OOM, driver errors, MemoryError: count, log, keep serving
                    self._fail(items, chunk, outcomes, f"inference failed on {len(chunk)} frame(s) of "
                                                       f"{self.cameras[items[chunk[0]][0]]}: {exc!r}")
                    self.engine.release_cached_memory()
                    continue
                for i, res, rain in zip(chunk, got, rains):
                    res.rain = rain
                    self.stats[items[i][0]].on_rain(rain)
                    results[i] = res

    def _fail(self, items, indices: list[int], outcomes: list, message: str) -> None:
        """Frames that could not be processed: counted as errors on their cameras, logged once."""
        for i in indices:
            self.stats[items[i][0]].on_error()
            outcomes[i] = Outcome.FAILED
        self._error(message)

    def _finish(self, camera: int, payload: Any, frame: Decoded | None, result: DerainResult | None, s: Settings,
                t_recv: float) -> Outcome:
        stats = self.stats[camera]
        try:
            self._publish(camera, payload, frame, result, s)
        except OutputsClosed:
            self.slots.count_drop(camera)
            return Outcome.DISCARDED
        except MalformedImage as exc:       # a pass-through that had to decode: junk, not a failure
            return self.reject(camera, exc.reason, str(exc))
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
        if self._warmup:
            try:
                self.warm_up()
            except Exception as exc:  # a broken device shows up here first; keep serving errors per frame
                self.warmup_error = exc
                self._error(f"warm-up failed: {exc!r}")
        self._warmed.set()
        while True:
            got = self.slots.take_many(self.max_batch, timeout=0.5)
            if not got:
                if self.slots.closed:
                    return
                continue
            self.process_many([(camera, payload, t_recv) for camera, (payload, t_recv) in got])

    def warm_up(self) -> None:
        """Dummy frames before traffic. Each input size compiles (openvino, compile) or picks kernels on its first
        frame, and a batch is another shape, so the given sizes run the way real frames will: alone, at the batch
        the cameras fill, or downscaled when over max_input_size. Without sizes, one small frame."""
        s = self.settings
        if not self._warmup_sizes:
            if self.engine.backend == "compile":
                self._info("backend 'compile': the first frame of each size compiles (about a minute on CPU); "
                           "set warmup_sizes to do it at start")
            else:
                self.engine.warmup()
            return
        plan = []                                # (width, height, oversize, batches): each size checked once
        for width, height in self._warmup_sizes:
            why = self._size_problem(height, width, 3, s)
            if why:
                self._warn(f"warm-up skips {width}x{height}: {why}")
            else:
                fill = min(len(self.cameras), self.batch_limit(height, width, 3, s))
                plan.append((width, height, s.oversize(height, width), sorted({1, fill})))
        # an oversize frame runs alone, at its downscaled size
        shapes = set()
        for width, height, big, batches in plan:
            shapes |= ({self.engine.input_shape(1, *longest_side_shape(height, width, s.max_input_size))} if big
                       else {self.engine.input_shape(n, height, width) for n in batches})
        kept = self.engine.shapes_kept
        if kept is not None and len(shapes) > kept:
            self._warn(f"warm-up: {self.engine.backend} keeps {kept} compiled shapes, {len(shapes)} asked for; the "
                       f"first {len(shapes) - kept} will compile again on their first frame")
        for width, height, big, batches in plan:
            t0 = time.monotonic()
            frame = np.zeros((height, width, 3), np.uint8)
            if big:
                self.engine.derain_downscaled(frame, s.max_input_size)
                how = f"downscaled to {s.max_input_size}"
            else:
                for n in batches:
                    self.engine.derain_batch([frame] * n)
                how = "batch " + " and ".join(map(str, batches))
            self._info(f"warmed up {width}x{height} ({how}) in {time.monotonic() - t0:.1f} s")

    def wait_warmed(self, timeout: float | None = None) -> bool:
        """Block until the warm-up has run, failed or not (True), or ``timeout`` seconds pass (False)."""
        return self._warmed.wait(timeout)

    @property
    def warming_up(self) -> bool:
        """True from start() until the warm-up has run: frames wait in their slots meanwhile (diagnostics say so)."""
        return self._thread is not None and not self._warmed.is_set()

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
