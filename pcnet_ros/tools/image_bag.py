"""Build a rosbag2 of camera frames from an image folder: the demo camera and test fixtures.

    python -m pcnet_ros.tools.image_bag ../shared/data/real-rain-video/ra1 out/rain_demo --fps 10

Frames become sensor_msgs/Image (rgb8) on one topic at ``fps``, plus a
std_msgs/String on /demo/note so tools can show that other topics survive.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np

from pcnet_ros.imageio import list_images, read_rgb, resize_longest_side
from pcnet_ros.tools.bagio import bag_writer, COMPRESSED_TYPE, IMAGE_TYPE, serialize_image, typestore

START_NS = 1_700_000_000 * 10**9


def write_image_bag(frames: list[np.ndarray] | list[bytes], out: Path, topic: str = "/camera/image_raw",
                    fps: float = 10.0, storage: str = "mcap", frame_id: str = "camera", note: bool = True,
                    encoding: str = "rgb8") -> Path:
    """Write frames as one topic at ``fps``; header stamps equal the bag timestamps.

    Arrays become sensor_msgs/Image in ``encoding`` (RGB uint8 for rgb8; a camera's buffer for YUV or Bayer);
    bytes (JPEG or PNG files as a camera sends them) become sensor_msgs/CompressedImage.
    """
    store = typestore()
    Header, Time = (store.types[t] for t in ("std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    String = store.types["std_msgs/msg/String"]
    compressed = bool(frames) and isinstance(frames[0], (bytes, bytearray))
    with bag_writer(out, storage) as writer:
        conn = writer.add_connection(topic, COMPRESSED_TYPE if compressed else IMAGE_TYPE, typestore=store)
        note_conn = writer.add_connection("/demo/note", "std_msgs/msg/String", typestore=store) if note else None
        for i, frame in enumerate(frames):
            t = START_NS + int(i * 1e9 / fps)
            header = Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame_id)
            if compressed:
                fmt = "png" if frame[:4] == b"\x89PNG" else "jpeg"
                msg = store.types[COMPRESSED_TYPE](header=header, format=fmt, data=np.frombuffer(frame, np.uint8))
                writer.write(conn, t, store.serialize_cdr(msg, COMPRESSED_TYPE))
            else:
                writer.write(conn, t, serialize_image(store, frame, encoding, header))
            if note_conn is not None and i % 10 == 0:
                writer.write(note_conn, t, store.serialize_cdr(String(data=f"frame {i}"), "std_msgs/msg/String"))
    return out


def load_files(folder: Path, limit: int = 0) -> list[bytes]:
    """The image files of a folder as they are stored (JPEG/PNG bytes), in natural order."""
    paths = list_images(folder)
    return [p.read_bytes() for p in (paths[:limit] if limit else paths)]


def load_frames(folder: Path, max_side: int = 0, limit: int = 0) -> list[np.ndarray]:
    paths = list_images(folder)
    if limit:
        paths = paths[:limit]
    frames = []
    for p in paths:
        frames.append(resize_longest_side(read_rgb(p), max_side))
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-demo-bag", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--topic", default="/camera/image_raw")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    ap.add_argument("--max-side", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--compressed", action="store_true",
                    help="store the files' own JPEG/PNG bytes as sensor_msgs/CompressedImage (topic default "
                         "/camera/image_raw/compressed)")
    args = ap.parse_args(argv)
    if args.compressed:
        frames = load_files(args.frames, args.limit)
        topic = args.topic if args.topic != "/camera/image_raw" else "/camera/image_raw/compressed"
    else:
        frames, topic = load_frames(args.frames, args.max_side, args.limit), args.topic
    write_image_bag(frames, args.output, topic, args.fps, args.storage)
    print(f"wrote {len(frames)} frames to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
