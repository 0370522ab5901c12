"""Real-ROS test plumbing: a test-side rclpy graph and pcnet_node as a separate process.

Nothing here imitates ROS: messages cross real DDS between this process and the
node's process.  Discovery is kept on localhost and on a per-run domain id so
parallel runs and the host network stay out of it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Sequence

import numpy as np
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from pcnet_ros.tools.common import start_node, stop_node

ROOT = Path(__file__).resolve().parent.parent


def wait_until(pred, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


class Graph:
    """One rclpy context for the test session, spun by a background executor."""

    def __init__(self) -> None:
        rclpy.init()
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.nodes = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def node(self, name: str):
        n = rclpy.create_node(name)
        self.executor.add_node(n)
        self.nodes.append(n)
        return n

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1)
        for n in self.nodes:
            n.destroy_node()
        rclpy.try_shutdown()


class Collector:
    """Subscribes and keeps (receive_time, message) pairs, and each message's publish time (DDS source timestamp,
    ns) in ``sent_ns``: the time a publisher paced its messages at, which the receiving thread's scheduling (a
    busy CI machine can hold a burst back and hand it over at once) does not move."""

    def __init__(self, node, topic: str, msg_type=Image, reliable: bool = True, depth: int = 50) -> None:
        self.items: list = []
        self.sent_ns: list[int] = []
        self._lock = threading.Lock()
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.sub = node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg, info) -> None:
        with self._lock:
            self.items.append((time.monotonic(), msg))
            self.sent_ns.append(info["source_timestamp"])

    def msgs(self) -> list:
        with self._lock:
            return [m for _, m in self.items]

    def wait_for(self, n: int, timeout: float = 20) -> bool:
        return wait_until(lambda: len(self.items) >= n, timeout)

    def clear(self) -> None:
        with self._lock:
            self.items.clear()
            self.sent_ns.clear()


class Diagnostics(Collector):
    """Latest /diagnostics values per status name, as a dict of strings."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        super().__init__(node, "/diagnostics", DiagnosticArray, depth=100)

    def latest(self, name: str) -> dict | None:
        for msg in reversed(self.msgs()):
            for st in msg.status:
                if st.name == name:
                    return {kv.key: kv.value for kv in st.values} | {"_level": st.level, "_message": st.message}
        return None

    def values(self, name: str) -> dict:
        """The latest status of ``name``, or {} before the first: for polling a key until it appears."""
        return self.latest(name) or {}


class NodeProcess:
    """pcnet_node started exactly as a user would, with a params file, in its own process."""

    def __init__(self, params: dict, namespace: str, workdir: Path, env: dict | None = None,
                 params_file: Path | None = None, module: str = "pcnet_ros.ros.node",
                 prefix: Sequence[str] = ()) -> None:
        self.namespace = namespace
        workdir.mkdir(parents=True, exist_ok=True)
        self.params_file = params_file or workdir / f"{namespace.strip('/')}.yaml"
        if params_file is None:  # JSON is YAML: no extra dependency to write it
            self.params_file.write_text(json.dumps({"/**": {"ros__parameters": params}}, indent=1))
        self.log_path = workdir / f"{namespace.strip('/')}.log"
        self._log = open(self.log_path, "w")
        self.proc = start_node(params if params_file is not None else {}, namespace, self._log, self.params_file, env,
                               module, prefix)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_subscribed(self, node, topic: str, timeout: float = 60) -> None:
        """Until the node's subscription exists (it is created once our publisher is seen)."""
        full = f"{self.namespace}/{topic}"
        ok = wait_until(lambda: self.proc.poll() is not None or node.count_subscribers(full) > 0, timeout)
        assert self.proc.poll() is None, f"node exited with {self.proc.returncode}:\n{self.log()}"
        assert ok, f"node never subscribed to {full}:\n{self.log()}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> tuple[int, float]:
        t0 = time.monotonic()
        rc = stop_node(self.proc, sig, timeout)
        self._log.close()
        return rc, time.monotonic() - t0


def image_msg(arr: np.ndarray, encoding: str, frame_id: str = "cam", stamp: tuple[int, int] = (0, 0),
              pad: int = 0) -> Image:
    """Build an Image, optionally with `pad` bytes of row padding after each row."""
    h, w = arr.shape[:2]
    a = arr.reshape(h, w, -1)
    row = a.shape[1] * a.shape[2] * a.dtype.itemsize
    rows = np.full((h, row + pad), 0xAB, np.uint8)
    rows[:, :row] = np.ascontiguousarray(a).view(np.uint8).reshape(h, row)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=row + pad, data=rows.tobytes())
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


class Workspace:
    """This package built by a real ``colcon build`` into a scratch workspace, used through the real ``ros2`` CLI.

    The venv is the underlay (it holds rclpy and the message packages as wheels, and
    launch/ros2cli from ``../shared/ros2-launch``); commands run in bash after
    sourcing the workspace's ``setup.bash``, exactly as a user types them.
    """

    def __init__(self, root: Path) -> None:
        venv = Path(sys.executable).parent.parent
        self.root = root
        self.env = {**os.environ, "AMENT_PREFIX_PATH": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
                    "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
        if not (venv / "bin" / "ros2").exists():
            raise RuntimeError(f"no ros2 CLI in {venv}: run `make test` (it installs ../shared/ros2-launch)")
        build = subprocess.run(
            ["colcon", "--log-base", str(root / "log"), "build", "--base-paths", str(ROOT),
             "--build-base", str(root / "build"), "--install-base", str(root / "install")],
            cwd=root, env=self.env, capture_output=True, text=True, timeout=300)
        if build.returncode != 0:
            raise RuntimeError(f"colcon build failed:\n{build.stdout}\n{build.stderr}")
        self.install = root / "install"

    def _bash(self, command: str) -> list[str]:
        return ["bash", "-c", f"source {self.install}/setup.bash && {command}"]

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self._bash(command), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def run_until(self, command: str, expect: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Repeat a CLI command until its output holds ``expect``: a fresh CLI process discovers the
        graph over DDS first, and may answer "Node not found" before it has."""
        end = time.monotonic() + timeout
        while True:
            result = self.run(command)
            if expect in result.stdout + result.stderr or time.monotonic() > end:
                return result
            time.sleep(0.5)

    def start(self, command: str, log: Path) -> "Started":
        return Started(self._bash(f"exec {command}"), self.root, self.env, log)


class Started:
    """A long-running ros2 command in its own process group, as a terminal runs it."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict, log: Path) -> None:
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_text(self, text: str, timeout: float = 60) -> bool:
        return wait_until(lambda: text in self.log() or self.proc.poll() is not None, timeout) and text in self.log()

    def ctrl_c(self, timeout: float = 20) -> int:
        """SIGINT to the whole process group: what a terminal's Ctrl-C does."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
        self._log.close()
        return rc


def set_params(node, fqn: str, **values) -> list:
    """Set parameters through the node's set_parameters service, as ``ros2 param set`` does; one result each."""
    client = node.create_client(SetParameters, f"{fqn}/set_parameters")
    assert client.wait_for_service(10)
    req = SetParameters.Request()
    for k, v in values.items():
        if isinstance(v, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
        elif isinstance(v, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)
        req.parameters.append(ParameterMsg(name=k, value=pv))
    future = client.call_async(req)
    assert wait_until(future.done, 10)
    return future.result().results


def get_params(node, fqn: str, *names) -> list:
    """Parameter values through the node's get_parameters service, as ``ros2 param get`` reads them."""
    client = node.create_client(GetParameters, f"{fqn}/get_parameters")
    assert client.wait_for_service(10)
    future = client.call_async(GetParameters.Request(names=list(names)))
    assert wait_until(future.done, 10)
    return future.result().values
