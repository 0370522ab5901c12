"""The transport probe of README "Transport": two real processes over DDS."""
import json
import subprocess
import sys

from ros_harness import ROOT


def _probe(*args: str) -> list[str]:
    return [sys.executable, "-m", "pcnet_ros.tools.dds_probe", *args, "--topic", "probe_test/image"]


def test_probe_counts_reliable_frames_between_processes():
    sub = subprocess.Popen(_probe("sub", "--qos", "reliable", "--depth", "10", "--expect", "20", "--timeout", "60"),
                           stdout=subprocess.PIPE, text=True, cwd=ROOT)
    pub = subprocess.run(_probe("pub", "--qos", "reliable", "--depth", "10", "--size", "320x240", "--count", "20",
                                "--rate", "20", "--wait", "30"), capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert pub.returncode == 0, pub.stderr
    out, _ = sub.communicate(timeout=90)
    got = json.loads(out.strip().splitlines()[-1])
    assert got["received"] == 20, got
    assert 0 < got["median_latency_ms"] <= got["p95_latency_ms"] < 5000, got
