"""pcnet-play in its own process, received here over real DDS."""
import subprocess
import sys
import time

import numpy as np
import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pcnet_ros.demo_bag import START_NS, write_image_bag
from ros_harness import ROOT, Collector


@pytest.mark.parametrize("qos", ["reliable", "best_effort"])
def test_play_publishes_recorded_messages_at_rate(graph, tmp_path, rng, qos):
    frames = [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(10)]
    src = write_image_bag(frames, tmp_path / "bag", topic=f"/play_{qos}/image_raw", fps=10)
    node = graph.node(f"play_sink_{qos}")
    images = Collector(node, f"/play_{qos}/image_raw", reliable=qos == "reliable")
    notes = Collector(node, "/demo/note", String, reliable=qos == "reliable")
    clock = Collector(node, "/clock", Clock)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.play", str(src), "--rate", "2", "--clock",
                           "--qos", qos, "--wait", "15"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert images.wait_for(10, 5) and clock.wait_for(10, 5)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images.msgs()]
    assert stamps == [START_NS + i * 10**8 for i in range(10)]                      # recorded headers
    assert np.array_equal(np.frombuffer(bytes(images.msgs()[3].data), np.uint8).reshape(48, 64, 3), frames[3])
    assert [m.data for m in notes.msgs()] == ["frame 0"]
    recv = [t for t, _ in images.items]
    assert 0.35 < recv[-1] - recv[0] < 0.9        # 0.9 s of recording at --rate 2 is 0.45 s
    assert time.monotonic() - t0 < 30


def test_play_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.play", str(tmp_path / "nope")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no bag at" in proc.stderr
