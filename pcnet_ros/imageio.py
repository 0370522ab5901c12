"""Image files in and out, shared by the tools and training: one reader, one checked writer, one lister."""
from __future__ import annotations

from contextlib import suppress
from pathlib import Path
import re
import struct
from typing import Callable

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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> channels as OpenCV decodes it unchanged (grey, -, BGR, palette as BGR, grey+alpha, -, BGRA)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}
#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_shape(data) -> tuple[int, int, int] | None:
    """(height, width, channels) from a JPEG's or PNG's header, without decoding; None when it cannot tell.

    A few hundred bytes can declare a 30000x30000 image, and decoding allocates all of it before any size
    check could run (2.4 GB and 4 s for a 691-byte JPEG claiming 20000x20000), so whoever holds such
    data (the node's callback, pcnet-bag, pcnet-derain) reads the header first and applies its size rules.
    """
    buf = memoryview(data).cast("B")                # bytes, an rclpy uint8[] (array.array) or numpy alike
    n = len(buf)
    if n >= 26 and bytes(buf[:8]) == _PNG_SIGNATURE and bytes(buf[12:16]) == b"IHDR":
        width, height = struct.unpack_from(">II", buf, 16)
        channels = _PNG_CHANNELS.get(buf[25])
        return (height, width, channels) if width and height and channels else None
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:                          # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:   # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):                  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack_from(">H", buf, i + 2)
        if marker in _JPEG_SOF:
            if length < 8 or i + 10 > n:
                return None
            height, width = struct.unpack_from(">HH", buf, i + 5)
            components = buf[i + 9]
            # grey stays grey; colour and CMYK decode to BGR
            return (height, width, 1 if components == 1 else 3) if height and width and components else None
        if length < 2:
            return None
        i += 2 + length
    return None


def shape_of(img: np.ndarray) -> tuple[int, int, int]:
    """(height, width, channels) of a decoded HxW or HxWxC array."""
    return img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2]


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, with a clear error when unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageIOError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_any(path: str | Path, check: Callable[[int, int, int], None] | None = None) -> np.ndarray:
    """An image file as stored: grey, BGR or BGRA, 8 or 16 bit.

    ``check(height, width, channels)`` runs once: on a JPEG's or PNG's header before anything is decoded, so it
    can refuse (raise) a file that claims more pixels than there is memory for; on other formats once decoded.
    """
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as exc:
        raise ImageIOError(f"cannot read image {path}: {exc.strerror or exc}") from None
    shape = header_shape(data)
    if check is not None and shape is not None:
        check(*shape)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:
        raise ImageIOError(f"cannot read image {path}: {exc.err}") from None
    if img is None:
        raise ImageIOError(f"cannot read image {path}")
    if check is not None and shape is None:
        check(*shape_of(img))
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
