import array
from pathlib import Path
import re
import sys

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from conftest import forged_jpeg, scene, shared_or_skip
from pcnet_ros.imageio import header_shape
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


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """What a Bayer sensor records: one colour per pixel, in 2x2 tiles named by their first row, then second."""
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for k, colour in enumerate(pattern):
        out[k // 2::2, k % 2::2] = rgb[k // 2::2, k % 2::2, "RGB".index(colour)]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits, bigendian", [(8, False), (16, False), (16, True)])
def test_bayer_frames_decode_to_their_colours(pattern, bits, bigendian):
    dtype = np.uint8 if bits == 8 else np.uint16
    rgb = np.zeros((12, 16, 3), dtype)
    rgb[:, :8] = (200, 120, 30)                                         # two flat colours side by side
    rgb[:, 8:] = (20, 90, 240)
    rgb = rgb * (257 if bits == 16 else 1)
    got, enc = image_codec.decode(_msg(_mosaic(rgb, pattern.upper()), f"bayer_{pattern}{bits}", 3, bigendian))
    assert enc.decoded_as == f"rgb{bits}" and not enc.bgr and got.shape == (12, 16, 3) and got.dtype == dtype
    for cols in (slice(2, 6), slice(10, 14)):                           # away from the edges and the seam
        np.testing.assert_allclose(got[2:-2, cols].astype(int), rgb[2:-2, cols].astype(int), atol=257 if bits == 16
                                   else 1)


@pytest.mark.parametrize("encoding, to_yuv", [
    ("yuv422", cv2.COLOR_RGB2YUV_UYVY), ("uyvy", cv2.COLOR_RGB2YUV_UYVY),
    ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUYV), ("yuyv", cv2.COLOR_RGB2YUV_YUYV)])
def test_yuv422_frames_decode_to_rgb(rng, encoding, to_yuv):
    rgb = scene(rng, 24, 32)[:, :, ::-1].copy()
    yuv = cv2.cvtColor(rgb, to_yuv)
    assert yuv.shape == (24, 32, 2)
    got, enc = image_codec.decode(_msg(yuv, encoding, pad=6))
    assert enc.decoded_as == "rgb8" and not enc.bgr and got.shape == rgb.shape
    err = np.abs(got.astype(int) - rgb)
    assert err.mean() < 4 and err.max() < 32                           # chroma is shared by pixel pairs
    flat = np.full((4, 8, 3), (200, 120, 30), np.uint8)                 # where it is the same: exact to rounding
    assert np.abs(image_codec.decode(_msg(cv2.cvtColor(flat, to_yuv), encoding))[0].astype(int) - flat).max() <= 1
    other = "yuyv" if encoding in ("yuv422", "uyvy") else "uyvy"          # the other byte order: not the picture
    assert np.abs(image_codec.decode(_msg(yuv, other))[0].astype(int) - rgb).mean() > 10


def _nv(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """What a 4:2:0 semi-planar camera sends: OpenCV's planar I420 with its U and V planes interleaved."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    u, v = (i420[h:].reshape(2, h // 2, w // 2))
    pairs = (u, v) if encoding == "nv12" else (v, u)
    return np.concatenate([i420[:h], np.stack(pairs, axis=-1).reshape(h // 2, w)])


@pytest.mark.parametrize("encoding", ["nv12", "nv21"])
def test_nv12_nv21_frames_decode_to_rgb(rng, encoding):
    rgb = scene(rng, 24, 32)[:, :, ::-1].copy()
    buf = _nv(rgb, encoding)
    assert buf.shape == (36, 32)
    msg = _msg(buf, encoding, pad=6)
    msg.height = 24                                                     # the image's rows, not the buffer's
    got, enc = image_codec.decode(msg)
    assert enc.decoded_as == "rgb8" and not enc.bgr and got.shape == rgb.shape
    # the same samples OpenCV's planar decoder reads, rearranged: the same picture, to the last bit
    np.testing.assert_array_equal(got, cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), cv2.COLOR_YUV2RGB_I420))
    assert np.abs(got.astype(int) - rgb).mean() < 8                    # chroma is shared by 2x2 pixels
    flat = np.full((4, 8, 3), (200, 120, 30), np.uint8)                 # where it is the same: exact to rounding
    flat_msg = Image(**image_codec.encode(_nv(flat, encoding), encoding))
    assert (flat_msg.height, flat_msg.width, flat_msg.step) == (4, 8, 8)
    assert np.abs(image_codec.decode(flat_msg)[0].astype(int) - flat).max() <= 2
    other = "nv21" if encoding == "nv12" else "nv12"                    # chroma the other way round: not the picture
    msg.encoding = other
    assert np.abs(image_codec.decode(msg)[0].astype(int) - rgb).mean() > 10
    msg.encoding, msg.data = encoding, bytes(msg.data)[:-6 - 1]         # the last chroma row cut short
    with pytest.raises(MalformedImage, match=r"step\*height of luma \+ 38\*\(12-1\)\+32 of chroma = 1362$"):
        image_codec.decode(msg)


def _nv24(y: np.ndarray, u: np.ndarray, v: np.ndarray, pad: int = 0) -> Image:
    """A 4:4:4 semi-planar frame as libcamera lays it out: luma rows of ``step`` bytes, then one row of interleaved
    UV per image row at twice that stride (its padding twice as long)."""
    h, w = y.shape
    step = w + pad
    luma = np.full((h, step), 0xAB, np.uint8)
    luma[:, :w] = y
    chroma = np.full((h, 2 * step), 0xCD, np.uint8)
    chroma[:, :2 * w] = np.stack([u, v], axis=-1).reshape(h, 2 * w)
    return Image(height=h, width=w, encoding="nv24", step=step, data=luma.tobytes() + chroma.tobytes())


def test_nv24_frames_decode_to_rgb_with_every_pixels_own_colour(rng):
    """NV24 (libcamera's 4:4:4 semi-planar, which camera_ros publishes and cv_bridge does not read): decoded with
    OpenCV's NV12 arithmetic, so the same samples give the same picture to the bit, and with a colour per pixel."""
    rgb = scene(rng, 24, 32)[:, :, ::-1].copy()
    nv12 = _nv(rgb, "nv12")
    y, uv = nv12[:24], nv12[24:].reshape(12, 16, 2)
    full = uv.repeat(2, axis=0).repeat(2, axis=1)                       # NV12's chroma, each pair on its 2x2 pixels
    want = image_codec.decode(Image(**image_codec.encode(nv12, "nv12")))[0]
    for pad in (0, 5):
        got, enc = image_codec.decode(_nv24(y, full[..., 0], full[..., 1], pad))
        assert enc.decoded_as == "rgb8" and not enc.bgr
        np.testing.assert_array_equal(got, want)
    # BT.601 limited-range 4:4:4 of the scene itself: every pixel keeps its own chroma (NV12 shares it by 2x2)
    f = rgb.astype(np.float64)
    yuv = [16 + f @ [0.257, 0.504, 0.098], 128 + f @ [-0.148, -0.291, 0.439], 128 + f @ [0.439, -0.368, -0.071]]
    y444, u444, v444 = (np.clip(np.round(c), 0, 255).astype(np.uint8) for c in yuv)
    err444 = np.abs(image_codec.decode(_nv24(y444, u444, v444, pad=3))[0].astype(int) - rgb)
    assert err444.max() <= 3 and err444.mean() < np.abs(want.astype(int) - rgb).mean() / 2
    swapped = image_codec.decode(_nv24(y444, v444, u444))[0]            # NV42's order: not the picture
    assert np.abs(swapped.astype(int) - rgb).mean() > 10
    odd = _nv24(y444[:3, :5], u444[:3, :5], v444[:3, :5], pad=1)        # no 2-pixel groups: any size
    np.testing.assert_array_equal(image_codec.decode(odd)[0], image_codec.decode(_nv24(y444, u444, v444))[0][:3, :5])
    odd.data = bytes(odd.data)[:6 * 3 + 12 * 2 + 10 - 1]                # the last chroma row cut short
    with pytest.raises(MalformedImage, match=r"luma \+ 12\*\(3-1\)\+10 of chroma = 52$"):
        image_codec.decode(odd)


@pytest.mark.parametrize("mutate, reason", [
    ({"encoding": "32FC1"}, "unsupported_encoding"),
    ({"encoding": "jpeg"}, "unsupported_encoding"),
    ({"encoding": "nv12", "height": 3, "step": 4}, "odd_size"),
    ({"encoding": "nv12", "height": 4, "step": 4, "data": b"\x00" * 16}, "short_data"),   # luma, but no chroma
    ({"encoding": "yuv422", "width": 3, "step": 6}, "odd_size"),
    ({"encoding": "bayer_rggb8", "height": 3, "step": 4}, "odd_size"),
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


@pytest.mark.parametrize("encoding, says", [("8UC3", "names no colour order"), ("16UC1", "names no colour order"),
                                            ("jpeg", "is not supported")])
def test_unsupported_encodings_say_why(encoding, says):
    msg = _msg(np.zeros((4, 4, 3), np.uint8), "rgb8")
    msg.encoding = encoding
    with pytest.raises(MalformedImage, match=f"'{encoding}' .*{says}.*: use one of rgb8, bgr8"):
        image_codec.decode(msg)


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


@pytest.mark.parametrize("shape,dtype,ext,params", [
    ((37, 53), np.uint8, ".png", []), ((37, 53, 3), np.uint8, ".png", []), ((37, 53, 4), np.uint8, ".png", []),
    ((37, 53), np.uint16, ".png", []), ((37, 53, 3), np.uint16, ".png", []), ((37, 53, 4), np.uint16, ".png", []),
    ((37, 53), np.uint8, ".jpg", []), ((37, 53, 3), np.uint8, ".jpg", []),
    ((37, 53, 3), np.uint8, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    ((37, 53, 3), np.uint8, ".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]),
])
def test_header_shape_reads_what_decoding_gives(rng, shape, dtype, ext, params):
    """The header's size and channels are those of the decoded image, from bytes, an rclpy uint8[] or numpy."""
    ok, buf = cv2.imencode(ext, rng.integers(0, 255, shape).astype(dtype), params)
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    want = (decoded.shape[0], decoded.shape[1], 1 if decoded.ndim == 2 else decoded.shape[2])
    for data in (buf.tobytes(), array.array("B", buf.tobytes()), buf):
        assert header_shape(data) == want


def test_header_shape_reads_a_camera_jpeg_past_its_exif_segment():
    path = sorted(shared_or_skip("real-rain-video", "ra1").glob("*.jpg"))[0]
    data = path.read_bytes()
    assert data[2:4] == b"\xff\xe1"                      # EXIF comes before the frame header
    assert header_shape(data) == cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape


def test_header_shape_tells_a_forged_size_and_nothing_about_junk():
    bomb = forged_jpeg(20000, 20000)
    assert len(bomb) < 1000 and header_shape(bomb) == (20000, 20000, 3)
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    for junk in (b"", b"\xff\xd8", b"\xff\xd8\xff\xe0 not really a jpeg", b"\x89PNG\r\n\x1a\n" + bytes(40),
                 png.tobytes()[:20], b"GIF89a" + bytes(20), bomb[:40]):
        assert header_shape(junk) is None


def test_every_encoding_sensor_msgs_names_is_read_but_the_bare_opencv_types():
    """sensor_msgs' own list (image_encodings.hpp, installed with the message package): every encoding that names
    a pixel layout is read; only the bare OpenCV types (8UC3, 32FC1, ...: depth, IR, no colour order) are refused."""
    header = Path(sys.prefix) / "include" / "sensor_msgs" / "sensor_msgs" / "image_encodings.hpp"
    if not header.is_file():
        pytest.skip(f"no {header}: sensor_msgs is not installed into this environment")
    names = re.findall(r'const char [A-Z0-9_]+\[\] = "([^"]+)"', header.read_text())
    assert len(names) > 40 and "nv24" in names
    generic = {n for n in names if image_codec._GENERIC.fullmatch(n)}
    assert set(names) - generic == set(image_codec.READABLE)


def test_readme_topics_table_names_every_readable_encoding_and_no_other():
    """The subscribed-image row of the README's Topics table is checked against READABLE, the one list."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `T` (subscribed, `input_transport: raw`)"))
    named = set(re.findall(r"\b(?:[a-z]+[0-9]+|yuv422(?:_yuy2)?|uyvy|yuyv|nv[0-9]+|bayer_[a-z]+[0-9]+)\b", row))
    assert named == set(image_codec.READABLE)
