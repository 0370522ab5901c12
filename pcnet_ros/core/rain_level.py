"""How hard it is raining, read off the residue the model removed: two numbers and a coarse class.

``intensity``: mean light the model took away, as a fraction of full scale
(0..1).  ``coverage``: fraction of pixels where it took away more than
:data:`STREAK_THRESHOLD` of full scale (streak pixels).  ``level``: 0 dry, 1
light, 2 heavy, from ``coverage`` with thresholds set on this project's data
(README, *Rain level*): dry frames 0.00-0.04, Rain100L 0.06-0.18, RainTrainH
0.12-0.36 with the light weights, real rain video 0.01-0.05.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STREAK_THRESHOLD = 10 / 255
#: coverage at or above which the frame counts as light / heavy rain
LIGHT_COVERAGE, HEAVY_COVERAGE = 0.05, 0.20


@dataclass(frozen=True)
class RainLevel:
    intensity: float
    coverage: float

    @property
    def level(self) -> int:
        return 2 if self.coverage >= HEAVY_COVERAGE else 1 if self.coverage >= LIGHT_COVERAGE else 0


def measure(residue: np.ndarray, dtype: np.dtype) -> RainLevel:
    """From the signed int32 residue (rainy - clean) of an image of ``dtype``."""
    top = float(np.iinfo(dtype).max)
    removed = np.clip(residue, 0, None)
    if removed.ndim == 3:
        removed = removed[:, :, :3].mean(axis=2)    # colour channels; alpha passes through untouched
    removed = removed / top
    return RainLevel(float(removed.mean()), float((removed > STREAK_THRESHOLD).mean()))
