"""pcnet-play in its own process, received here over real DDS."""
import subprocess
import sys
import time

import numpy as np
import pytest
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from conftest import zero_a_stretch
from pcnet_ros.tools.image_bag import START_NS, write_image_bag
from ros_harness import Collector, ROOT


@pytest.mark.parametrize("qos", ["reliable", "best_effort"])
def test_play_publishes_recorded_messages_at_rate(graph, tmp_path, rng, qos):
    frames = [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(10)]
    src = write_image_bag(frames, tmp_path / "bag", topic=f"/play_{qos}/image_raw", fps=10)
    node = graph.node(f"play_sink_{qos}")
    images = Collector(node, f"/play_{qos}/image_raw", reliable=qos == "reliable")
    notes = Collector(node, "/demo/note", String, reliable=qos == "reliable")
    clock = Collector(node, "/clock", Clock)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(src), "--rate", "2", "--clock",
                           "--qos", qos, "--wait", "15"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert images.wait_for(10, 5) and clock.wait_for(10, 5), (len(images.items), len(clock.items), proc.stdout)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images.msgs()]
    assert stamps == [START_NS + i * 10**8 for i in range(10)]                      # recorded headers
    assert np.array_equal(np.frombuffer(bytes(images.msgs()[3].data), np.uint8).reshape(48, 64, 3), frames[3])
    assert [m.data for m in notes.msgs()] == ["frame 0"]
    sent = images.sent_ns       # publish times: what play paces; receive times bunch up when this process stalls
    assert 0.35e9 < sent[-1] - sent[0] < 0.7e9    # 0.9 s of recording at --rate 2 is 0.45 s
    assert time.monotonic() - t0 < 30


def test_play_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(tmp_path / "nope")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no bag at" in proc.stderr


@pytest.mark.parametrize("loop", [[], ["--loop"]])
def test_a_bag_with_topics_but_no_messages_is_refused_not_looped_forever(tmp_path, loop):
    src = write_image_bag([], tmp_path / "bag")          # the topics are declared, nothing was recorded on them
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(src), "--wait", "0", "--delay", "0",
                           *loop], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no messages to play in" in proc.stderr, proc.stderr


def test_a_topic_not_in_the_bag_is_refused_before_anything_plays(tmp_path, rng):
    src = write_image_bag([rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)], tmp_path / "bag",
                          topic="/cam/image_raw")
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(src), "--wait", "0", "--delay", "0",
                           "--topics", "/cam/image_raw", "/cam/imgae_raw"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "topics not in bag" in proc.stderr and "'/cam/imgae_raw'" in proc.stderr
    assert "published" not in proc.stdout


def test_a_damaged_bag_stops_play_with_one_line(tmp_path, rng):
    """A recording with a zeroed stretch (a bad sector, a pulled card) plays what it can read, then says where it
    stopped; rosbags' MCAP reader itself just ends there, and play once said 'published 9 messages', status 0."""
    frames = [rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8) for _ in range(20)]
    src = write_image_bag(frames, tmp_path / "bag", topic="/play_cut/image_raw", fps=100, storage="mcap")
    zero_a_stretch(src)
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(src), "--wait", "0", "--delay", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("pcnet-play:")]
    assert "corrupt or truncated after" in line and str(src) in line, line


def test_node_under_sim_time_with_replayed_clock(graph, tmp_path, rng):
    """The `ros2 bag play --clock` + use_sim_time set-up, with pcnet-play standing in for ros2 bag play."""
    from diagnostic_msgs.msg import DiagnosticArray

    from pcnet_ros.core.weights import resolve_weights
    from ros_harness import NodeProcess, wait_until

    frames = [rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8) for _ in range(20)]
    src = write_image_bag(frames, tmp_path / "bag", topic="/simtime/image_raw", fps=10)
    proc = NodeProcess({"weights": str(resolve_weights("light")), "device": "cpu", "use_sim_time": True,
                        "input_qos": "reliable", "input_topics": ["image_raw"]}, "/simtime", tmp_path)
    try:
        node = graph.node("simtime_sink")
        out = Collector(node, "/simtime/image_raw/derained")
        diag = Collector(node, "/diagnostics", DiagnosticArray)
        assert wait_until(lambda: node.count_subscribers("/simtime/image_raw") > 0, 60), proc.log()
        player = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(src), "--clock", "--wait", "15",
                                 "--topics", "/simtime/image_raw"], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
        assert player.returncode == 0, player.stderr
        assert out.wait_for(1, 20)
        recorded = {START_NS + i * 10**8 for i in range(20)}
        assert all(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in recorded for m in out.msgs())
        # the node's own clock followed /clock: diagnostics stamped in bag time (2023), not wall time
        assert wait_until(lambda: any(abs(m.header.stamp.sec - START_NS // 10**9) < 60 for m in diag.msgs()), 10)
    finally:
        assert proc.stop()[0] == 0


def test_play_replays_compressed_image_topics(graph, tmp_path):
    """A JPEG camera stream recorded in a bag goes out over DDS byte for byte."""
    from sensor_msgs.msg import CompressedImage

    from conftest import shared_or_skip
    from pcnet_ros.tools.image_bag import load_files

    jpegs = load_files(shared_or_skip("real-rain-video", "ra1"), limit=3)
    src = write_image_bag(jpegs, tmp_path / "bag", topic="/play_jpeg/image_raw/compressed", fps=10, storage="sqlite3")
    got = Collector(graph.node("play_jpeg_sink"), "/play_jpeg/image_raw/compressed", CompressedImage)
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.play", str(src), "--wait", "15"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert got.wait_for(3, 5)
    assert [bytes(m.data) for m in got.msgs()] == jpegs and {m.format for m in got.msgs()} == {"jpeg"}
