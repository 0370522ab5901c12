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

from dataclasses import dataclass
import sys

import numpy as np


@dataclass(frozen=True)
class Encoding:
    channels: int
    dtype: type
    bgr: bool    # colour order for the engine


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(3, np.uint8, False),
    "bgr8": Encoding(3, np.uint8, True),
    "rgba8": Encoding(4, np.uint8, False),
    "bgra8": Encoding(4, np.uint8, True),
    "mono8": Encoding(1, np.uint8, False),
    "rgb16": Encoding(3, np.uint16, False),
    "bgr16": Encoding(3, np.uint16, True),
    "rgba16": Encoding(4, np.uint16, False),
    "bgra16": Encoding(4, np.uint16, True),
    "mono16": Encoding(1, np.uint16, False),
}

_HOST_BIG_ENDIAN = sys.byteorder == "big"


class MalformedImage(ValueError):
    """A message that cannot be turned into an image; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def validate(msg) -> Encoding:
    """Cheap checks of the header fields against the data length; no pixel is copied."""
    enc = ENCODINGS.get(msg.encoding)
    if enc is None:
        raise MalformedImage("unsupported_encoding",
                             f"encoding '{msg.encoding}' not supported (use one of {', '.join(ENCODINGS)})")
    h, w = int(msg.height), int(msg.width)
    if h == 0 or w == 0:
        raise MalformedImage("zero_size", f"image is {w}x{h}")
    row = w * enc.channels * np.dtype(enc.dtype).itemsize
    if msg.step < row:
        raise MalformedImage("bad_step", f"step {msg.step} < width*channels*bytes = {row}")
    if len(msg.data) < msg.step * (h - 1) + row:
        need = msg.step * (h - 1) + row
        raise MalformedImage("short_data", f"data has {len(msg.data)} bytes, {w}x{h} {msg.encoding} with step "
                                           f"{msg.step} needs step*(height-1)+width*channels*bytes = {need}")
    return enc


def decode(msg) -> tuple[np.ndarray, Encoding]:
    """Image message -> (HxWxC array, its Encoding). Raises MalformedImage."""
    enc = validate(msg)
    h, w = int(msg.height), int(msg.width)
    itemsize = np.dtype(enc.dtype).itemsize
    row = w * enc.channels * itemsize
    data = msg.data
    buf = np.frombuffer(data, dtype=np.uint8, count=msg.step * (h - 1) + row)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(msg.step, 1))
    dt = np.dtype(enc.dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(dt).reshape(h, w, enc.channels)
    if itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN:
        arr = arr.astype(np.dtype(enc.dtype).newbyteorder("="))
    return arr, enc


def encode(array: np.ndarray, encoding: str) -> dict:
    """HxWxC (or HxW) array -> the Image fields, tightly packed, host byte order; data as bytes."""
    enc = ENCODINGS[encoding]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] != enc.channels or array.dtype != enc.dtype:
        raise ValueError(f"array {array.shape} {array.dtype} does not fit encoding {encoding}")
    array = np.ascontiguousarray(array)
    return {"height": array.shape[0], "width": array.shape[1], "encoding": encoding,
            "is_bigendian": int(_HOST_BIG_ENDIAN and array.dtype.itemsize > 1),
            "step": array.shape[1] * array.shape[2] * array.dtype.itemsize, "data": array.tobytes()}


def fill(msg, array: np.ndarray, encoding: str, header) -> None:
    """Write an array into an (rclpy) Image message, keeping ``header`` as given."""
    msg.header = header
    for key, value in encode(array, encoding).items():
        setattr(msg, key, value)
