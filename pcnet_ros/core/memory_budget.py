"""How much host memory a frame takes to derain, and how many frames a budget holds.

One rule for the node's ``max_frame_memory_mb`` and the tools' ``--max-frame-memory-mb``: on a CPU, running
out of memory does not raise, the kernel's OOM killer ends the process without a word, so a frame that cannot
fit is refused, with a reason, before it is run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pcnet_ros.core.engine import DerainEngine

#: Measured peak working memory of one eager CPU pass, per model pixel (600-680 B at 480x320 .. 1920x1080).
#: OpenVINO needs about as much (565 B against eager's 647 at 960x640, 498 against 495 at 1920x1080), so one bound
#: serves every CPU backend.
MODEL_BYTES_PER_PIXEL = 700
#: Full-resolution copies around the model (uint8 in/out, int32 residue, float32 upsampled residue).
FRAME_BYTES_PER_PIXEL = 48


def estimate_frame_bytes(height: int, width: int, channels: int = 3, max_side: int = 0, passes: int = 1) -> int:
    """Working memory to derain one frame: its full-size copies plus ``passes`` model passes (one per
    view when flip-averaged: 2, or 4 on both axes) at (at most) ``max_side``."""
    model_px = height * width
    if max_side and max(height, width) > max_side:
        s = max_side / max(height, width)
        model_px = max(1, round(height * s)) * max(1, round(width * s))
    return height * width * max(channels, 1) * FRAME_BYTES_PER_PIXEL // 3 + model_px * MODEL_BYTES_PER_PIXEL * passes


@dataclass(frozen=True)
class FrameBudget:
    """Host memory one batch of frames may take, in MB."""
    mb: float
    max_side: int = 0
    model_passes: int = 1        # 0 where the model runs on a GPU: only the host copies count there

    @classmethod
    def for_engine(cls, mb: float, max_side: int, engine: "DerainEngine") -> "FrameBudget":
        """The budget for frames run by ``engine``: its passes count on a CPU; on a GPU, running out raises
        (and is reported as a failed frame), so only the host copies are budgeted."""
        return cls(mb, max_side, engine.passes if engine.device.type == "cpu" else 0)

    def need_mb(self, height: int, width: int, channels: int, frames: int = 1) -> float:
        return frames * estimate_frame_bytes(height, width, channels, self.max_side, self.model_passes) / 2**20

    def fits(self, height: int, width: int, channels: int, frames: int = 1) -> bool:
        """Whether ``frames`` such images fit together."""
        return self.need_mb(height, width, channels, frames) <= self.mb

    def batch_size(self, height: int, width: int, channels: int, limit: int) -> int:
        """How many such frames to run together: ``limit``, or as few as fit (at least one: a frame alone over
        the budget is refused before it gets here)."""
        return max(1, min(limit, int(self.mb // self.need_mb(height, width, channels))))
