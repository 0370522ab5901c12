"""Pictures that explain results: rainy | clean | residue strips and contact sheets."""
from __future__ import annotations

import cv2
import numpy as np


def _as_bgr8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def amplify(residue: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """Brighten a residue image for viewing: faint streaks are what matters."""
    top = np.iinfo(residue.dtype).max
    return np.clip(residue.astype(np.float32) * gain, 0, top).astype(residue.dtype)


def side_by_side(images: list[np.ndarray], labels: list[str] | None = None, gap: int = 4) -> np.ndarray:
    """Same-height BGR (or grey/BGRA/16-bit) images in a row with optional captions, as BGR uint8."""
    tiles = [_as_bgr8(i) for i in images]
    h = max(t.shape[0] for t in tiles)
    tiles = [cv2.resize(t, (round(t.shape[1] * h / t.shape[0]), h)) if t.shape[0] != h else t for t in tiles]
    if labels:
        for t, text in zip(tiles, labels):
            scale = max(0.4, h / 600)
            cv2.putText(t, text, (8, int(28 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(t, text, (8, int(28 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)
    spacer = np.full((h, gap, 3), 255, np.uint8)
    row = []
    for t in tiles:
        row += [t, spacer]
    return np.concatenate(row[:-1], axis=1)


def contact_sheet(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack strips vertically (padding narrower ones with white)."""
    w = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        if r.shape[1] < w:
            r = np.concatenate([r, np.full((r.shape[0], w - r.shape[1], 3), 255, np.uint8)], axis=1)
        padded += [r, np.full((gap, w, 3), 255, np.uint8)]
    return np.concatenate(padded[:-1], axis=0)
