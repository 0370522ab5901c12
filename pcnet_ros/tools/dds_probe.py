"""Measure image delivery between two processes over real DDS: how many frames arrive, how late.

    python -m pcnet_ros.tools.dds_probe sub --qos best_effort --expect 150 &
    python -m pcnet_ros.tools.dds_probe pub --qos best_effort --size 640x480 --count 150

The subscriber prints one JSON line. Used to find why best-effort images were
lost here (see README, "Transport"), and by the tests.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from pcnet_ros.ros.qos import make_profile


def publish(args: argparse.Namespace) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    w, h = (int(v) for v in args.size.split("x"))
    rclpy.init()
    node = rclpy.create_node("dds_probe_pub")
    pub = node.create_publisher(Image, args.topic, make_profile(args.qos, args.depth))
    deadline = time.time() + args.wait
    while pub.get_subscription_count() < args.subscribers and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let discovery settle on both sides
    frame = np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=frame.tobytes())
    msg.header.frame_id = "probe"
    period = 1.0 / args.rate
    t_next = time.time()
    for i in range(args.count):
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        msg.header.frame_id = f"probe/{i}"
        pub.publish(msg)
        t_next += period
        time.sleep(max(0.0, t_next - time.time()))
    time.sleep(args.linger)
    node.destroy_node()
    rclpy.shutdown()
    return {"published": args.count}


def subscribe(args: argparse.Namespace) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("dds_probe_sub")
    lat = []

    def on_image(msg: Image) -> None:
        sent = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        lat.append((time.time() - sent) * 1e3)

    node.create_subscription(Image, args.topic, on_image, make_profile(args.qos, args.depth))
    start = time.time()
    last_n, last_t = 0, time.time()
    while time.time() - start < args.timeout and len(lat) < args.expect:
        rclpy.spin_once(node, timeout_sec=0.1)
        if len(lat) != last_n:
            last_n, last_t = len(lat), time.time()
        elif last_n and time.time() - last_t > args.idle:
            break
    node.destroy_node()
    rclpy.shutdown()
    return {"received": len(lat), "median_latency_ms": round(statistics.median(lat), 2) if lat else None,
            "p95_latency_ms": round(statistics.quantiles(lat, n=20)[-1], 2) if len(lat) > 1 else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dds_probe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["pub", "sub"])
    ap.add_argument("--topic", default="probe/image")
    ap.add_argument("--qos", choices=["reliable", "best_effort"], default="reliable")
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--subscribers", type=int, default=1)
    ap.add_argument("--wait", type=float, default=10.0, help="pub: seconds to wait for subscribers")
    ap.add_argument("--linger", type=float, default=1.0)
    ap.add_argument("--expect", type=int, default=150)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--idle", type=float, default=3.0, help="sub: stop after this long without frames")
    args = ap.parse_args(argv)
    print(json.dumps(publish(args) if args.role == "pub" else subscribe(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
