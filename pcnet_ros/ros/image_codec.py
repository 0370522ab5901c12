"""sensor_msgs/Image <-> numpy, with validation that names what is wrong.

Works on any object with the Image fields (height, width, encoding,
is_bigendian, step, data), so it is tested without a ROS graph.  cv_bridge is
deliberately not used, even where it is installed: upstream ``imgmsg_to_cv2``
sizes rows as ``step / itemsize / channels`` (a ``step`` that is not a whole
number of pixels shears every row), demands ``len(data) >= step * height``, and
calls ``ndarray.newbyteorder()``, which numpy 2 removed.  This decoder handles
all three and is the one tested path on every install.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
import re
import sys

import cv2
import numpy as np

from pcnet_ros.imageio import shape_of


@dataclass(frozen=True)
class Encoding:
    channels: int                # per pixel in the message's buffer (semi-planar YUV: in its luma plane)
    dtype: type
    bgr: bool                    # colour order of the decoded array, for the engine
    decoded_as: str              # the encoding the decoded array is in, and is published in
    to_rgb: Callable[[np.ndarray], np.ndarray] | None = None   # the camera's buffer to RGB (YUV, Bayer)
    group: tuple[int, int] = (1, 1)     # pixels across and down that share samples: the size must divide by them
    chroma: tuple[int, int] | None = None   # semi-planar YUV: luma pixels across and down per interleaved chroma pair

    @property
    def decoded_channels(self) -> int:
        return 3 if self.to_rgb is not None else self.channels

    @property
    def rows_per_line(self) -> Fraction:
        """Rows of the tightly packed buffer per image row: 3/2 for NV12 (a half-height chroma plane), 3 for NV24."""
        return Fraction(1) if self.chroma is None else 1 + Fraction(2, self.chroma[0] * self.chroma[1])

    def planes(self, height: int, width: int, step: int) -> list[tuple[int, int, int, int]]:
        """(offset, rows, bytes per row, stride) of each plane in a message's data.  Semi-planar chroma follows
        ``height`` luma rows of ``step`` bytes, its rows ``2 * step / across`` apart, as V4L2 and libcamera lay out
        NV12 (the same stride as luma) and NV24 (twice it) when a buffer has one stride."""
        row = width * self.channels * np.dtype(self.dtype).itemsize
        if self.chroma is None:
            return [(0, height, row, step)]
        across, down = self.chroma
        return [(0, height, row, step), (step * height, height // down, 2 * width // across, 2 * step // across)]


def _opencv(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda buf: cv2.cvtColor(buf, code)


def _nv24_to_rgb(buf: np.ndarray) -> np.ndarray:
    """NV24 (luma rows, then rows of full-resolution interleaved UV) to RGB.  OpenCV has no NV24 conversion, so
    this is its NV12 arithmetic (BT.601 limited range, 20-bit fixed point) per pixel: a frame decodes to the last
    bit as it would had the camera sent the same samples as NV12."""
    h = buf.shape[0] // 3
    luma = np.maximum(buf[:h].astype(np.int32) - 16, 0) * 1220542 + (1 << 19)
    uv = buf[h:].reshape(h, buf.shape[1], 2).astype(np.int32) - 128
    u, v = uv[..., 0], uv[..., 1]
    rgb = np.stack([luma + 1673527 * v, luma - 852492 * v - 409993 * u, luma + 2116026 * u], axis=-1) >> 20
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _converted(channels: int, dtype: type, to_rgb: Callable[[np.ndarray], np.ndarray], group: tuple[int, int],
               chroma: tuple[int, int] | None = None) -> Encoding:
    return Encoding(channels, dtype, False, "rgb8" if dtype == np.uint8 else "rgb16", to_rgb, group, chroma)


def _semi_planar(to_rgb: Callable[[np.ndarray], np.ndarray], chroma: tuple[int, int]) -> Encoding:
    """8-bit luma then interleaved chroma; the pixels that share a chroma pair are the size's group."""
    return _converted(1, np.uint8, to_rgb, chroma, chroma)


#: Camera formats that arrive unconverted (USB and GMSL cameras' YUV 4:2:2; libcamera, Android and hardware
#: encoders' semi-planar YUV 4:2:0 and 4:4:4; machine-vision cameras' raw Bayer).  They decode to RGB and are
#: published as rgb8 / rgb16.  NV12/NV21/NV24 are laid out as libcamera's camera_ros sends them (``step`` is the
#: luma stride, the chroma plane follows; see Encoding.planes) and cv_bridge's pending NV12 support reads them.
#: Bayer names follow sensor_msgs (the first two pixels of the first row); OpenCV names the same patterns by the
#: second row's, so RGGB is its BayerBG, as in cv_bridge.
CONVERTED: dict[str, Encoding] = {
    "yuv422": _converted(2, np.uint8, _opencv(cv2.COLOR_YUV2RGB_UYVY), (2, 1)),
    "uyvy": _converted(2, np.uint8, _opencv(cv2.COLOR_YUV2RGB_UYVY), (2, 1)),
    "yuv422_yuy2": _converted(2, np.uint8, _opencv(cv2.COLOR_YUV2RGB_YUYV), (2, 1)),
    "yuyv": _converted(2, np.uint8, _opencv(cv2.COLOR_YUV2RGB_YUYV), (2, 1)),
    "nv12": _semi_planar(_opencv(cv2.COLOR_YUV2RGB_NV12), (2, 2)),
    "nv21": _semi_planar(_opencv(cv2.COLOR_YUV2RGB_NV21), (2, 2)),
    "nv24": _semi_planar(_nv24_to_rgb, (1, 1)),
    **{f"bayer_{pattern}{bits}": _converted(1, dtype, _opencv(getattr(cv2, f"COLOR_Bayer{opencv}2RGB")), (2, 2))
       for pattern, opencv in (("rggb", "BG"), ("bggr", "RG"), ("gbrg", "GR"), ("grbg", "GB"))
       for bits, dtype in (("8", np.uint8), ("16", np.uint16))},
}

#: Encodings derained as they are: each decodes to, and is published in, itself.
ENCODINGS: dict[str, Encoding] = {name: Encoding(channels, dtype, bgr, name) for name, (channels, dtype, bgr) in {
    "rgb8": (3, np.uint8, False),
    "bgr8": (3, np.uint8, True),
    "rgba8": (4, np.uint8, False),
    "bgra8": (4, np.uint8, True),
    "mono8": (1, np.uint8, False),
    "rgb16": (3, np.uint16, False),
    "bgr16": (3, np.uint16, True),
    "rgba16": (4, np.uint16, False),
    "bgra16": (4, np.uint16, True),
    "mono16": (1, np.uint16, False),
}.items()}
#: Everything a subscribed Image may carry: ENCODINGS are derained as they are, CONVERTED first become RGB.
READABLE: dict[str, Encoding] = {**ENCODINGS, **CONVERTED}

_HOST_BIG_ENDIAN = sys.byteorder == "big"
#: sensor_msgs' generic encodings ("8UC3", "16UC1", "32FC1"): OpenCV matrix types without colour semantics.
_GENERIC = re.compile(r"(8|16|32|64)(U|S|F)C[0-9]*")


class MalformedImage(ValueError):
    """A message that cannot be turned into an image; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def validate(msg) -> Encoding:
    """Cheap checks of the header fields against the data length; no pixel is copied."""
    return _checked_planes(msg)[0]


def _checked_planes(msg) -> tuple[Encoding, list[tuple[int, int, int, int]]]:
    """validate's checks, with the planes they checked (Encoding.planes), which decode then reads."""
    enc = READABLE.get(msg.encoding)
    if enc is None:
        why = (" is a bare OpenCV type that names no colour order (cv_bridge will not convert it to colour "
               "either), and may be depth or IR" if _GENERIC.fullmatch(msg.encoding) else " is not supported")
        raise MalformedImage("unsupported_encoding",
                             f"encoding '{msg.encoding}'{why}: use one of {', '.join(READABLE)}")
    h, w = int(msg.height), int(msg.width)
    if h == 0 or w == 0:
        raise MalformedImage("zero_size", f"image is {w}x{h}")
    across, down = enc.group
    if w % across or h % down:
        groups = f"{across}x{down}-pixel" if down > 1 else f"{across}-pixel"
        raise MalformedImage("odd_size", f"{msg.encoding} comes in {groups} groups; {w}x{h} is not a whole number")
    planes = enc.planes(h, w, msg.step)
    row = planes[0][2]
    if msg.step < row:
        raise MalformedImage("bad_step", f"step {msg.step} < width*channels*bytes = {row}")
    need = max(offset + stride * (rows - 1) + size for offset, rows, size, stride in planes)
    if len(msg.data) < need:
        if enc.chroma is None:
            formula = "step*(height-1)+width*channels*bytes"
        else:
            _, rows, size, stride = planes[1]
            formula = f"step*height of luma + {stride}*({rows}-1)+{size} of chroma"
        raise MalformedImage("short_data", f"data has {len(msg.data)} bytes, {w}x{h} {msg.encoding} with step "
                                           f"{msg.step} needs {formula} = {need}")
    return enc, planes


def decode(msg) -> tuple[np.ndarray, Encoding]:
    """Image message -> (HxWxC array, its Encoding); YUV and Bayer come out RGB. Raises MalformedImage."""
    enc, layout = _checked_planes(msg)
    h, w = int(msg.height), int(msg.width)
    planes = [_plane(msg.data, *plane) for plane in layout]
    if enc.chroma is not None:                        # the tightly packed buffer: luma rows, then chroma
        return enc.to_rgb(np.concatenate([plane.reshape(-1, w) for plane in planes])), enc
    dt = np.dtype(enc.dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = planes[0].view(dt).reshape(h, w, enc.channels)
    if np.dtype(enc.dtype).itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN:
        arr = arr.astype(np.dtype(enc.dtype).newbyteorder("="))
    if enc.to_rgb is not None:
        arr = enc.to_rgb(arr[:, :, 0] if enc.channels == 1 else arr)
    return arr, enc


def _plane(data, offset: int, rows: int, size: int, stride: int) -> np.ndarray:
    """One plane of a message's data as a (rows, size) uint8 array, copied out of its padding."""
    buf = np.frombuffer(data, dtype=np.uint8, count=stride * (rows - 1) + size, offset=offset)
    return np.ascontiguousarray(np.lib.stride_tricks.as_strided(buf, shape=(rows, size), strides=(stride, 1)))


def encode(array: np.ndarray, encoding: str) -> dict:
    """HxWxC (or HxW) array -> the Image fields, tightly packed, host byte order; data as bytes. For YUV and
    Bayer encodings the array is the camera's buffer (HxWx2, HxW; NV12/NV21: (H*3/2)xW, NV24: (H*3)xW, luma
    then chroma)."""
    enc = READABLE[encoding]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] != enc.channels or array.dtype != enc.dtype:
        raise ValueError(f"array {array.shape} {array.dtype} does not fit encoding {encoding}")
    if array.shape[0] % enc.rows_per_line.numerator:
        raise ValueError(f"{array.shape[0]} buffer rows are not a whole image for {encoding}")
    array = np.ascontiguousarray(array)
    return {"height": int(array.shape[0] / enc.rows_per_line), "width": array.shape[1], "encoding": encoding,
            "is_bigendian": int(_HOST_BIG_ENDIAN and array.dtype.itemsize > 1),
            "step": array.shape[1] * array.shape[2] * array.dtype.itemsize, "data": array.tobytes()}


def fill(msg, array: np.ndarray, encoding: str, header) -> None:
    """Write an array into an (rclpy) Image message, keeping ``header`` as given."""
    msg.header = header
    for key, value in encode(array, encoding).items():
        setattr(msg, key, value)


# ---- sensor_msgs/CompressedImage (image_transport's "compressed" plugin) --------------------------
def decode_compressed(msg) -> tuple[np.ndarray, str]:
    """CompressedImage -> (array as OpenCV decodes it: BGR, BGRA or grey; 8 or 16 bit, its raw encoding).

    Runs in the inference thread, never in the callback. Raises MalformedImage for data OpenCV cannot read.
    """
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if data.size == 0:
        raise MalformedImage("bad_compressed", "empty compressed image")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise MalformedImage("bad_compressed", f"'{msg.format}' data cannot be decoded: {exc}") from None
    if img is None or img.size == 0:
        raise MalformedImage("bad_compressed", f"'{msg.format}' data ({data.size} bytes) cannot be decoded")
    if img.dtype not in (np.uint8, np.uint16):
        raise MalformedImage("bad_compressed", f"decoded to unsupported {img.dtype}")
    channels = shape_of(img)[2]
    depth = "8" if img.dtype == np.uint8 else "16"
    encoding = {1: f"mono{depth}", 3: f"bgr{depth}", 4: f"bgra{depth}"}[channels]
    return img, encoding


#: JPEG quality that OpenCV honours (it clamps anything else, with a warning on every frame)
JPEG_QUALITY_RANGE = (1, 100)


def encode_compressed(array: np.ndarray, encoding: str, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """An array in ``encoding`` -> (image_transport format string, JPEG or PNG bytes).

    JPEG holds 8-bit grey or colour only: 16-bit images are scaled down, alpha is dropped. PNG keeps all.
    """
    enc = ENCODINGS[encoding]
    img = array if array.ndim == 3 else array[:, :, None]
    if enc.channels >= 3 and not enc.bgr:                      # OpenCV writes BGR(A)
        img = img[:, :, [2, 1, 0, 3][:enc.channels]]
    if fmt == "jpeg":
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.dtype == np.uint16:
            img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise ValueError(f"unknown compressed format '{fmt}': use jpeg or png")
    if not ok:
        raise ValueError(f"cannot encode {encoding} as {fmt}")
    depth = "8" if img.dtype == np.uint8 else "16"
    stored = {1: f"mono{depth}", 3: f"bgr{depth}", 4: f"bgra{depth}"}[img.shape[2]]
    return f"{encoding}; {fmt} compressed {stored}", buf.tobytes()
