"""Per-camera diagnostic_msgs/DiagnosticStatus from the worker's counters."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class CameraHealth:
    """Remembers the last counters so a status turns WARN/ERROR only while something new happens."""

    def __init__(self) -> None:
        self._last = {"dropped": 0, "rejected": 0, "errors": 0}
        self._caps: dict[tuple[int, int], int] = {}

    def status(self, name: str, hardware_id: str, snapshot: dict, dropped: int, extra: dict,
               subscribed: bool, warming_up: bool = False,
               pass_cap: dict[tuple[int, int], int] | None = None) -> DiagnosticStatus:
        """``pass_cap``: the engine's images-per-call limits by padded H, W; one that is new or lower since the
        last status turns it WARN, and ``images_per_call`` shows them all, so a device short of memory (a GPU, or
        an ONNX Runtime arena) is seen where the other health signals are, not only in the log."""
        caps = dict(pass_cap or {})
        level, words = DiagnosticStatus.OK, ["warming up (frames wait)"] if warming_up else []
        if any(n < self._caps.get(size, n + 1) for size, n in caps.items()):
            level, words = DiagnosticStatus.WARN, words + ["out of memory: fewer images a model call"]
        self._caps = caps
        if snapshot["errors"] > self._last["errors"]:
            level, words = DiagnosticStatus.ERROR, words + ["frames failed (decode, inference or publish)"]
        if dropped > self._last["dropped"]:
            level, words = max(level, DiagnosticStatus.WARN), words + ["dropping frames (model slower than input)"]
        if snapshot["rejected"] > self._last["rejected"]:
            level, words = max(level, DiagnosticStatus.WARN), words + ["rejecting frames"]
        if not subscribed:
            level, words = max(level, DiagnosticStatus.WARN), words + ["waiting for a publisher"]
        self._last = {"dropped": dropped, "rejected": snapshot["rejected"], "errors": snapshot["errors"]}
        values = {**snapshot, "dropped_frames": dropped, **extra, "images_per_call": images_per_call(caps)}
        return DiagnosticStatus(
            level=level, name=name, hardware_id=hardware_id, message="; ".join(words) or "ok",
            values=[KeyValue(key=k, value=f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in values.items()])


def images_per_call(pass_cap: dict[tuple[int, int], int]) -> str:
    """The engine's learned call limits as ``WxH: N`` (padded sizes), or ``all`` when none was needed."""
    return ", ".join(f"{w}x{h}: {n}" for (h, w), n in sorted(pass_cap.items())) or "all"
