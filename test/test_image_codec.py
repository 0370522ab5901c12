import numpy as np
import pytest
from sensor_msgs.msg import Image

from pcnet_ros.ros import image_codec
from pcnet_ros.ros.image_codec import ENCODINGS, MalformedImage


def _msg(arr, encoding, pad=0, bigendian=False):
    h, w = arr.shape[:2]
    a = arr.reshape(h, w, -1)
    if bigendian and a.dtype.itemsize > 1:
        a = a.astype(a.dtype.newbyteorder(">"))
    row = a.shape[1] * a.shape[2] * a.dtype.itemsize
    rows = np.zeros((h, row + pad), np.uint8)
    rows[:, :row] = np.ascontiguousarray(a).view(np.uint8).reshape(h, row)
    rows[:, row:] = 0xAB  # padding bytes must never leak into pixels
    return Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=row + pad,
                 data=rows.tobytes())


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_decode_roundtrip(rng, encoding, pad, bigendian):
    enc = ENCODINGS[encoding]
    arr = rng.integers(0, np.iinfo(enc.dtype).max, size=(7, 9, enc.channels), endpoint=True).astype(enc.dtype)
    got, info = image_codec.decode(_msg(arr, encoding, pad, bigendian))
    assert info == enc
    np.testing.assert_array_equal(got, arr)
    out = Image()
    hdr = Image().header
    hdr.frame_id = "cam"
    hdr.stamp.sec = 42
    image_codec.fill(out, got, encoding, hdr)
    assert out.step == 9 * enc.channels * np.dtype(enc.dtype).itemsize and out.header.frame_id == "cam"
    back, _ = image_codec.decode(out)
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("mutate, reason", [
    ({"encoding": "yuv422"}, "unsupported_encoding"),
    ({"encoding": "bayer_rggb8"}, "unsupported_encoding"),
    ({"height": 0}, "zero_size"),
    ({"width": 0}, "zero_size"),
    ({"step": 5}, "bad_step"),
    ({"data": b"\x00" * 10}, "short_data"),
    ({"height": 100}, "short_data"),
])
def test_malformed_named(mutate, reason):
    msg = _msg(np.zeros((4, 4, 3), np.uint8), "rgb8")
    for k, v in mutate.items():
        setattr(msg, k, v)
    with pytest.raises(MalformedImage) as err:
        image_codec.decode(msg)
    assert err.value.reason == reason


def test_last_row_may_omit_padding():
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = _msg(arr, "rgb8", pad=4)
    msg.data = bytes(msg.data)[:-4]   # some drivers don't pad the final row
    np.testing.assert_array_equal(image_codec.decode(msg)[0], arr)


def test_short_data_message_states_the_bytes_actually_needed():
    """A padded last row may be cut short; the message names exactly the count the check uses."""
    arr = np.zeros((3, 4, 3), np.uint8)
    msg = _msg(arr, "rgb8", pad=5)                          # step 17, rows of 12 bytes
    needed = 17 * 2 + 12
    msg.data = msg.data[:needed]
    assert image_codec.decode(msg)[0].shape == (3, 4, 3)   # exactly enough is accepted
    msg.data = msg.data[:needed - 1]
    with pytest.raises(image_codec.MalformedImage, match=f"= {needed}$"):
        image_codec.decode(msg)
