"""Training time as the weights card reports it (wall time with the run's pauses left out), and the step times the
progress bar shows.

A run paused so that tests get both cores (``kill -TSTP PID``, or Ctrl-Z in a terminal) stops
itself until SIGCONT, and that time does not count. SIGSTOP cannot be caught, so time paused
with it still counts.
"""
from __future__ import annotations

import os
import signal
import time


def stop_self(*_) -> None:
    """SIGTSTP's handler before the clock runs (loading data, the first validation): stop until SIGCONT. Left to
    its default, SIGTSTP is discarded in an orphaned process group (a run started with nohup from a shell that
    has gone), so a pause asked for while the run set up was silently lost."""
    os.kill(os.getpid(), signal.SIGSTOP)


class RunClock:
    """Seconds of training so far, resumed from ``already``; pauses on SIGTSTP between ``install`` and ``restore``."""

    def __init__(self, already: float = 0.0) -> None:
        self._start = time.monotonic() - already
        self.paused_s = 0.0
        self._previous = None

    def elapsed(self) -> float:
        return time.monotonic() - self._start - self.paused_s

    def _pause(self, *_) -> None:
        t = time.monotonic()
        stop_self()                                 # returns once SIGCONT arrives
        self.paused_s += time.monotonic() - t

    def install(self) -> "RunClock":
        self._previous = signal.signal(signal.SIGTSTP, self._pause)
        return self

    def restore(self) -> None:
        """Give the caller its own SIGTSTP handling back."""
        signal.signal(signal.SIGTSTP, self._previous)


class StepTimes:
    """The progress bar's data and compute seconds a step: a moving average (weight 0.1 on the newest step) that
    leaves out each process's first step, which compiles the model (``--compile``) and fills the allocator; seeded
    with it, the bar showed 84 s a step after 15 steps of 36 s (a 182 s first step)."""

    def __init__(self) -> None:
        self.seen = 0
        self.mean: dict[str, float] = {}

    def update(self, **seconds: float) -> None:
        self.seen += 1
        if self.seen == 1:
            return
        for k, v in seconds.items():
            self.mean[k] = v if k not in self.mean else 0.9 * self.mean[k] + 0.1 * v

    def postfix(self) -> dict[str, str]:
        """``{"data": "0.519s", ...}`` once a step after the first has been timed; empty until then."""
        return {k: f"{v:.3f}s" for k, v in self.mean.items()}
