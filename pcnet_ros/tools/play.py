"""pcnet-play: publish a rosbag2's topics over real DDS at the recorded rate (for hosts without `ros2 bag play`).

    pcnet-play out/rain_demo --rate 1.0 --loop --clock

Message bytes go out exactly as recorded (CDR is deserialized straight into the
rclpy type), so headers and stamps are the recorded ones.  With --clock it also
publishes /clock, for nodes running with use_sim_time.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
import sys
import time

from pcnet_ros.tools.bagio import BagError, open_reader, read_messages


def _msg_class(msgtype: str):
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _wait_for_acks(pubs: list, timeout_s: float = 5.0) -> None:
    """Before the process exits, let reliable subscribers acknowledge the last messages (nothing lost)."""
    from rclpy.duration import Duration
    from rclpy.qos import ReliabilityPolicy

    for p in pubs:
        if p.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            p.wait_for_all_acked(Duration(seconds=timeout_s))


def play(bag_path: Path, rate: float = 1.0, loop: bool = False, clock: bool = False, topics: list[str] | None = None,
         qos: str = "reliable", wait_for_subscribers: float = 0.0, node=None, on_publish=None,
         delay: float = 0.0) -> int:
    """Publish the bag; returns the number of messages published. Uses ``node`` or makes its own."""
    import rclpy
    from rclpy.serialization import deserialize_message

    from pcnet_ros.ros.qos import make_profile

    if rate <= 0:
        raise ValueError("rate must be > 0")
    reader = open_reader(bag_path)
    missing = sorted(set(topics or ()) - {c.topic for c in reader.connections})
    if missing:     # a misspelt name would otherwise play the other topics as if all were found
        reader.close()
        raise BagError(f"topics not in bag {bag_path}: {missing}")
    own = node is None
    if own:
        rclpy.init()
        node = rclpy.create_node("pcnet_play")
    try:
        pubs, types = {}, {}
        for c in reader.connections:
            if topics and c.topic not in topics:
                continue
            try:
                types[c.id] = _msg_class(c.msgtype)
            except (ImportError, AttributeError, ValueError):
                node.get_logger().warning(f"skipping {c.topic}: type {c.msgtype} not available here")
                continue
            pubs[c.id] = node.create_publisher(types[c.id], c.topic, make_profile(qos, 10))
        if not pubs:
            raise BagError(f"nothing to play in {bag_path}" + (f" for topics {topics}" if topics else ""))
        clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, "/clock", 10)
        waited = list(pubs.values()) + ([clock_pub] if clock_pub is not None else [])
        deadline = time.monotonic() + wait_for_subscribers
        while time.monotonic() < deadline and not all(p.get_subscription_count() for p in waited):
            time.sleep(0.05)
        # Our side seeing a subscriber does not mean it has matched us yet: a best-effort reader
        # drops samples from a writer it has not discovered, so give discovery time to finish.
        time.sleep(max(0.0, delay))
        sent = 0
        while True:
            t_wall0, t_bag0, sent_before = time.monotonic(), None, sent
            for conn, stamp, raw in read_messages(reader, bag_path):
                if conn.id not in pubs:
                    continue
                t_bag0 = stamp if t_bag0 is None else t_bag0
                ahead = t_wall0 + (stamp - t_bag0) / 1e9 / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                if clock_pub is not None:
                    from rosgraph_msgs.msg import Clock

                    c = Clock()
                    c.clock.sec, c.clock.nanosec = stamp // 10**9, stamp % 10**9
                    clock_pub.publish(c)
                msg = deserialize_message(bytes(raw), types[conn.id])
                pubs[conn.id].publish(msg)
                sent += 1
                if on_publish is not None:
                    on_publish(conn.topic, msg)
            if sent == sent_before:     # with --loop, this pass would repeat, empty, forever
                raise BagError(f"no messages to play in {bag_path}" + (f" on topics {topics}" if topics else ""))
            if not loop or not rclpy.ok(context=node.context):
                _wait_for_acks(waited)
                return sent
    finally:
        reader.close()
        if own:
            node.destroy_node()
            rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-play", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", type=Path)
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    ap.add_argument("--loop", action="store_true")
    ap.add_argument("--clock", action="store_true", help="publish /clock from the bag's timestamps")
    ap.add_argument("--topics", nargs="*")
    ap.add_argument("--qos", choices=["reliable", "best_effort", "sensor_data"], default="reliable")
    ap.add_argument("--wait", type=float, default=2.0, help="seconds to wait for subscribers before playing")
    ap.add_argument("--delay", type=float, default=0.5,
                    help="then wait this long before the first message, so best-effort subscribers have "
                         "matched the publishers too (as `ros2 bag play --delay`)")
    args = ap.parse_args(argv)
    try:
        n = play(args.bag, args.rate, args.loop, args.clock, args.topics, args.qos, args.wait, delay=args.delay)
    except (BagError, ValueError) as exc:
        print(f"pcnet-play: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    print(f"published {n} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
