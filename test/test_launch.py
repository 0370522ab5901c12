"""The package as a user meets it: built by colcon, started by ``ros2 launch`` / ``ros2 run``, driven by ``ros2 param``.

Each command below is written in the README exactly as here and is run verbatim
in bash, with the colcon workspace sourced, inside the test's private network.
"""
import importlib.util
import re
import time

from builtin_interfaces.msg import Time
import numpy as np
import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
import torch

from ros_harness import Collector, image_msg, ROOT, wait_until, Workspace

LAUNCH = "ros2 launch pcnet_ros pcnet.launch.py"
ONE_CAMERA = f"{LAUNCH} input_topic:=/camera/image_raw device:=cpu"
ONE_CAMERA_CUDA = f"{LAUNCH} input_topic:=/camera/image_raw device:=cuda"
TWO_CAMERAS = f'{LAUNCH} input_topics:="[cam_front/image_raw, cam_rear/image_raw]" namespace:=/rain'
PARAMS_FILE = f"{LAUNCH} params_file:=my_cameras.yaml"
SIM_TIME = f"{LAUNCH} input_topic:=/camera/image_raw use_sim_time:=true"
SHM_PROFILE = (f"{LAUNCH} fastdds_profile:="
               "$(ros2 pkg prefix pcnet_ros)/share/pcnet_ros/config/fastdds_shm_large_segment.xml")
RUN = ("ros2 run pcnet_ros pcnet_node --ros-args "
       "--params-file $(ros2 pkg prefix pcnet_ros)/share/pcnet_ros/config/pcnet.yaml -r __ns:=/front")
MANAGED = f"{LAUNCH} input_topic:=/camera/image_raw lifecycle:=true"
MANAGED_MANUAL = f"{LAUNCH} input_topic:=/camera/image_raw lifecycle:=true autostart:=false"
LC_CONFIGURE = "ros2 lifecycle set /pcnet configure"
LC_ACTIVATE = "ros2 lifecycle set /pcnet activate"
LC_GET = "ros2 lifecycle get /pcnet"
PARAM_SET = "ros2 param set /front/pcnet enabled false"
PARAM_GET = "ros2 param get /front/pcnet device"
LC_PARAM_SET = "ros2 param set /pcnet warmup_sizes 1280x720"
#: Every `ros2 ...` line of the README is one of these (rosbag2 is not on this machine: see README).
TESTED_COMMANDS = [ONE_CAMERA, ONE_CAMERA_CUDA, TWO_CAMERAS, PARAMS_FILE, SIM_TIME, SHM_PROFILE, RUN, PARAM_SET,
                   PARAM_GET, MANAGED, MANAGED_MANUAL, LC_CONFIGURE, LC_ACTIVATE, LC_GET, LC_PARAM_SET]
NOT_RUNNABLE_HERE = ("ros2 bag ",)

CLEAN_EXIT = re.compile(r"\[INFO\] \[pcnet(_lifecycle)?_node-1\]: process has finished cleanly")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    w = Workspace(tmp_path_factory.mktemp("colcon_ws"))
    yield w
    w.run("ros2 daemon stop", timeout=30)          # `ros2 param` starts one; leave nothing behind


def _frame(k: int) -> Image:
    arr = np.random.default_rng(k).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    return image_msg(arr, "rgb8", frame_id=f"cam_{k}", stamp=(1000 + k, 7 * k))


def _roundtrip(graph, topic: str, k: int, suffix: str = "derained", timeout: float = 90,
               launched=None) -> tuple[Image, Image]:
    """Publish one frame on ``topic`` once pcnet subscribes; return (sent, received on topic/suffix)."""
    node = graph.node(f"launch_test_{k}")
    pub = node.create_publisher(Image, topic, 10)
    out = Collector(graph.node(f"launch_test_out_{k}"), f"{topic}/{suffix}")
    assert wait_until(lambda: pub.get_subscription_count() > 0 and out.sub.get_publisher_count() > 0, timeout), \
        f"pcnet never matched {topic}:\n{launched.log() if launched else ''}"
    sent = _frame(k)
    for _ in range(6):   # again if needed: pcnet's writer may match our reader a moment after we matched it
        pub.publish(sent)
        if out.wait_for(1, 10):
            break
    assert out.msgs(), f"nothing on {topic}/{suffix}:\n{launched.log() if launched else ''}"
    got = out.msgs()[0]
    assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id) == \
        (sent.header.stamp.sec, sent.header.stamp.nanosec, sent.header.frame_id)
    assert (got.encoding, got.height, got.width) == ("rgb8", 48, 64)
    return sent, got


def _stop(launched) -> str:
    rc = launched.ctrl_c()
    log = launched.log()
    assert rc == 0, log
    assert CLEAN_EXIT.search(log), f"the node did not finish cleanly on Ctrl-C:\n{log}"
    assert "process has died" not in log and "Traceback" not in log, log
    return log


def _node_pid(launched) -> int:
    assert launched.wait_for_text("process started with pid", 60), launched.log()
    return int(re.search(r"pcnet_node-1\]: process started with pid \[(\d+)\]", launched.log()).group(1))


def test_one_camera_from_the_launch_argument_and_ctrl_c(ws, graph, tmp_path):
    launched = ws.start(ONE_CAMERA, tmp_path / "launch.log")
    try:
        _roundtrip(graph, "/camera/image_raw", 1, launched=launched)
        got = ws.run_until("ros2 param get /pcnet input_topics", "/camera/image_raw")
        assert "['/camera/image_raw']" in got.stdout, got
        got = ws.run_until("ros2 param get /pcnet device", "value is")
        assert "String value is: cpu" in got.stdout, got
    finally:
        _stop(launched)


def test_device_argument_reaches_the_node(ws, graph, tmp_path):
    launched = ws.start(ONE_CAMERA_CUDA, tmp_path / "launch.log")
    try:
        if torch.cuda.is_available():
            _roundtrip(graph, "/camera/image_raw", 2, launched=launched)
        else:     # CUDA asked for and absent: a clear refusal, never a silent CPU fallback
            assert launched.wait_for_text("process has died", 90), launched.log()
            assert "cannot start" in launched.log() and "CUDA" in launched.log()
    finally:
        launched.ctrl_c()


def test_two_cameras_from_a_list_argument_in_a_namespace(ws, graph, tmp_path):
    launched = ws.start(TWO_CAMERAS, tmp_path / "launch.log")
    try:
        _roundtrip(graph, "/rain/cam_front/image_raw", 3, launched=launched)
        _roundtrip(graph, "/rain/cam_rear/image_raw", 4, suffix="rain_residue", launched=launched)
    finally:
        _stop(launched)


def test_a_two_camera_params_file_is_not_overridden(ws, graph, tmp_path):
    (ws.root / "my_cameras.yaml").write_text(
        '/**:\n  ros__parameters:\n    input_topics: ["/cam_a/image_raw", "/cam_b/image_raw"]\n'
        '    device: "cpu"\n    output_suffix: "clean"\n')
    launched = ws.start(PARAMS_FILE, tmp_path / "launch.log")
    try:
        _roundtrip(graph, "/cam_a/image_raw", 5, suffix="clean", launched=launched)
        _roundtrip(graph, "/cam_b/image_raw", 6, suffix="clean", launched=launched)
    finally:
        _stop(launched)


def test_sim_time_with_and_without_clock(ws, graph, tmp_path):
    launched = ws.start(SIM_TIME, tmp_path / "launch.log")
    try:
        _roundtrip(graph, "/camera/image_raw", 7, launched=launched)    # no /clock yet: still subscribes and serves
        clock_pub = graph.node("launch_test_clock").create_publisher(Clock, "/clock", 10)
        for s in range(5):
            clock_pub.publish(Clock(clock=Time(sec=500 + s)))
            time.sleep(0.05)
        _roundtrip(graph, "/camera/image_raw", 8, launched=launched)    # with /clock: headers untouched
        got = ws.run_until("ros2 param get /pcnet use_sim_time", "value is")
        assert "Boolean value is: True" in got.stdout, got
    finally:
        _stop(launched)


def test_fastdds_profile_argument(ws, graph, tmp_path):
    launched = ws.start(SHM_PROFILE, tmp_path / "launch.log")
    try:
        pid = _node_pid(launched)
        _roundtrip(graph, "/image_raw", 9, launched=launched)
        environ = dict(e.split("=", 1) for e in open(f"/proc/{pid}/environ").read().split("\0") if "=" in e)
        assert environ["FASTDDS_DEFAULT_PROFILES_FILE"] == \
            str(ws.install / "pcnet_ros" / "share" / "pcnet_ros" / "config" / "fastdds_shm_large_segment.xml")
    finally:
        _stop(launched)


def test_ros2_run_and_param_set(ws, graph, tmp_path):
    started = ws.start(RUN, tmp_path / "run.log")
    try:
        sent, got = _roundtrip(graph, "/front/image_raw", 10, launched=started)
        assert got.data != sent.data                              # derained
        assert "weights/pcnet_light.pth" in started.log() and str(ws.install) in started.log()  # via ament index
        result = ws.run_until(PARAM_SET, "Set parameter")
        assert "Set parameter successful" in result.stdout, result
        sent, got = _roundtrip(graph, "/front/image_raw", 11, launched=started)
        assert bytes(got.data) == bytes(sent.data)                # enabled=false: the input, untouched
        result = ws.run_until(PARAM_GET, "value is")
        assert "String value is: auto" in result.stdout, result
        refused = ws.run_until("ros2 param set /front/pcnet device cuda", "Setting parameter")
        assert "Setting parameter failed" in refused.stderr and "read-only parameter: device" in refused.stderr, refused
    finally:
        rc = started.ctrl_c()
        assert rc == 0, started.log()
        assert "Traceback" not in started.log()


def test_managed_node_autostarts_through_launch(ws, graph, tmp_path):
    launched = ws.start(MANAGED, tmp_path / "launch.log")
    try:
        _roundtrip(graph, "/camera/image_raw", 12, launched=launched)   # configured and activated by launch
        assert "pcnet_lifecycle_node" in launched.log()
    finally:
        _stop(launched)


def test_managed_node_brought_up_with_ros2_lifecycle(ws, graph, tmp_path):
    launched = ws.start(MANAGED_MANUAL, tmp_path / "launch.log")
    try:
        got = ws.run_until(LC_GET, "unconfigured")
        assert "unconfigured" in got.stdout, got
        got = ws.run_until(LC_PARAM_SET, "Set parameter")         # unconfigured: a static parameter is taken
        assert "Set parameter successful" in got.stdout, got
        assert "Transitioning successful" in ws.run_until(LC_CONFIGURE, "Transitioning").stdout
        assert "inactive" in ws.run(LC_GET).stdout
        assert "warmed up 1280x720" in launched.log()                # and configure used it
        refused = ws.run(LC_PARAM_SET)                               # configured: refused, with what to do
        assert "Setting parameter failed" in refused.stdout + refused.stderr, refused
        assert "cleanup the node" in refused.stdout + refused.stderr, refused
        assert "Transitioning successful" in ws.run_until(LC_ACTIVATE, "Transitioning").stdout
        assert "active" in ws.run(LC_GET).stdout
        _roundtrip(graph, "/camera/image_raw", 13, launched=launched)
    finally:
        _stop(launched)


def test_every_ros2_command_in_the_readme_is_tested():
    lines, fence = [], None
    for ln in (ROOT / "README.md").read_text().splitlines():
        if ln.startswith("```"):
            fence = None if fence is not None else ln[3:].strip() or "text"
        elif fence in ("bash", "sh", "text"):
            lines.append(ln.split("  #")[0].strip())
    in_readme = {ln for ln in lines if ln.startswith("ros2 ") and not ln.startswith(NOT_RUNNABLE_HERE)}
    assert in_readme <= set(TESTED_COMMANDS), in_readme - set(TESTED_COMMANDS)
    assert set(TESTED_COMMANDS) <= in_readme, set(TESTED_COMMANDS) - in_readme


def _launch_module():
    spec = importlib.util.spec_from_file_location("pcnet_launch", ROOT / "launch" / "pcnet.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launch_arguments_override_only_when_given():
    overrides = _launch_module().overrides
    assert overrides({"input_topic": "", "input_topics": "", "device": "", "use_sim_time": ""}) == {}
    assert overrides({"input_topic": "/a"}) == {"input_topics": ["/a"]}
    assert overrides({"input_topics": "[/a, /b]"}) == {"input_topics": ["/a", "/b"]}
    assert overrides({"input_topics": "/a,/b"}) == {"input_topics": ["/a", "/b"]}
    assert overrides({"use_sim_time": "true", "device": "cuda:1"}) == {"use_sim_time": True, "device": "cuda:1"}
    for bad, message in (({"input_topic": "/a", "input_topics": "[/b]"}, "not both"),
                         ({"input_topics": "[]"}, "not a list of topic names"),
                         ({"use_sim_time": "maybe"}, "true or false")):
        with pytest.raises(ValueError, match=message):
            overrides(bad)
