"""The one-command demo: real rain video -> rosbag -> DDS -> live pcnet_node -> recorded outputs and pictures.

    make demo            (or: python -m pcnet_ros.tools.demo --out out/demo)

1. Builds a two-camera rosbag from ../shared/data/real-rain-video (ra1, rb2).
2. Starts pcnet_node in its own process with config/pcnet.yaml.
3. Replays the bag over DDS at the recorded rate and records the node's clean
   and residue topics into a new bag.
4. Writes a contact sheet and a side-by-side video (rainy | clean | residue) and
   prints throughput, drops and latency.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import shutil
import statistics
import sys
import threading
import time

import cv2
import numpy as np

from pcnet_ros.paths import SHARED_DATA, SOURCE_ROOT
from pcnet_ros.ros import image_codec
from pcnet_ros.ros.transport import keep_dds_local
from pcnet_ros.tools.bagio import finished_bag_writer, IMAGE_TYPE, typestore
from pcnet_ros.tools.common import add_engine_args, fail, start_node, stop_node
from pcnet_ros.tools.image_bag import load_frames, write_image_bag
from pcnet_ros.tools.visual import amplify, contact_sheet, side_by_side

DEFAULT_FRAMES = SHARED_DATA / "real-rain-video"
CAMERAS = {"/camera1/image_raw": "ra1", "/camera2/image_raw": "rb2"}
#: How long pcnet_node may take to load its weights and subscribe (a cold CPU host imports torch and
#: compiles nothing, so this is generous).
NODE_START_S = 120.0


class NodeExited(RuntimeError):
    """pcnet_node stopped before or while the demo ran."""


def node_exited(proc, log_path: Path) -> NodeExited:
    """The error to show, with the node's own last log line (why it stopped: weights not found, a bad device)."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return NodeExited(f"pcnet_node exited early (exit {proc.returncode}): "
                      f"{lines[-1] if lines else 'it logged nothing'}; see {log_path}")


def wait_for_node(node, proc, log_path: Path, outputs: list[str], timeout_s: float = NODE_START_S) -> None:
    """Until the node publishes ``outputs`` (it opens them once its model is loaded; with ``input_qos: auto`` it
    subscribes only after it sees a camera, so its subscriptions cannot be waited on): a node that died on start
    is reported at once, not after the players have waited out their own timeout for a subscriber."""
    deadline = time.monotonic() + timeout_s
    while not all(node.count_publishers(t) for t in outputs):
        if proc.poll() is not None:
            raise node_exited(proc, log_path)
        if time.monotonic() > deadline:
            raise NodeExited(f"pcnet_node did not open {', '.join(outputs)} within {timeout_s:.0f} s; see {log_path}")
        time.sleep(0.1)


def build_demo_bag(frames_root: Path, out: Path, fps: float, limit: int) -> dict[str, list[np.ndarray]]:
    """One bag per camera clip, played side by side; returns the frames per topic. Written afresh on every run:
    a bag kept from a run with another --limit or --fps once played frames the pictures did not match."""
    clips = {}
    for topic, clip in CAMERAS.items():
        clips[topic] = load_frames(frames_root / clip, limit=limit)
        bag = out / f"bag_{clip}"
        shutil.rmtree(bag, ignore_errors=True)
        write_image_bag(clips[topic], bag, topic=topic, fps=fps, frame_id=clip, note=False)
    return clips


class Recorder:
    """Keeps every clean/residue message the node publishes, with receive times."""

    def __init__(self, node) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.lock = threading.Lock()
        self.msgs: dict[str, list] = {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic in CAMERAS:
            for kind in ("derained", "rain_residue"):
                name = f"{topic}/{kind}"
                self.msgs[name] = []
                node.create_subscription(Image, name, lambda m, n=name: self._keep(n, m), qos)

    def _keep(self, name: str, msg) -> None:
        with self.lock:
            self.msgs[name].append((time.monotonic(), msg))


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def write_output_bag(recorder: Recorder, out: Path) -> int:
    """This run's outputs, in place of an earlier run's bag only once complete (an earlier run's bag once stayed,
    and this run's outputs went unrecorded)."""
    from rclpy.serialization import serialize_message

    store = typestore()
    n = 0
    with finished_bag_writer(out, "mcap", replace=True) as writer:
        for topic, items in recorder.msgs.items():
            conn = writer.add_connection(topic, IMAGE_TYPE, typestore=store)
            for _, msg in items:
                writer.write(conn, _stamp(msg), serialize_message(msg))
                n += 1
    return n


def _frame_index(stamp: int, fps: float) -> int:
    from pcnet_ros.tools.image_bag import START_NS

    return round((stamp - START_NS) * fps / 1e9)


def pictures(clips: dict, recorder: Recorder, out: Path, fps: float) -> tuple[Path, Path]:
    """Contact sheet of a few processed frames per camera and a side-by-side video of all of them."""
    rows, video = [], None
    video_path = out / "side_by_side.mp4"
    for topic, frames in clips.items():
        residues = {_stamp(m): m for _, m in recorder.msgs[f"{topic}/rain_residue"]}
        strips = []
        for _, clean_msg in recorder.msgs[f"{topic}/derained"]:
            res_msg = residues.get(_stamp(clean_msg))
            if res_msg is None:
                continue
            idx = min(_frame_index(_stamp(clean_msg), fps), len(frames) - 1)
            bgr = [cv2.cvtColor(a, cv2.COLOR_RGB2BGR) for a in
                   (frames[idx], image_codec.decode(clean_msg)[0], amplify(image_codec.decode(res_msg)[0]))]
            strips.append(side_by_side(bgr, [f"rainy {CAMERAS[topic]} #{idx}", "PCNet clean", "rain residue x4"]))
        for strip in strips:
            if video is None:
                video = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), 4, (1440, 360))
            video.write(cv2.resize(strip, (1440, 360)))
        rows += strips[:: max(1, len(strips) // 3)][:3]
    if video is not None:
        video.release()
    sheet = out / "contact_sheet.jpg"
    if rows:
        rows = [cv2.resize(r, (1440, round(r.shape[0] * 1440 / r.shape[1]))) for r in rows]
        cv2.imwrite(str(sheet), contact_sheet(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return sheet, video_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="folder holding ra1/ and rb2/")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    ap.add_argument("--limit", type=int, default=0, help="frames per clip (0: all 61)")
    add_engine_args(ap)
    args = ap.parse_args(argv)
    keep_dds_local()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] building the demo bags from {args.frames}", flush=True)
    clips = build_demo_bag(args.frames, args.out, args.fps, args.limit)

    print("[2/4] starting pcnet_node (its own process, config/pcnet.yaml)", flush=True)
    log = open(args.out / "node.log", "w")
    node_proc = start_node({"input_topics": list(CAMERAS), "weights": args.weights, "device": args.device,
                            "backend": args.backend, "precision": args.precision, "torch_threads": args.threads,
                            "max_batch": args.batch, "flip_average": args.flip_average,
                            "flip_axes": args.flip_axes},
                           log=log, params_file=SOURCE_ROOT / "config" / "pcnet.yaml")

    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from pcnet_ros.tools.play import play

    rclpy.init()
    node = rclpy.create_node("pcnet_demo")
    recorder = Recorder(node)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    sent: dict[tuple[str, int], float] = {}
    try:
        wait_for_node(node, node_proc, args.out / "node.log", list(recorder.msgs))
        print("[3/4] replaying both cameras over DDS at the recorded rate", flush=True)
        players = []
        for topic, clip in CAMERAS.items():
            t = threading.Thread(target=play, kwargs={
                "bag_path": args.out / f"bag_{clip}", "rate": args.rate, "topics": [topic], "qos": "sensor_data",
                "wait_for_subscribers": 120, "delay": 0.5, "node": node,
                "on_publish": lambda topic_, m: sent.__setitem__((topic_, _stamp(m)), time.monotonic())})
            t.start()
            players.append(t)
        for t in players:
            t.join()
            if node_proc.poll() is not None:
                raise node_exited(node_proc, args.out / "node.log")
        deadline = time.monotonic() + 60     # a slow CPU may still be on its first frame of a camera
        while time.monotonic() < deadline and not all(recorder.msgs[f"{t}/{k}"] for t in CAMERAS
                                                      for k in ("derained", "rain_residue")):
            time.sleep(0.2)
        time.sleep(2.0)                      # and let the frame in flight finish
    except NodeExited as exc:
        return fail("pcnet-demo", str(exc))
    finally:
        rc = stop_node(node_proc, timeout=15)
        executor.shutdown(timeout_sec=1)
        spin.join(timeout=5)                 # a spin thread alive at interpreter exit aborts it (exit 134)
        node.destroy_node()
        rclpy.try_shutdown()
        log.close()

    print("[4/4] writing outputs", flush=True)
    n = write_output_bag(recorder, args.out / "derained_bag")
    sheet, video = pictures(clips, recorder, args.out, args.fps)
    total = sum(len(v) for v in clips.values())
    print(f"\nnode exit code {rc}; log: {args.out / 'node.log'}")
    for topic in CAMERAS:
        items = recorder.msgs[f"{topic}/derained"]
        lat = [(t - sent[topic, _stamp(m)]) * 1e3 for t, m in items if (topic, _stamp(m)) in sent]
        span = (items[-1][0] - items[0][0]) if len(items) > 1 else 0
        print(f"{topic}: {len(clips[topic])} frames sent at {args.fps * args.rate:.0f} Hz, {len(items)} derained "
              f"({len(clips[topic]) - len(items)} dropped by the newest-frame policy), "
              f"throughput {((len(items) - 1) / span) if span else 0:.2f} frames/s, end-to-end latency "
              f"p50 {statistics.median(lat) if lat else float('nan'):.0f} ms, "
              f"p95 {np.percentile(lat, 95) if lat else float('nan'):.0f} ms")
    print(f"recorded {n} output messages to {args.out / 'derained_bag'}")
    print(f"contact sheet: {sheet}\nvideo: {video}\n({total} input frames; CPU-only hosts derain a fraction of "
          f"them in real time: that is the node dropping stale frames to bound latency)")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
