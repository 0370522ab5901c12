"""Rates, drop counts and latency percentiles per camera, for diagnostics."""
from __future__ import annotations

from collections import Counter, deque
import threading
import time

import numpy as np


class CameraStats:
    """Thread-safe: the callback, the inference thread and the diagnostics timer all touch it."""

    def __init__(self, window_s: float = 5.0, samples: int = 512) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._in = deque(maxlen=4096)
        self._out = deque(maxlen=4096)
        self._infer_ms = deque(maxlen=samples)
        self._e2e_ms = deque(maxlen=samples)
        self.received = 0
        self.published = 0
        self.rejected: Counter[str] = Counter()   # malformed / unsupported, by reason
        self.errors = 0                            # decode, inference or publish failures
        self.lost_in_transport = 0                 # samples DDS reported lost before the node saw them
        self.missed_sequence = 0                   # gaps in publishers' sequence numbers (see SequenceGaps)
        self.rain = None                           # RainLevel of the last derained frame

    def on_input(self, t: float | None = None) -> None:
        with self._lock:
            self.received += 1
            self._in.append(t if t is not None else time.monotonic())

    def on_output(self, infer_s: float, e2e_s: float, t: float | None = None) -> None:
        with self._lock:
            self.published += 1
            self._out.append(t if t is not None else time.monotonic())
            self._infer_ms.append(infer_s * 1e3)
            self._e2e_ms.append(e2e_s * 1e3)

    def on_reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def on_lost(self, count: int) -> None:
        with self._lock:
            self.lost_in_transport += count

    def on_rain(self, level) -> None:
        with self._lock:
            self.rain = level

    def on_missed(self, count: int) -> None:
        with self._lock:
            self.missed_sequence += count

    def on_error(self) -> None:
        with self._lock:
            self.errors += 1

    def _rate(self, stamps: deque, now: float) -> float:
        recent = [t for t in stamps if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def snapshot(self, now: float | None = None) -> dict[str, float]:
        now = now if now is not None else time.monotonic()
        with self._lock:
            def pct(d: deque, q: float) -> float:
                return float(np.percentile(d, q)) if d else 0.0

            return {
                "input_rate_hz": self._rate(self._in, now),
                "output_rate_hz": self._rate(self._out, now),
                "received": self.received,
                "published": self.published,
                "rejected": sum(self.rejected.values()),
                **{f"rejected_{reason}": n for reason, n in self.rejected.items()},
                "errors": self.errors,
                "lost_in_transport": self.lost_in_transport,
                "missed_sequence": self.missed_sequence,
                "inference_ms_p50": pct(self._infer_ms, 50),
                "inference_ms_p95": pct(self._infer_ms, 95),
                "end_to_end_ms_p50": pct(self._e2e_ms, 50),
                "end_to_end_ms_p95": pct(self._e2e_ms, 95),
                **({"rain_intensity": self.rain.intensity, "rain_coverage": self.rain.coverage,
                    "rain_level": self.rain.level} if self.rain is not None else {}),
            }


class SequenceGaps:
    """Frames a publisher sent that never reached the callback, from its sequence numbers.

    Covers what DDS does not report as lost: a burst longer than the
    subscription's history depth pushes older samples out of the queue before
    the callback takes them.  Transport losses show up here too, so
    ``missed_sequence >= lost_in_transport``.  Counting starts at the first
    sample seen from each publisher.
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def update(self, publisher: bytes, sequence: int | None) -> int:
        """Record one received sample; returns how many were skipped since the previous one."""
        if sequence is None or sequence <= 0:
            return 0
        last = self._last.get(publisher)
        self._last[publisher] = max(sequence, last or 0)
        if last is None or sequence <= last:
            return 0
        return sequence - last - 1
