"""The README's main job, shortened: real rain frames -> bag -> DDS -> live node -> recorded bag and pictures."""
import subprocess
import sys

import cv2
from rosbags.rosbag2 import Reader

from conftest import shared_or_skip
from ros_harness import ROOT


def test_demo_runs_end_to_end(tmp_path):
    frames = shared_or_skip("real-rain-video")
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.demo", "--out", str(out), "--frames", str(frames),
                           "--limit", "8", "--rate", "0.5", "--device", "cpu"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "node exit code 0" in proc.stdout and "throughput" in proc.stdout
    sheet = cv2.imread(str(out / "contact_sheet.jpg"))
    assert sheet is not None and sheet.shape[1] == 1440
    with Reader(out / "derained_bag") as r:
        counts = {c.topic: c.msgcount for c in r.connections}
    assert counts["/camera1/image_raw/derained"] >= 1 and counts["/camera2/image_raw/rain_residue"] >= 1

    # Run again into the same folder with fewer frames: the bags are this run's, not the first run's.
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.demo", "--out", str(out), "--frames", str(frames),
                           "--limit", "3", "--rate", "0.5", "--device", "cpu"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Reader(out / "bag_ra1") as r:
        assert r.message_count == 3
        played = {t for _, t, _ in r.messages()}
    with Reader(out / "derained_bag") as r:
        derained = [t for c, t, _ in r.messages() if c.topic == "/camera1/image_raw/derained"]
        recorded = r.message_count
    assert derained and set(derained) <= played
    assert f"recorded {recorded} output messages" in proc.stdout
    assert not (out / "derained_bag.partial").exists()


def test_a_node_that_cannot_start_is_reported_at_once_with_its_reason(tmp_path):
    """A mistyped --weights kills pcnet_node on start; the players once waited 120 s for a subscriber that would
    never come and the demo ended in a traceback."""
    frames = shared_or_skip("real-rain-video")
    proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.demo", "--out", str(tmp_path / "demo"),
                           "--frames", str(frames), "--limit", "1", "--device", "cpu",
                           "--weights", str(tmp_path / "typo.pth")], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"pcnet-demo: pcnet_node exited early (exit 1): pcnet_node: cannot start: weights file not found: "
        f"{tmp_path / 'typo.pth'}; see {tmp_path / 'demo' / 'node.log'}")
    assert "[3/4]" not in proc.stdout                                      # nothing was played
