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
from pcnet_ros.tools.bagio import bag_writer, IMAGE_TYPE, serialize_image, typestore

START_NS = 1_700_000_000 * 10**9


def write_image_bag(frames: list[np.ndarray], out: Path, topic: str = "/camera/image_raw", fps: float = 10.0,
                    storage: str = "mcap", frame_id: str = "camera", note: bool = True) -> Path:
    """Write RGB uint8 frames as an Image topic at ``fps``; header stamps equal the bag timestamps."""
    store = typestore()
    Header, Time = (store.types[t] for t in ("std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    String = store.types["std_msgs/msg/String"]
    with bag_writer(out, storage) as writer:
        conn = writer.add_connection(topic, IMAGE_TYPE, typestore=store)
        note_conn = writer.add_connection("/demo/note", "std_msgs/msg/String", typestore=store) if note else None
        for i, rgb in enumerate(frames):
            t = START_NS + int(i * 1e9 / fps)
            header = Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame_id)
            writer.write(conn, t, serialize_image(store, rgb, "rgb8", header))
            if note_conn is not None and i % 10 == 0:
                writer.write(note_conn, t, store.serialize_cdr(String(data=f"frame {i}"), "std_msgs/msg/String"))
    return out


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
    args = ap.parse_args(argv)
    frames = load_frames(args.frames, args.max_side, args.limit)
    write_image_bag(frames, args.output, args.topic, args.fps, args.storage)
    print(f"wrote {len(frames)} frames to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
