"""Per-camera diagnostic_msgs/DiagnosticStatus from the worker's counters."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class CameraHealth:
    """Remembers the last counters so a status turns WARN/ERROR only while something new happens."""

    def __init__(self) -> None:
        self._last = {"dropped": 0, "rejected": 0, "errors": 0}

    def status(self, name: str, hardware_id: str, snapshot: dict, dropped: int, extra: dict,
               subscribed: bool, warming_up: bool = False) -> DiagnosticStatus:
        level, words = DiagnosticStatus.OK, ["warming up (frames wait)"] if warming_up else []
        if snapshot["errors"] > self._last["errors"]:
            level, words = DiagnosticStatus.ERROR, words + ["frames failed (decode, inference or publish)"]
        if dropped > self._last["dropped"]:
            level, words = max(level, DiagnosticStatus.WARN), words + ["dropping frames (model slower than input)"]
        if snapshot["rejected"] > self._last["rejected"]:
            level, words = max(level, DiagnosticStatus.WARN), words + ["rejecting frames"]
        if not subscribed:
            level, words = max(level, DiagnosticStatus.WARN), words + ["waiting for a publisher"]
        self._last = {"dropped": dropped, "rejected": snapshot["rejected"], "errors": snapshot["errors"]}
        values = {**snapshot, "dropped_frames": dropped, **extra}
        return DiagnosticStatus(
            level=level, name=name, hardware_id=hardware_id, message="; ".join(words) or "ok",
            values=[KeyValue(key=k, value=f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in values.items()])
