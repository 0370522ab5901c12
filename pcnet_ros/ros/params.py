"""The node's parameters, defined once: declaration, validation, config/pcnet.yaml and the README table.

Every fact about a parameter (default, type, choices or range, whether it can
change at run time, what it means) lives in :data:`PARAMS`.  The node declares
from it, start-up and ``ros2 param set`` are checked against it, and
``python -m pcnet_ros.ros.params --yaml`` / ``--markdown`` write the shipped
params file and the README table (a test keeps both equal to this table).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import re
import sys
from typing import Any, Iterable

from pcnet_ros.core.engine import BACKENDS, FLIP_AXES, PRECISIONS, RESIDUE_MODES
from pcnet_ros.ros.image_codec import JPEG_QUALITY_RANGE
from pcnet_ros.ros.qos import INPUT_CHOICES, OUTPUT_CHOICES
from pcnet_ros.ros.topics import INPUT_TRANSPORTS, LAYOUTS, OUTPUT_TRANSPORTS

OVERSIZE_POLICIES = ("downscale", "refuse")
#: Largest image side anything here accepts (max_input_size, warmup_sizes).
MAX_SIDE = 16384


class ConfigError(ValueError):
    """A parameter value the node cannot start with (or change to); the message says which and why."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    doc: str
    group: str
    runtime: bool = False
    choices: tuple[str, ...] = ()
    lo: float | None = None     # inclusive range for numbers
    hi: float | None = None

    @property
    def type_name(self) -> str:
        return {bool: "a bool", int: "an integer", float: "a double", str: "a string", list: "a string array"}[
            type(self.default)]

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        want = type(self.default)
        if want is list and not value:       # `[]` in YAML arrives untyped, as None
            return f"{self.name} must list at least one topic"
        if want is float and type(value) is int:
            value = float(value)
        if type(value) is not want or (want is list and not all(isinstance(v, str) for v in value)):
            return f"{self.name} must be {self.type_name}, got {value!r}" + (
                " (write 2.0, not 2)" if want is float and isinstance(value, int) else "")
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}; got '{value}'"
        if self.lo is not None and value < self.lo:
            return f"{self.name} must be >= {self.lo:g}; got {value}"
        if self.hi is not None and value > self.hi:
            return f"{self.name} must be <= {self.hi:g}; got {value}"
        return None


MODEL, TOPICS, QOS, RUNTIME, LIMITS = "model", "topics", "QoS", "behaviour", "limits"

PARAMS: tuple[Param, ...] = (
    Param("weights", "light", "bundled `light` or `heavy`, or a path to a `.pth` (the authors' `model_best.pth` "
          "loads as is)", MODEL),
    Param("allow_random_weights", False, "with `weights: \"\"`, run an untrained net (plumbing tests only)", MODEL),
    Param("device", "auto", "`auto` (CUDA if present), `cpu`, `cuda`, `cuda:N`; CUDA asked for and absent is an "
          "error, never a silent CPU fallback", MODEL),
    Param("backend", "auto", "`auto` (openvino on a CPU where it is installed, else eager), `eager` (torch, "
          "channels_last), `compile` (torch.compile; CUDA graphs on a GPU; the first frame of each size compiles for "
          "about a minute on a CPU), `onnxruntime`, `openvino` (compiled per input size)", MODEL, choices=BACKENDS),
    Param("precision", "fp32", "`fp16` on CUDA; `bf16` on CUDA or with openvino on a CPU with native bf16; "
          "anything a device cannot run stops the node at start", MODEL, choices=PRECISIONS),
    Param("max_batch", 0, "frames of the same size from different cameras run as one batch, up to this many; "
          "0: 4 on CUDA and with openvino on a CPU (its throughput streams), "
          "1 for torch on a CPU (measured: no gain there)", MODEL, lo=0, hi=16),
    Param("flip_average", False, "also run each frame mirrored, as one batch, and average the two: twice the model "
          "work for a cleaner frame (+0.27 dB on the held-out split; see *Flip averaging*)", MODEL),
    Param("flip_axes", "horizontal", "with `flip_average`: `horizontal` averages the frame and its mirror image; "
          "`both` also runs it upside down and turned half round, four views: twice the work again for +0.10 dB more "
          "on the split", MODEL, choices=FLIP_AXES),
    Param("torch_threads", 0, "CPU threads for torch (0: torch's default)", MODEL, lo=0, hi=256),
    Param("warmup", True, "run dummy frames at start so the first real one is not slow", MODEL),
    Param("warmup_sizes", "", "the cameras' sizes, `WIDTHxHEIGHT` separated by commas (e.g. `1280x720,640x480`): "
          "warm-up runs each alone and at the batch the cameras fill, so no real frame pays for compiling a size "
          "(openvino: 1.5 s more on the first 640x480 frame, and again on the first batch); empty: one small "
          "frame (threads and allocator only)", MODEL),
    Param("input_topics", ["image_raw"], "camera image topics, served round-robin; relative names resolve in the "
          "node's namespace", TOPICS),
    Param("output_suffix", "derained", "clean image topic: `<input>/<output_suffix>`", TOPICS),
    Param("residue_suffix", "rain_residue", "residue topic: `<input>/<residue_suffix>`", TOPICS),
    Param("output_layout", "suffix", "`suffix`: `T/derained`, `T/rain_residue`; `camera`: `<cam>/derained/image_raw` "
          "and `<cam>/rain_residue/image_raw`, each with a `camera_info` relayed unchanged from `<cam>/camera_info` "
          "(for image_proc and detectors)", TOPICS, choices=LAYOUTS),
    Param("input_transport", "raw", "`raw` subscribes `sensor_msgs/Image` on `T`; `compressed` subscribes "
          "`sensor_msgs/CompressedImage` (JPEG/PNG) on `T/compressed`, decoded in the inference thread", TOPICS,
          choices=INPUT_TRANSPORTS),
    Param("output_transport", "raw", "publish outputs as `raw` Images, `compressed` (`<out>/compressed`: JPEG "
          "for the clean image, PNG for the residue), or both", TOPICS, choices=OUTPUT_TRANSPORTS),
    Param("input_qos", "auto", "`auto` matches the publishers' reliability (like image_proc)", QOS,
          choices=INPUT_CHOICES),
    Param("input_qos_depth", 10, "subscription history depth: a burst longer than this is cut by DDS before the "
          "node sees it (counted as `missed_sequence`). Reliable: keep it at least the camera publisher's depth "
          "(10 is the ROS 2 default; DDS does not announce it), or the stream can stall after a lost frame "
          "(README, Transport)", QOS, lo=1, hi=100),
    Param("output_qos", "reliable", "publishers' QoS", QOS, choices=OUTPUT_CHOICES),
    Param("output_qos_depth", 5, "publishers' history depth", QOS, lo=1, hi=100),
    Param("enabled", True, "`false` republishes the input untouched on the clean topic (YUV, NV and Bayer "
          "frames converted to RGB, so the topic's encoding does not change with it)", RUNTIME, runtime=True),
    Param("publish_residue", True, "publish the residue topic", RUNTIME, runtime=True),
    Param("publish_rain_level", True, "publish `geometry_msgs/Vector3Stamped` on the rain-level topic: x = "
          "intensity, y = coverage, z = level 0/1/2 (see *Rain level*)", RUNTIME, runtime=True),
    Param("jpeg_quality", 90, "JPEG quality of compressed clean images", RUNTIME, runtime=True,
          lo=JPEG_QUALITY_RANGE[0], hi=JPEG_QUALITY_RANGE[1]),
    Param("residue_mode", "positive", "`positive` or `signed` (see *Residue*)", RUNTIME, runtime=True,
          choices=RESIDUE_MODES),
    Param("max_input_size", 1920, "longest side fed to the model (0: no limit)", RUNTIME, runtime=True,
          lo=0, hi=MAX_SIDE),
    Param("oversize_policy", "downscale", "frames over `max_input_size`: `downscale` estimates the residue at "
          "reduced size and subtracts it, upsampled, from the full-resolution frame; `refuse` drops and counts "
          "them", RUNTIME, runtime=True, choices=OVERSIZE_POLICIES),
    Param("max_frame_memory_mb", 4096, "refuse (count as `rejected_oversize`) frames whose estimated host "
          "working memory exceeds this, so one huge frame cannot take the host down; a batch (`max_batch`) holds "
          "only as many frames as fit in it together", LIMITS, runtime=True,
          lo=64, hi=1_000_000),
    Param("diagnostics_period", 1.0, "seconds between `/diagnostics` messages (steady time)", LIMITS,
          lo=0.1, hi=3600.0),
)
BY_NAME = {p.name: p for p in PARAMS}
RUNTIME_NAMES = tuple(p.name for p in PARAMS if p.runtime)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'1280x720, 640x480' -> [(1280, 720), (640, 480)] as (width, height); '' -> []. Raises ConfigError."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", item)
        if not m or not all(0 < int(v) <= MAX_SIDE for v in m.groups()):
            raise ConfigError(f"warmup_sizes must be WIDTHxHEIGHT sizes separated by commas, each side 1-{MAX_SIDE} "
                              f"(e.g. 1280x720,640x480); got '{item}'")
        sizes.append((int(m[1]), int(m[2])))
    return sizes


def check_all(values: dict[str, Any]) -> None:
    """Each value against its table entry, then the rules between parameters. Raises ConfigError."""
    for name, value in values.items():
        why = BY_NAME[name].check(value)
        if why:
            raise ConfigError(why)
    if not values["input_topics"] or not all(values["input_topics"]):
        raise ConfigError("input_topics must list at least one topic, and no empty names")
    for key in ("output_suffix", "residue_suffix"):
        if not values[key]:
            raise ConfigError(f"{key} must not be empty: the output would be the input topic itself")
    parse_sizes(values["warmup_sizes"])
    if values["output_suffix"] == values["residue_suffix"]:
        raise ConfigError(f"output_suffix and residue_suffix are both '{values['output_suffix']}': clean and "
                          "residue images would share one topic")


#: What a node that is running says about a change to a parameter that is not run-time.
RESTART = "restart the node to change it"


def check_change(name: str, value: Any, static_hint: str | None = RESTART) -> str | None:
    """Why a change is refused, or None. ``static_hint``: what to do instead when ``name`` is not a run-time
    parameter; None where every parameter may change (a managed node that is not configured)."""
    p = BY_NAME.get(name)
    if p is None:
        return None                    # not ours (use_sim_time and friends)
    if not p.runtime and static_hint is not None:
        return f"{name} is read-only: {static_hint}"
    return p.check(value)


def changed_values(current: dict[str, Any], changes: Iterable[tuple[str, Any]],
                   static_hint: str | None = RESTART) -> dict[str, Any]:
    """``current`` with ``changes`` applied, as ``ros2 param set`` gets them: each checked, then the rules between
    parameters. Raises ConfigError, and nothing changes, if any one is refused."""
    new = dict(current)
    for name, value in changes:
        why = check_change(name, value, static_hint)
        if why:
            raise ConfigError(why)
        if name in BY_NAME:
            new[name] = value
    check_all(new)
    return new


def descriptor(p: Param, static_read_only: bool = True):
    """The rcl ParameterDescriptor: read-only flag, range, and the doc with its choices. rcl's read-only is for
    the node's whole life, so a managed node, whose static parameters may change while it is unconfigured,
    declares them writable (``static_read_only=False``) and refuses them itself while configured."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    doc = p.doc.replace("`", "") + (f" (one of: {', '.join(p.choices)})" if p.choices else "")
    kw = {}
    if p.lo is not None and type(p.default) is int:
        kw["integer_range"] = [IntegerRange(from_value=int(p.lo), to_value=int(p.hi), step=1)]
    elif p.lo is not None and type(p.default) is float:
        kw["floating_point_range"] = [FloatingPointRange(from_value=float(p.lo), to_value=float(p.hi), step=0.0)]
    return ParameterDescriptor(description=doc, read_only=not p.runtime and static_read_only, **kw)


def declare_all(node, static_read_only: bool = True) -> dict[str, Any]:
    """Declare every parameter on ``node``; a bad override becomes one ConfigError line, not a traceback.

    An integer given for a double parameter (``diagnostics_period: 2``) is taken as that double.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for p in PARAMS:
        try:
            values[p.name] = node.declare_parameter(p.name, p.default, descriptor(p, static_read_only)).value
            continue
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            given = node._parameter_overrides.get(p.name)   # rclpy keeps --ros-args/params-file values here
            value = given.value if given is not None else None
            why = p.check(value) if given is not None else str(exc)
        except (TypeError, ValueError) as exc:              # e.g. `input_topics: []`: rclpy cannot type it
            value, why = None, f"{p.name}: {exc}"
        if why is None and type(p.default) is float and type(value) is int:
            values[p.name] = node.declare_parameter(p.name, float(value), descriptor(p, static_read_only),
                                                    ignore_override=True).value
            continue
        raise ConfigError(why or f"{p.name}: invalid value {value!r}")
    check_all(values)
    return values


def yaml_text() -> str:
    """config/pcnet.yaml, from the table."""
    lines = ["# pcnet_node parameters, from pcnet_ros/ros/params.py by `python -m pcnet_ros.ros.params --yaml`.",
             "# Load with:  --ros-args --params-file config/pcnet.yaml   (\"/**\" matches any node name/namespace)",
             "/**:", "  ros__parameters:"]
    group = None
    for p in PARAMS:
        if p.group != group:
            group = p.group
            lines.append(f"    # --- {group}")
        doc = p.doc.replace("`", "") + (f" [{' | '.join(p.choices)}]" if p.choices else "") + (
            " (run-time: ros2 param set)" if p.runtime else "")
        lines.append(f"    {p.name}: {json.dumps(p.default)}  # {doc}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's parameter table, from the table."""
    rows = ["| name | default | run-time | meaning |", "|---|---|---|---|"]
    for p in PARAMS:
        extra = []
        if p.choices:
            extra.append("one of " + ", ".join(f"`{c}`" for c in p.choices))
        if p.lo is not None:
            extra.append(f"{p.lo:g} to {p.hi:g}")
        doc = p.doc + (f" ({'; '.join(extra)})" if extra else "")
        rows.append(f"| `{p.name}` | `{json.dumps(p.default)}` | {'yes' if p.runtime else 'no'} | {doc} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcnet_ros.ros.params", description=__doc__)
    ap.add_argument("--yaml", action="store_true", help="print config/pcnet.yaml")
    ap.add_argument("--markdown", action="store_true", help="print the README parameter table")
    args = ap.parse_args(argv)
    sys.stdout.write(markdown_table() if args.markdown else yaml_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
