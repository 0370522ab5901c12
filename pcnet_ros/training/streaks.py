"""Heavy rain that looks like Rain100H: rendered streak layers, rotated, scaled, blurred and screen-blended.

RainMix-style augmentation: the rain-streak database of Garg & Nayar (white
streaks on black, rendered with a photometric rain model) supplies the shapes;
several layers per image, each turned by a shared wind direction plus a small
deviation, scaled, softened and brightened at random, are screen-blended onto
a clean image, so rain only ever adds light.  Dense settings reach the +16 to
+53 grey levels that RainTrainH's rain adds on average.

Reproducible: the same clean image, bank and seed give the same rainy image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pcnet_ros.imageio import list_images


@dataclass(frozen=True)
class StreakStyle:
    """Ranges the compositor draws from; ``heavy`` is calibrated against the RainTrainH sample."""
    layers: tuple[int, int] = (6, 12)         # streak layers per image (inclusive)
    angle: float = 20.0                        # shared direction, degrees from vertical, +-
    spread: float = 5.0                        # per-layer deviation from it, +-
    width: tuple[float, float] = (0.5, 1.0)    # scale across the streaks: RainTrainH's are thin...
    length: tuple[float, float] = (1.2, 3.0)   # ...and long: scale along them
    gain: tuple[float, float] = (0.6, 1.5)     # brightness of a layer
    blur: tuple[float, float] = (0.0, 1.2)     # Gaussian sigma (depth of field)
    haze: tuple[float, float] = (0.05, 0.25)   # veiling light, applied to 70% of the images


STYLES = {
    "heavy": StreakStyle(),
    "light": StreakStyle(layers=(1, 3), width=(0.5, 1.0), length=(0.8, 1.6), gain=(0.35, 0.8), haze=(0.0, 0.0)),
}


class StreakBank:
    """Streak layers held in memory as float32 grey in [0, 1]."""

    def __init__(self, folder: str | Path, limit: int = 0) -> None:
        paths = list_images(folder)
        if limit:
            paths = paths[:limit]
        self.layers = []
        for p in paths:
            g = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if g is None:
                raise ValueError(f"cannot read streak layer {p}")
            self.layers.append(g.astype(np.float32) / 255.0)
        self.folder = Path(folder)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, rng: np.random.Generator, shape: tuple[int, int], angle: float, width: float,
              length: float) -> np.ndarray:
        """One layer warped onto an HxW canvas: stretched ``width`` x ``length`` (across x along its near-vertical
        streaks), turned by ``angle`` degrees, at a random offset."""
        src = self.layers[int(rng.integers(len(self.layers)))]
        if rng.random() < 0.5:
            src = src[:, ::-1]
        h, w = shape
        sh, sw = src.shape
        a = np.deg2rad(angle)
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        lin = rot @ np.diag([width, length])
        centre = np.array([w / 2, h / 2]) + rng.uniform(-0.5, 0.5, 2) * (sw, sh)
        m = np.hstack([lin, (centre - lin @ np.array([sw / 2, sh / 2]))[:, None]]).astype(np.float32)
        return cv2.warpAffine(np.ascontiguousarray(src), m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_WRAP)


def composite(clean: np.ndarray, bank: StreakBank, rng: np.random.Generator,
              style: StreakStyle | str = "heavy") -> np.ndarray:
    """Render streak rain onto an HxWx3 uint8 image; returns uint8 of the same shape."""
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {clean.shape} {clean.dtype}")
    st = STYLES[style] if isinstance(style, str) else style
    h, w = clean.shape[:2]
    keep = np.ones((h, w), np.float32)               # screen blend: 1 - prod(1 - layer)
    wind = rng.uniform(-st.angle, st.angle)
    for _ in range(int(rng.integers(st.layers[0], st.layers[1] + 1))):
        layer = bank.layer(rng, (h, w), wind + rng.uniform(-st.spread, st.spread), rng.uniform(*st.width),
                           rng.uniform(*st.length))
        sigma = rng.uniform(*st.blur)
        if sigma > 0.3:
            layer = cv2.GaussianBlur(layer, (0, 0), sigma)
        keep *= 1.0 - np.clip(layer * rng.uniform(*st.gain), 0.0, 1.0)
    if st.haze[1] > 0 and rng.random() < 0.7:        # veiling light, screen-blended too: it only adds light,
        keep *= 1.0 - rng.uniform(*st.haze)            # as RainTrainH's rain never darkens a pixel
    img = clean.astype(np.float32) / 255.0
    rainy = 1.0 - (1.0 - img) * keep[:, :, None]
    return np.clip(np.round(rainy * 255.0), 0, 255).astype(np.uint8)
