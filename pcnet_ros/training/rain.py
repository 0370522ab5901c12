"""Rain streak synthesis: turn clean frames into rainy/clean training pairs.

Streaks are drawn the way the Rain100 family was made: sparse random seeds,
smeared by a line-shaped motion-blur kernel of given length, angle and
width, softened by a Gaussian (depth-of-field), and screen-blended onto the
image so they only ever add light.  Heavy rain adds a veil of scattered light
(haze) on top.  Users can fine-tune on their own clean camera frames with it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class RainParams:
    density: float = 0.01     # fraction of pixels seeding a drop
    length: int = 15          # streak length in pixels
    angle: float = 0.0        # degrees from vertical; positive leans right
    width: int = 1            # streak thickness in pixels
    intensity: float = 0.6    # peak brightness added, 0..1
    blur: float = 0.5         # Gaussian sigma softening the streaks
    haze: float = 0.0         # 0..1 veiling light, heavy rain only

    def to_dict(self) -> dict:
        return asdict(self)


LIGHT = {"density": (0.004, 0.015), "length": (8, 25), "angle": (-25, 25), "width": (1, 1), "intensity": (0.35, 0.8),
         "blur": (0.3, 1.0), "haze": (0.0, 0.0)}
HEAVY = {"density": (0.02, 0.06), "length": (20, 50), "angle": (-35, 35), "width": (1, 3), "intensity": (0.5, 1.0),
         "blur": (0.5, 1.5), "haze": (0.0, 0.15)}
LEVELS = {"light": LIGHT, "heavy": HEAVY}


def random_params(rng: np.random.Generator, level: str = "light") -> RainParams:
    """Draw streak parameters uniformly from a preset's ranges."""
    try:
        ranges = LEVELS[level]
    except KeyError:
        raise ValueError(f"unknown rain level '{level}': use one of {sorted(LEVELS)}") from None
    kw = {}
    for name, (lo, hi) in ranges.items():
        kw[name] = int(rng.integers(lo, hi + 1)) if isinstance(lo, int) and isinstance(hi, int) else float(
            rng.uniform(lo, hi))
    return RainParams(**kw)


def streak_kernel(length: int, angle: float, width: int) -> np.ndarray:
    """Normalised line kernel: a drop's path during the exposure."""
    size = int(length) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    cv2.line(k, (c, 0), (c, size - 1), 1.0, thickness=max(1, int(width)))
    rot = cv2.getRotationMatrix2D((c, c), float(angle), 1.0)
    k = cv2.warpAffine(k, rot, (size, size), flags=cv2.INTER_LINEAR)
    return k / max(k.sum(), 1e-6)


def rain_layer(shape: tuple[int, int], p: RainParams, rng: np.random.Generator) -> np.ndarray:
    """HxW float32 streak layer in [0, 1]."""
    h, w = shape
    seeds = (rng.random((h, w), dtype=np.float32) < p.density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, size=(h, w)).astype(np.float32)  # drops differ in brightness
    layer = cv2.filter2D(seeds, -1, streak_kernel(p.length, p.angle, p.width), borderType=cv2.BORDER_REFLECT)
    if p.blur > 0:
        layer = cv2.GaussianBlur(layer, (0, 0), p.blur)
    peak = float(np.percentile(layer[layer > 0], 99)) if np.any(layer > 0) else 1.0
    return np.clip(layer / max(peak, 1e-6) * p.intensity, 0.0, 1.0)


def add_rain(clean: np.ndarray, p: RainParams, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render rain onto an HxWx3 uint8 image; returns a uint8 rainy image of the same shape."""
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {clean.shape} {clean.dtype}")
    rng = rng or np.random.default_rng()
    img = clean.astype(np.float32) / 255.0
    layer = rain_layer(clean.shape[:2], p, rng)[:, :, None]
    rainy = 1.0 - (1.0 - img) * (1.0 - layer)            # screen blend: streaks only add light
    if p.haze > 0:
        rainy = rainy * (1.0 - p.haze) + p.haze * 0.85     # veiling light from dense rain
    return np.clip(np.round(rainy * 255.0), 0, 255).astype(np.uint8)
