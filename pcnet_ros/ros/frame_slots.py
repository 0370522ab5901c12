"""Per-camera one-slot buffers between subscription callbacks and the inference thread.

A callback only overwrites its camera's slot and returns, so the executor never
waits for the model.  An unprocessed frame that gets overwritten is a drop
(counted): latency stays bounded by one inference instead of growing with a
queue.  ``take`` serves cameras round-robin so a fast camera cannot starve a
slow one.
"""
from __future__ import annotations

import threading
from typing import Any


class FrameSlots:
    """One slot per camera; ``dropped`` counts frames overwritten or cleared unprocessed."""

    def __init__(self, cameras: int) -> None:
        self._slots: list[Any] = [None] * cameras
        self.dropped = [0] * cameras
        self._next = 0
        self._closed = False
        self._cv = threading.Condition()

    def put(self, camera: int, item: Any) -> bool:
        """Store the newest frame; returns True when it replaced an unprocessed one."""
        with self._cv:
            replaced = self._slots[camera] is not None
            if replaced:
                self.dropped[camera] += 1
            self._slots[camera] = item
            self._cv.notify()
            return replaced

    def take(self, timeout: float | None = None) -> tuple[int, Any] | None:
        """Wait for a frame; (camera, item), or None on timeout or after close()."""
        got = self.take_many(1, timeout)
        return got[0] if got else None

    def take_many(self, limit: int, timeout: float | None = None) -> list[tuple[int, Any]]:
        """Wait for frames; up to ``limit`` (camera, item), one per camera in round-robin order from where the
        last take stopped. Empty on timeout or after close()."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._closed or any(s is not None for s in self._slots), timeout):
                return []
            if self._closed:
                return []
            n, out, start = len(self._slots), [], self._next
            for k in range(n):
                cam = (start + k) % n
                if self._slots[cam] is not None and len(out) < limit:
                    out.append((cam, self._slots[cam]))
                    self._slots[cam] = None
                    self._next = (cam + 1) % n
            return out

    def pending(self) -> int:
        """Frames waiting to be taken."""
        with self._cv:
            return sum(item is not None for item in self._slots)

    def clear(self) -> int:
        """Drop every waiting frame (counted as dropped); returns how many there were."""
        with self._cv:
            n = 0
            for cam, item in enumerate(self._slots):
                if item is not None:
                    self.dropped[cam] += 1
                    self._slots[cam] = None
                    n += 1
            return n

    def count_drop(self, camera: int) -> None:
        """A frame taken but not published because the outputs closed meanwhile."""
        with self._cv:
            self.dropped[camera] += 1

    def close(self) -> None:
        """Wake and release the consumer; later takes return None."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
