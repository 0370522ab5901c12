"""Image files in and out, shared by the tools and training: one reader, one checked writer, one lister."""
from __future__ import annotations

from contextlib import suppress
from pathlib import Path
import re

import cv2
import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Formats that store only 8 bits per channel: 16-bit images are scaled down for them, not clipped.
EIGHT_BIT_EXTS = (".jpg", ".jpeg", ".bmp")


class ImageIOError(ValueError):
    """An image file cannot be read or written."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def natural_key(p: Path) -> list:
    """frame2 before frame10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, in natural name order."""
    folder = Path(folder)
    found = sorted((p for p in folder.iterdir() if is_image(p)), key=natural_key) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no images under {folder}")
    return found


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, with a clear error when unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageIOError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_any(path: str | Path) -> np.ndarray:
    """An image file as stored: grey, BGR or BGRA, 8 or 16 bit."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageIOError(f"cannot read image {path}")
    return img


def write_image(path: str | Path, img: np.ndarray, params: list[int] | None = None) -> Path:
    """Write a BGR/grey image (OpenCV order); 16-bit data is scaled to 8 bits for 8-bit-only formats.

    Raises when OpenCV could not write, which ``cv2.imwrite`` only signals by returning False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.dtype == np.uint16 and path.suffix.lower() in EIGHT_BIT_EXTS:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    try:
        ok = cv2.imwrite(str(path), img, params or [])
        why = "" if ok else "OpenCV could not write it"
    except cv2.error as exc:
        ok, why = False, str(exc)
    if not ok:        # a full disk leaves a plausible-looking truncated TIFF behind: never keep half a file
        with suppress(OSError):
            path.unlink()
        raise ImageIOError(f"cannot write image {path}: {why}")
    return path


def write_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    return write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)


def longest_side_shape(h: int, w: int, max_side: int) -> tuple[int, int]:
    """(height, width) after :func:`resize_longest_side`: what a downscaled frame's model sees."""
    if not max_side or max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_longest_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (INTER_AREA) so the longest side is ``max_side``; smaller images and 0 are left as they are."""
    h, w = img.shape[:2]
    nh, nw = longest_side_shape(h, w, max_side)
    if (nh, nw) == (h, w):
        return img
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out.reshape(out.shape[:2] + img.shape[2:])
