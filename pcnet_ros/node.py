"""pcnet_node: subscribe to camera images, derain them in a dedicated thread, publish clean and residue.

    ros2 run pcnet_ros pcnet_node --ros-args --params-file config/pcnet.yaml
    python -m pcnet_ros.node --ros-args --params-file config/pcnet.yaml

Callbacks only drop the newest message into the camera's one-slot buffer; one
inference thread decodes, runs PCNet and publishes, so a slow model drops old
frames (counted) instead of queueing latency.  Headers are copied, never
restamped.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from . import image_codec
from .engine import BACKENDS, RESIDUE_MODES, DerainEngine, InputError, residue_to_image
from .frame_slots import FrameSlots
from .qos import INPUT_CHOICES, OUTPUT_CHOICES, make_profile, matching_reliability
from .stats import CameraStats
from .weights import WeightsError, build_model, data_dirs

OVERSIZE_POLICIES = ("downscale", "refuse")
BUNDLED_PROFILE_NAME = "fastdds_udp_large_buffers.xml"


@dataclass(frozen=True)
class Settings:
    """The parameters that may change at run time; swapped whole, read without locks."""
    enabled: bool
    publish_residue: bool
    residue_mode: str
    max_input_size: int
    oversize_policy: str


class Camera:
    """One input topic with its outputs, statistics and (possibly pending) subscription."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sub = None
        self.reliability: str | None = None
        self.pub_clean = None
        self.pub_residue = None
        self.stats = CameraStats()
        self.last_drops = 0
        self.last_rejected = 0
        self.last_errors = 0


def _desc(text: str, read_only: bool = False, **kw) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, read_only=read_only, **kw)


class PCNetNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("pcnet", **kwargs)
        p = self._declare_parameters()
        model, meta = build_model(p["weights"] or None, allow_random=p["allow_random_weights"])
        if meta.get("random"):
            self.get_logger().error("RUNNING WITH RANDOM WEIGHTS (allow_random_weights=true): output is noise")
        self.engine = DerainEngine(model, device=p["device"], fp16=p["fp16"], num_threads=p["torch_threads"] or None,
                                   backend=p["backend"])
        self.get_logger().info(f"PCNet on {self.engine.device} ({'fp16' if self.engine.fp16 else 'fp32'}), "
                               f"weights: {p['weights'] or 'random'} {meta}")
        self.settings = self._settings_from(p)
        self._warmup = p["warmup"]
        self._input_qos, self._input_depth = p["input_qos"], p["input_qos_depth"]

        topics = [t for t in p["input_topics"] if t]
        if not topics:
            raise ValueError("input_topics is empty")
        if len(set(topics)) != len(topics):
            raise ValueError(f"input_topics lists a topic twice: {topics}")
        out_qos = make_profile(p["output_qos"], p["output_qos_depth"])
        self.cameras = [Camera(t) for t in topics]
        self.slots = FrameSlots(len(self.cameras))
        for idx, cam in enumerate(self.cameras):
            cam.pub_clean = self.create_publisher(Image, f"{cam.topic}/{p['output_suffix']}", out_qos)
            cam.pub_residue = self.create_publisher(Image, f"{cam.topic}/{p['residue_suffix']}", out_qos)
            if self._input_qos != "auto":
                self._subscribe(idx, self._input_qos)
        # Housekeeping runs on steady time: with use_sim_time and no /clock yet, ROS-time timers never fire
        # and the node would never subscribe.  Message stamps are never touched.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self._input_qos == "auto":
            self._match_publishers()
            self.create_timer(0.5, self._match_publishers, clock=self._steady)

        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics, clock=self._steady)
        self._thread = threading.Thread(target=self._run, name="pcnet-inference", daemon=True)
        self._thread.start()

    # ---- parameters -------------------------------------------------------------------------
    def _declare_parameters(self) -> dict:
        ro = True
        specs = {
            "weights": ("light", _desc("bundled weights name (light, heavy) or path to a .pth file", ro)),
            "allow_random_weights": (False, _desc("run untrained weights when 'weights' is empty (testing)", ro)),
            "device": ("auto", _desc("auto (CUDA if present), cpu, cuda or cuda:N", ro)),
            "fp16": (False, _desc("half precision inference; CUDA only", ro)),
            "backend": ("eager", _desc(f"one of {BACKENDS}; compile is faster but compiles per input size", ro)),
            "torch_threads": (0, _desc("CPU threads for torch; 0 keeps torch's default", ro)),
            "warmup": (True, _desc("run dummy frames at start so the first real one is not slow", ro)),
            "input_topics": (["image_raw"], _desc("image topics, resolved in the node's namespace", ro)),
            "output_suffix": ("derained", _desc("clean image topic is <input>/<output_suffix>", ro)),
            "residue_suffix": ("rain_residue", _desc("residue topic is <input>/<residue_suffix>", ro)),
            "input_qos": ("auto", _desc(f"one of {INPUT_CHOICES}; auto matches the publishers' reliability", ro)),
            "input_qos_depth": (5, _desc("subscription history depth; >1 lets bursts reach the node and be counted",
                                         ro,
                                         integer_range=[IntegerRange(from_value=1, to_value=100, step=1)])),
            "output_qos": ("reliable", _desc(f"one of {OUTPUT_CHOICES}", ro)),
            "output_qos_depth": (5, _desc("publisher history depth", ro,
                                          integer_range=[IntegerRange(from_value=1, to_value=100, step=1)])),
            "enabled": (True, _desc("false: pass input through unchanged to <input>/<output_suffix>")),
            "publish_residue": (True, _desc("publish the rain residue image")),
            "residue_mode": ("positive", _desc(f"one of {RESIDUE_MODES}: how the signed residue maps to pixels")),
            "max_input_size": (0, _desc("longest side allowed into the model; 0 = no limit",
                                        integer_range=[IntegerRange(from_value=0, to_value=16384, step=1)])),
            "oversize_policy": ("downscale", _desc(f"one of {OVERSIZE_POLICIES} for frames over max_input_size")),
            "diagnostics_period": (1.0, _desc("seconds between /diagnostics messages", ro)),
        }
        values = {}
        for name, (default, desc) in specs.items():
            values[name] = self.declare_parameter(name, default, desc).value
        for name, choices in (("backend", BACKENDS), ("input_qos", INPUT_CHOICES), ("output_qos", OUTPUT_CHOICES),
                              ("residue_mode", RESIDUE_MODES), ("oversize_policy", OVERSIZE_POLICIES)):
            if values[name] not in choices:
                raise ValueError(f"parameter {name}='{values[name]}' is not one of {choices}")
        return values

    @staticmethod
    def _settings_from(p: dict) -> Settings:
        return Settings(p["enabled"], p["publish_residue"], p["residue_mode"], p["max_input_size"],
                        p["oversize_policy"])

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {}
        for prm in params:
            if prm.name == "residue_mode" and prm.value not in RESIDUE_MODES:
                return SetParametersResult(successful=False, reason=f"residue_mode must be one of {RESIDUE_MODES}")
            if prm.name == "oversize_policy" and prm.value not in OVERSIZE_POLICIES:
                return SetParametersResult(successful=False,
                                           reason=f"oversize_policy must be one of {OVERSIZE_POLICIES}")
            if prm.name in Settings.__dataclass_fields__:
                changes[prm.name] = prm.value
        if changes:
            self.settings = replace(self.settings, **changes)
            self.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    # ---- subscriptions ----------------------------------------------------------------------
    def _subscribe(self, idx: int, qos_name: str) -> None:
        cam = self.cameras[idx]
        if cam.sub is not None:
            self.destroy_subscription(cam.sub)
        events = SubscriptionEventCallbacks(message_lost=lambda info, c=cam: c.stats.on_lost(info.total_count_change))
        cam.sub = self.create_subscription(Image, cam.topic, lambda msg, i=idx: self._on_image(i, msg),
                                           make_profile(qos_name, self._input_depth), event_callbacks=events)
        cam.reliability = qos_name
        self.get_logger().info(f"subscribed to {cam.sub.topic_name} with {qos_name} QoS")

    def _match_publishers(self) -> None:
        """Subscribe, or re-subscribe, with the reliability the topic's publishers offer."""
        for idx, cam in enumerate(self.cameras):
            infos = self.get_publishers_info_by_topic(self.resolve_topic_name(cam.topic))
            want = matching_reliability([i.qos_profile for i in infos])
            if want is not None and want != cam.reliability:
                self._subscribe(idx, want)

    def _on_image(self, idx: int, msg: Image) -> None:
        """Runs on the executor: validate (no copy) and park the message; never waits for the model."""
        now = time.monotonic()
        cam = self.cameras[idx]
        cam.stats.on_input(now)
        try:
            image_codec.validate(msg)
        except image_codec.MalformedImage as exc:  # checked here so junk never displaces a good frame
            return self._reject(cam, exc.reason, str(exc))
        self.slots.put(idx, (msg, now))

    # ---- inference thread -------------------------------------------------------------------
    def _run(self) -> None:
        if self._warmup and self.engine.backend == "compile":
            self.get_logger().info("backend 'compile': the first frame of each size compiles (about a minute on CPU)")
        elif self._warmup:
            try:
                self.engine.warmup()
            except Exception as exc:  # a broken device shows up here first; keep serving errors per frame
                self.get_logger().error(f"warm-up failed: {exc!r}")
        while True:
            got = self.slots.take(timeout=0.5)
            if got is None:
                if self.slots.closed:
                    return
                continue
            idx, (msg, t_recv) = got
            self._process(self.cameras[idx], msg, t_recv)

    def _reject(self, cam: Camera, reason: str, detail: str) -> None:
        """Count and (throttled) log a dropped frame; returns None so callers can ``return self._reject(...)``."""
        cam.stats.on_reject(reason)
        self.get_logger().warning(f"{cam.topic}: dropped frame ({detail})", throttle_duration_sec=5.0)

    def _process(self, cam: Camera, msg: Image, t_recv: float) -> None:
        s = self.settings
        res = None
        if s.enabled:
            res = self._derain(cam, msg, s)
            if res is None:
                return
        try:
            if res is None:                      # pass-through: the input message itself, untouched
                cam.pub_clean.publish(msg)
            else:
                self._publish(cam, msg, res, s)
        except Exception as exc:
            if not self.context.ok():  # SIGINT/SIGTERM invalidated the context mid-frame: just stop
                self.slots.close()
                return
            cam.stats.on_error()
            self.get_logger().error(f"{cam.topic}: publish failed: {exc!r}", throttle_duration_sec=5.0)
            return
        cam.stats.on_output(res.infer_s if res else 0.0, time.monotonic() - t_recv)

    def _derain(self, cam: Camera, msg: Image, s: Settings):
        """Decode and run the model; None (after counting why) when the frame is not usable."""
        try:
            arr, enc = image_codec.decode(msg)
            if s.max_input_size and max(arr.shape[:2]) > s.max_input_size:
                if s.oversize_policy == "refuse":
                    return self._reject(cam, "oversize", f"{msg.width}x{msg.height} exceeds max_input_size "
                                                         f"{s.max_input_size}")
                return self.engine.derain_downscaled(arr, s.max_input_size, bgr=enc.bgr)
            return self.engine.derain(arr, bgr=enc.bgr)
        except image_codec.MalformedImage as exc:
            return self._reject(cam, exc.reason, str(exc))
        except InputError as exc:
            return self._reject(cam, "bad_input", str(exc))
        except Exception as exc:  # CUDA OOM, driver errors: count, log, keep serving
            cam.stats.on_error()
            self.get_logger().error(f"{cam.topic}: inference failed: {exc!r}", throttle_duration_sec=5.0)
            _release_cuda_cache()
            return None

    def _publish(self, cam: Camera, msg: Image, res, s: Settings) -> None:
        out = Image()
        image_codec.fill(out, res.clean, msg.encoding, msg.header)
        cam.pub_clean.publish(out)
        if s.publish_residue:
            residue = Image()
            image_codec.fill(residue, residue_to_image(res.residue, res.clean.dtype, s.residue_mode),
                             msg.encoding, msg.header)
            cam.pub_residue.publish(residue)

    # ---- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for idx, cam in enumerate(self.cameras):
            snap = cam.stats.snapshot()
            drops = self.slots.dropped[idx]
            level, words = DiagnosticStatus.OK, []
            if snap["errors"] > cam.last_errors:
                level, words = DiagnosticStatus.ERROR, words + ["inference errors"]
            if drops > cam.last_drops:
                level, words = max(level, DiagnosticStatus.WARN), words + ["dropping frames (model slower than input)"]
            if snap["rejected"] > cam.last_rejected:
                level, words = max(level, DiagnosticStatus.WARN), words + ["rejecting malformed frames"]
            if cam.sub is None:
                level, words = max(level, DiagnosticStatus.WARN), words + ["waiting for a publisher"]
            cam.last_drops, cam.last_rejected, cam.last_errors = drops, snap["rejected"], snap["errors"]
            values = {**snap, "dropped_frames": drops, "input_qos": cam.reliability or "none",
                      "enabled": self.settings.enabled, "device": str(self.engine.device)}
            arr.status.append(DiagnosticStatus(
                level=level, name=f"{self.get_name()}: {self.resolve_topic_name(cam.topic)}",
                hardware_id=str(self.engine.device), message="; ".join(words) or "ok",
                values=[KeyValue(key=k, value=f"{v:.2f}" if isinstance(v, float) else str(v))
                        for k, v in values.items()]))
        self._diag_pub.publish(arr)

    # ---- shutdown ---------------------------------------------------------------------------
    @property
    def inference_busy(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 0.5) -> None:
        """Stop the inference thread and release the model (idempotent).

        A frame already in the model is not waited for beyond ``timeout``: on a CPU a
        large frame can take seconds, and shutdown must stay prompt.  The thread is
        a daemon and publishes nothing once the context is gone.
        """
        self.slots.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self.get_logger().info("inference thread busy with a frame; exiting without waiting for it")
            return
        self.engine.model = None
        _release_cuda_cache()


def _release_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def use_bundled_fastdds_profile(environ: dict = os.environ) -> str | None:
    """Point FastDDS at the bundled large-buffer profile unless the user chose a profile or another RMW.

    Without it best-effort camera streams lose most frames (README, "Transport").
    Set FASTDDS_DEFAULT_PROFILES_FILE yourself (even to your own file) to opt out.
    """
    if environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return None
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    for d in data_dirs("config"):
        candidate = d / BUNDLED_PROFILE_NAME
        if candidate.is_file():
            environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(candidate)
            return str(candidate)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; exit 0 however many signals arrive.

    rclpy's own handlers are not installed: after the first signal they hand the
    next one to Python as a KeyboardInterrupt in the middle of shutdown (a
    terminal's Ctrl-C under ``ros2 launch`` delivers two).  Here every signal
    only sets an event; the executor spins in a thread and the main thread
    waits on the event, then shuts down in order.
    """
    profile = use_bundled_fastdds_profile()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = PCNetNode()
    except (WeightsError, ValueError, RuntimeError) as exc:
        print(f"pcnet_node: cannot start: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    if profile:
        node.get_logger().info(f"FastDDS profile: {profile} (set FASTDDS_DEFAULT_PROFILES_FILE to override)")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    failed: list[BaseException] = []
    spinner = threading.Thread(target=_spin, args=(executor, stop, failed), name="pcnet-executor", daemon=True)
    spinner.start()
    while not stop.wait(0.5):      # wakes on a signal, or when the executor ended by itself
        if not spinner.is_alive():
            break
    node.stop()
    busy = node.inference_busy
    executor.shutdown(timeout_sec=0.5)
    spinner.join(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    code = 0
    if failed:
        print(f"pcnet_node: stopped by an error: {failed[0]!r}", file=sys.stderr, flush=True)
        code = 1
    if busy:
        # A frame is still inside torch. Interpreter teardown under a running torch thread
        # aborts the process (std::terminate); everything worth flushing is flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _spin(executor: SingleThreadedExecutor, stop: threading.Event, failed: list) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception as exc:  # a callback raised: stop the node rather than serve half-dead
        failed.append(exc)
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(main())
