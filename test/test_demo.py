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
