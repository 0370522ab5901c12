"""pcnet_node: subscribe to camera images, derain them in a dedicated thread, publish clean and residue.

    ros2 run pcnet_ros pcnet_node --ros-args --params-file config/pcnet.yaml
    python -m pcnet_ros.ros.node --ros-args --params-file config/pcnet.yaml

This module only wires ROS to the pieces that do the work: parameters come from
:mod:`.params`, every frame's fate is decided by :class:`.worker.DerainWorker`,
statuses by :mod:`.diagnostics`.  :class:`Wiring` splits what the node owns into
load / open / close / unload so that the managed (lifecycle) node maps its
transitions onto the same code.  Headers are copied, never restamped.
"""
from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3, Vector3Stamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from pcnet_ros.core.engine import DerainEngine, DerainResult, residue_to_image
from pcnet_ros.core.weights import build_model, LOAD_ERRORS
from pcnet_ros.imageio import header_shape
from pcnet_ros.ros import image_codec, params, topics
from pcnet_ros.ros.diagnostics import CameraHealth
from pcnet_ros.ros.qos import make_profile, matching_reliability
from pcnet_ros.ros.stats import SequenceGaps
from pcnet_ros.ros.transport import use_bundled_fastdds_profile
from pcnet_ros.ros.worker import Decoded, DerainWorker, OutputsClosed, Settings


class Camera:
    """One input topic: its resolved name, outputs, subscriptions, camera_info cache and health."""

    #: camera_infos kept for stamp matching: a few seconds of a 10-30 Hz camera
    INFOS_KEPT = 64

    def __init__(self, topic: str, resolved: str) -> None:
        self.topic, self.resolved = topic, resolved
        self.sub = None
        self.info_sub = None
        self.reliability: str | None = None
        self.pubs: dict[tuple[str, str], Any] = {}          # (clean|residue|rain, raw|compressed|info|level)
        self.infos: collections.OrderedDict[tuple[int, int], CameraInfo] = collections.OrderedDict()
        # keep_info runs on the executor, info_for on the inference thread: unguarded, a lookup
        # iterating the cache while a camera_info arrives raised "OrderedDict mutated during iteration"
        self._infos_lock = threading.Lock()
        self.gaps = SequenceGaps()
        self.health = CameraHealth()

    def keep_info(self, info: CameraInfo) -> None:
        with self._infos_lock:
            self.infos[(info.header.stamp.sec, info.header.stamp.nanosec)] = info
            while len(self.infos) > self.INFOS_KEPT:
                self.infos.popitem(last=False)

    def forget_infos(self) -> None:
        with self._infos_lock:
            self.infos.clear()

    def info_for(self, stamp) -> CameraInfo | None:
        """The camera_info with the image's stamp, else the one nearest in time (relayed unchanged either way)."""
        with self._infos_lock:
            exact = self.infos.get((stamp.sec, stamp.nanosec))
            kept = list(self.infos.values()) if exact is None else []
        if exact is not None or not kept:
            return exact
        t = stamp.sec * 10**9 + stamp.nanosec
        return min(kept, key=lambda i: abs(i.header.stamp.sec * 10**9 + i.header.stamp.nanosec - t))


def resolve_cameras(node: Node, values: dict[str, Any]) -> list[Camera]:
    """Resolve input and output names now, so bad or duplicate names fail at start with one line."""
    cams, seen = [], {}
    for topic in values["input_topics"]:
        try:
            resolved = node.resolve_topic_name(topic)
            for suffix in (values["output_suffix"], values["residue_suffix"]):
                node.resolve_topic_name(topics.output_topic(topic, suffix, values["output_layout"]))
        except Exception as exc:  # InvalidTopicNameException and friends, with rcl's reason
            raise params.ConfigError(f"input_topics: '{topic}' (with its output suffixes) is not a valid topic "
                                     f"name: {str(exc).splitlines()[0]}") from None
        if resolved in seen:
            raise params.ConfigError(f"input_topics: '{seen[resolved]}' and '{topic}' are the same topic "
                                     f"({resolved})")
        seen[resolved] = topic
        cams.append(Camera(topic, resolved))
    return cams


def _decode_raw(msg: Image) -> Decoded:
    arr, enc = image_codec.decode(msg)
    return Decoded(arr, enc.bgr, enc.decoded_as)


def _decode_compressed(msg: CompressedImage) -> Decoded:
    arr, encoding = image_codec.decode_compressed(msg)
    return Decoded(arr, True, encoding)


def _image(array: np.ndarray, encoding: str, header) -> Image:
    out = Image()
    image_codec.fill(out, array, encoding, header)
    return out


def _compressed(array: np.ndarray, encoding: str, header, fmt: str, quality: int) -> CompressedImage:
    out = CompressedImage(header=header)
    out.format, data = image_codec.encode_compressed(array, encoding, fmt, quality)
    out.data = data
    return out


class Wiring:
    """What a pcnet node owns besides its parameters: the model and worker, topics, timers."""

    def __init__(self, node: Node, values: dict[str, Any]) -> None:
        self.node, self.values = node, values
        self.cameras = resolve_cameras(node, values)
        self.worker: DerainWorker | None = None
        self.engine: DerainEngine | None = None
        self._timers: list = []
        self._diag_pub = None
        self._open = False
        self._publish_lock = threading.Lock()
        self._compressed_in = values["input_transport"] == "compressed"
        self._out_transports = topics.output_transports(values["output_transport"])
        # Housekeeping runs on steady time: with use_sim_time and no /clock yet, ROS-time timers never
        # fire and the node would never subscribe.  Message stamps are never touched.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)

    # ---- load / unload: the model and the inference thread ----------------------------------
    def load(self) -> None:
        v, log = self.values, self.node.get_logger()
        model, meta = build_model(v["weights"] or None, allow_random=v["allow_random_weights"])
        if meta.get("random"):
            log.error("RUNNING WITH RANDOM WEIGHTS (allow_random_weights=true): output is noise")
        self.engine = DerainEngine(model, device=v["device"], precision=v["precision"],
                                   num_threads=v["torch_threads"] or None, backend=v["backend"],
                                   flip_average=v["flip_average"], flip_axes=v["flip_axes"])
        log.info(f"PCNet on {self.engine.device} ({self.engine.describe()}), "
                 f"weights: {meta.get('path', 'random')} (step {meta.get('step', '?')}, "
                 f"val {meta.get('val_psnr_y', '?')} dB)")
        decode = _decode_compressed if self._compressed_in else _decode_raw
        self.worker = DerainWorker(self.engine, [c.resolved for c in self.cameras], decode, self._publish,
                                   Settings.from_params(v), log, warmup=v["warmup"],
                                   max_batch=v["max_batch"] or self.engine.default_batch,
                                   warmup_sizes=params.parse_sizes(v["warmup_sizes"]),
                                   passthrough_decodes=self._compressed_in and "raw" in self._out_transports,
                                   is_shutting_down=lambda: not self.node.context.ok())
        self.worker.start()

    def unload(self) -> bool:
        """Stop the thread and drop the model; False when a frame was still in the model (left to finish)."""
        if self.worker is None:
            return True
        finished = self.worker.stop()
        if not finished:
            self.node.get_logger().info("inference thread busy with a frame; not waiting for it")
        else:
            self.engine.model = None
            self.engine.release_cached_memory()
        self.worker, self.engine = None, None
        return finished

    # ---- open / close: topics and timers ----------------------------------------------------
    def open_topics(self) -> None:
        v = self.values
        out_qos = make_profile(v["output_qos"], v["output_qos_depth"])
        layout = v["output_layout"]
        for idx, cam in enumerate(self.cameras):
            for kind, suffix in (("clean", v["output_suffix"]), ("residue", v["residue_suffix"])):
                base = topics.output_topic(cam.topic, suffix, layout)
                for transport in self._out_transports:
                    msg_type = Image if transport == "raw" else CompressedImage
                    cam.pubs[kind, transport] = self.node.create_publisher(
                        msg_type, topics.transport_topic(base, transport), out_qos)
                if layout == "camera":
                    cam.pubs[kind, "info"] = self.node.create_publisher(CameraInfo, topics.camera_info_topic(base),
                                                                        out_qos)
            cam.pubs["rain", "level"] = self.node.create_publisher(
                Vector3Stamped, topics.rain_level_topic(cam.topic, layout), out_qos)
            if layout == "camera":
                cam.info_sub = self.node.create_subscription(
                    CameraInfo, topics.camera_info_topic(cam.topic), cam.keep_info,
                    make_profile("best_effort", 10))      # best effort receives from either kind of publisher
            if v["input_qos"] != "auto":
                self._subscribe(idx, v["input_qos"])
        self._open = True
        if v["input_qos"] == "auto":
            self._match_publishers()
            self._timers.append(self.node.create_timer(0.5, self._match_publishers, clock=self._steady))
        self._diag_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timers.append(self.node.create_timer(v["diagnostics_period"], self.publish_diagnostics,
                                                   clock=self._steady))

    def close_topics(self) -> None:
        """Stop taking and publishing frames; the model stays loaded."""
        with self._publish_lock:
            self._open = False
        for t in self._timers:
            self.node.destroy_timer(t)
        self._timers = []
        for cam in self.cameras:
            for sub in (cam.sub, cam.info_sub):
                if sub is not None:
                    self.node.destroy_subscription(sub)
            cam.sub = cam.info_sub = cam.reliability = None
            for pub in cam.pubs.values():
                self.node.destroy_publisher(pub)
            cam.pubs = {}
            cam.forget_infos()
        if self.worker is not None:
            self.worker.slots.clear()
        if self._diag_pub is not None:
            self.node.destroy_publisher(self._diag_pub)
            self._diag_pub = None

    # ---- subscriptions ----------------------------------------------------------------------
    def _input_topic(self, cam: Camera) -> str:
        return topics.transport_topic(cam.topic, self.values["input_transport"])

    def _subscribe(self, idx: int, qos_name: str) -> None:
        cam = self.cameras[idx]
        if cam.sub is not None:
            self.node.destroy_subscription(cam.sub)
        stats = self.worker.stats[idx]
        events = SubscriptionEventCallbacks(message_lost=lambda info: stats.on_lost(info.total_count_change))
        msg_type = CompressedImage if self._compressed_in else Image
        cam.sub = self.node.create_subscription(msg_type, self._input_topic(cam),
                                                lambda msg, info, i=idx: self._on_image(i, msg, info),
                                                make_profile(qos_name, self.values["input_qos_depth"]),
                                                event_callbacks=events)
        cam.reliability = qos_name
        self.node.get_logger().info(f"subscribed to {cam.sub.topic_name} with {qos_name} QoS, "
                                    f"depth {self.values['input_qos_depth']}")

    def _match_publishers(self) -> None:
        """Subscribe, or re-subscribe, with the reliability the topic's publishers offer."""
        if not self._open:   # fired just as shutdown closed the topics
            return
        for idx, cam in enumerate(self.cameras):
            infos = self.node.get_publishers_info_by_topic(self.node.resolve_topic_name(self._input_topic(cam)))
            want = matching_reliability([i.qos_profile for i in infos])
            if want is not None and want != cam.reliability:
                self._subscribe(idx, want)

    def _on_image(self, idx: int, msg, info: dict) -> None:
        """Runs on the executor: check the header (no copy) and park the message; never waits for the model."""
        now = time.monotonic()
        w = self.worker
        w.received(idx, now)
        gid = info.get("publisher_gid") or {}
        missed = self.cameras[idx].gaps.update(bytes(gid.get("data", b"")), info.get("publication_sequence_number"))
        if missed:
            w.stats[idx].on_missed(missed)
        if self._compressed_in:          # decoded in the inference thread; the size rules run on the header
            if not len(msg.data):
                w.reject(idx, "bad_compressed", "empty compressed image")
                return
            shape = header_shape(msg.data)   # None (not JPEG/PNG): checked after decoding
            if shape is None or w.admit(idx, *shape):
                w.offer(idx, msg, now)
            return
        try:
            enc = image_codec.validate(msg)
        except image_codec.MalformedImage as exc:  # checked here so junk never displaces a good frame
            w.reject(idx, exc.reason, str(exc))
            return
        if w.admit(idx, msg.height, msg.width, enc.decoded_channels):
            w.offer(idx, msg, now)

    # ---- outputs ------------------------------------------------------------------------------
    def _publish(self, idx: int, msg, frame: Decoded | None, result: DerainResult | None, s: Settings) -> None:
        cam = self.cameras[idx]
        with self._publish_lock:
            if not self._open:
                raise OutputsClosed()
            if result is None:
                self._pass_through(cam, msg, s)
                return
            header = msg.header
            clean, residue = result.clean, None
            for transport in self._out_transports:
                pub = cam.pubs["clean", transport]
                pub.publish(_image(clean, frame.encoding, header) if transport == "raw" else
                            _compressed(clean, frame.encoding, header, "jpeg", s.jpeg_quality))
            if s.publish_residue:
                residue = residue_to_image(result.residue, clean.dtype, s.residue_mode)
                for transport in self._out_transports:
                    pub = cam.pubs["residue", transport]
                    pub.publish(_image(residue, frame.encoding, header) if transport == "raw" else
                                _compressed(residue, frame.encoding, header, "png", s.jpeg_quality))
            self._relay_info(cam, header.stamp, s.publish_residue)
            if s.publish_rain_level and result.rain is not None:
                r = result.rain
                cam.pubs["rain", "level"].publish(Vector3Stamped(
                    header=header, vector=Vector3(x=r.intensity, y=r.coverage, z=float(r.level))))

    def _pass_through(self, cam: Camera, msg, s: Settings) -> None:
        """enabled=false: the input message itself on the output of its own type, converted only for the other,
        or where the clean topic's encoding would change with ``enabled`` (YUV, NV and Bayer come out RGB either
        way, so a consumer never sees its input's encoding flip). Decoded before anything is sent, so junk goes
        out on no topic."""
        frame = None
        as_is = self._compressed_in or msg.encoding not in image_codec.CONVERTED
        if not as_is or any((t == "compressed") != self._compressed_in for t in self._out_transports):
            frame = (_decode_compressed if self._compressed_in else _decode_raw)(msg)
        for transport in self._out_transports:
            if (transport == "compressed") == self._compressed_in and as_is:
                cam.pubs["clean", transport].publish(msg)
            elif transport == "raw":
                cam.pubs["clean", transport].publish(_image(frame.image, frame.encoding, msg.header))
            else:
                cam.pubs["clean", transport].publish(
                    _compressed(frame.image, frame.encoding, msg.header, "jpeg", s.jpeg_quality))
        self._relay_info(cam, msg.header.stamp, False)

    def _relay_info(self, cam: Camera, stamp, residue: bool) -> None:
        if ("clean", "info") not in cam.pubs:
            return
        info = cam.info_for(stamp)
        if info is None:
            return
        cam.pubs["clean", "info"].publish(info)
        if residue:
            cam.pubs["residue", "info"].publish(info)

    def publish_diagnostics(self) -> None:
        w = self.worker
        if not self._open or w is None:
            return
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        for idx, cam in enumerate(self.cameras):
            extra = {"input_qos": cam.reliability or "none", "input_qos_depth": self.values["input_qos_depth"],
                     "enabled": w.settings.enabled, "device": str(self.engine.device)}
            arr.status.append(cam.health.status(f"{self.node.get_name()}: {cam.resolved}", str(self.engine.device),
                                                w.stats[idx].snapshot(), w.dropped(idx), extra, cam.sub is not None,
                                                w.warming_up, self.engine.pass_cap))
        with self._publish_lock:   # a timer already dequeued when shutdown closes the topics must not publish
            if self._open and self._diag_pub is not None:
                self._diag_pub.publish(arr)

    # ---- run-time parameters ----------------------------------------------------------------
    def on_set_parameters(self, changed: list[Parameter], static_hint: str = params.RESTART) -> SetParametersResult:
        new, answer = checked_changes(self.values, changed, static_hint)
        if new is None:
            return answer
        settings = Settings.from_params(new)
        if self.worker is not None and settings != self.worker.settings:
            self.worker.settings = settings
            self.node.get_logger().info(f"run-time parameters now {settings}")
        self.values = new
        return answer


def checked_changes(current: dict, changed: list[Parameter],
                    static_hint: str | None) -> tuple[dict | None, SetParametersResult]:
    """``current`` with ``changed`` applied and rcl's answer; None and the refusal's reason when one is refused."""
    try:
        new = params.changed_values(current, [(prm.name, prm.value) for prm in changed], static_hint)
    except params.ConfigError as exc:
        return None, SetParametersResult(successful=False, reason=str(exc))
    return new, SetParametersResult(successful=True)


class PCNetNode(Node):
    """The plain node: loads the model and opens its topics at construction."""

    def __init__(self, **kwargs) -> None:
        super().__init__("pcnet", **kwargs)
        values = params.declare_all(self)
        self.wiring = Wiring(self, values)
        self.wiring.load()
        self.wiring.open_topics()
        self.add_on_set_parameters_callback(self.wiring.on_set_parameters)

    def shutdown(self) -> bool:
        """Close topics and stop the thread; False when a frame is still inside torch."""
        self.wiring.close_topics()
        return self.wiring.unload()


#: What building a node raises for a user's mistake (a bad parameter, weights that do not load): one line, no
#: traceback, from the plain node's start and the managed node's configure alike.
STARTUP_ERRORS = (params.ConfigError, *LOAD_ERRORS)


def run(make_node: Callable[[], Node], name: str, argv: list[str] | None = None) -> int:
    """Spin ``make_node()`` until SIGINT/SIGTERM; exit 0 however many signals arrive.

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
        node = make_node()
    except STARTUP_ERRORS as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown(uninstall_handlers=False)   # keep our handlers: more signals may come
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
    finished = node.shutdown()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # From here on a signal has nothing left to stop.  Ignored, not just caught: interpreter teardown
        # resets caught signals to their default action, and a late second Ctrl-C would kill the process.
        signal.signal(sig, signal.SIG_IGN)
    executor.shutdown(timeout_sec=0.5)
    spinner.join(1.0)
    node.destroy_node()
    rclpy.try_shutdown(uninstall_handlers=False)   # keep our handlers: more signals may come
    code = 0
    if failed:
        print(f"{name}: stopped by an error: {failed[0]!r}", file=sys.stderr, flush=True)
        code = 1
    if not finished:
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


def main(argv: list[str] | None = None) -> int:
    return run(PCNetNode, "pcnet_node", argv)


if __name__ == "__main__":
    sys.exit(main())
