"""Real rain on new backgrounds: the rain layer of a training pair, added onto another clean image.

Rain100L and RainTrainH were made by adding grey rain to clean images and
clipping (checked on the pairs: rainy - clean is never negative, equal in the
three channels and uncorrelated with the background where nothing clips).  So
``rainy - clean`` of a pair *is* its rain, and adding it to other clean patches
gives pairs of exactly the benchmark's rain on many more scenes than the few
that were rendered; synthesized rain only approximates it.

Where a rainy pixel clipped at 255 the difference underestimates the rain; the
channel with the darkest background loses least, so the layer keeps the
largest of the three differences.
"""
from __future__ import annotations

import numpy as np


def rain_layer(rainy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The HxW uint8 grey rain of one HxWx3 uint8 pair: max over channels of rainy - clean, floored at 0."""
    if rainy.shape != clean.shape or rainy.ndim != 3 or rainy.dtype != np.uint8 or clean.dtype != np.uint8:
        raise ValueError(f"expected two HxWx3 uint8 images of one shape, got {rainy.shape} {rainy.dtype} and "
                         f"{clean.shape} {clean.dtype}")
    d = rainy.astype(np.int16) - clean.astype(np.int16)
    return np.clip(d.max(axis=2), 0, 255).astype(np.uint8)


def add_rain(clean: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``clean`` (HxWx3 uint8) with the grey ``layer`` (HxW uint8) added and clipped, as the benchmarks did."""
    if layer.shape != clean.shape[:2]:
        raise ValueError(f"rain layer {layer.shape} does not cover the image {clean.shape[:2]}")
    return np.minimum(clean.astype(np.uint16) + layer[:, :, None], 255).astype(np.uint8)


def crop_layer(layers: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size x size crop of a random layer, mirrored half the time (mirroring keeps the rain's tilt
    distribution symmetric, as the pairs' own flips do)."""
    layer = layers[int(rng.integers(len(layers)))]
    h, w = layer.shape
    if min(h, w) < size:
        raise ValueError(f"rain layer {layer.shape} smaller than the patch {size}")
    y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    crop = layer[y:y + size, x:x + size]
    return crop[:, ::-1] if rng.random() < 0.5 else crop
