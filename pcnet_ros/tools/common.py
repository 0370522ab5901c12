"""What the command-line tools share: the engine flags, starting the node as a process, exit codes."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import Any, IO, Sequence

from pcnet_ros.core.engine import BACKENDS, DerainEngine, FLIP_AXES, InputError, PRECISIONS
from pcnet_ros.core.memory_budget import FrameBudget, MODEL_BYTES_PER_PIXEL
from pcnet_ros.core.weights import build_model, LOAD_ERRORS
from pcnet_ros.paths import SOURCE_ROOT

#: Exit codes of every tool: 0 all done, 1 done but some inputs skipped, 2 usage or input error.
OK, PARTIAL, USAGE = 0, 1, 2


class ToolError(RuntimeError):
    """A usage or input problem: the tool prints it on one line and exits with USAGE."""


def whole(lo: int = 0, hi: int | None = None):
    """An argparse type: a whole number from ``lo`` to ``hi``, refused at parsing otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < lo or hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range; give {lo} or more" if hi is None
                                             else f"{value} is out of range; give {lo} to {hi}")
        return value
    return parse


#: a count or size flag: 0 or more, 0 meaning the flag's default
count = whole(0)


def add_engine_args(ap: argparse.ArgumentParser, random_weights: bool = False, backend_default: str | None = "auto",
                    backend_help: str = "inference backend", flip_average: bool = True, max_side: bool = False) -> None:
    """--weights --device --backend --batch --precision --threads [--flip-average --flip-axes] [--max-side], alike in
    every tool."""
    g = ap.add_argument_group("model")
    g.add_argument("--weights", default="light", help="bundled name (light, heavy) or a .pth path")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--backend", choices=BACKENDS, default=backend_default, help=backend_help)
    g.add_argument("--batch", type=count, default=0,
                   help="frames of one size run as one batch, up to this many (0: 4 on CUDA, 1 on a CPU)")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp16 on CUDA; bf16 on CUDA or with openvino on a bf16 CPU")
    g.add_argument("--threads", type=count, default=0, help="torch CPU threads (0: torch's default)")
    if flip_average:
        g.add_argument("--flip-average", action="store_true",
                       help="also run each frame mirrored and average the two: twice the model work, a cleaner frame")
        g.add_argument("--flip-axes", choices=FLIP_AXES, default="horizontal",
                       help="with --flip-average: both also runs each frame upside down and turned half round (four "
                            "views, twice the work again)")
    if max_side:
        g.add_argument("--max-side", type=count, default=0, metavar="PX",
                       help="run images longer than this downscaled and take the upsampled rain layer from the "
                            "full-size image, as the node's max_input_size does: less memory (the model needs about "
                            f"{MODEL_BYTES_PER_PIXEL} bytes a pixel) and time; output stays full size (0: never)")
        g.add_argument("--max-frame-memory-mb", type=count, default=0, metavar="MB",
                       help="skip (with a message) images whose estimated working memory exceeds this, so one huge "
                            "or forged image cannot get the run killed for memory (0: the memory available when "
                            "the tool starts)")
    if random_weights:
        g.add_argument("--random-weights", action="store_true",
                       help="ignore --weights and run an untrained model (plumbing tests only; output is noise)")


def engine_from_args(args: argparse.Namespace) -> DerainEngine:
    """The engine the flags describe; bad weights or device become a ToolError."""
    random = bool(getattr(args, "random_weights", False))
    try:
        model, meta = build_model(None if random else args.weights, allow_random=random)
        if meta.get("random"):
            logging.warning("RUNNING WITH RANDOM WEIGHTS: output is meaningless")
        return DerainEngine(model, device=args.device, precision=args.precision, backend=args.backend,
                            num_threads=args.threads or None, flip_average=args.flip_average,
                            flip_axes=args.flip_axes)
    except LOAD_ERRORS as exc:
        raise ToolError(str(exc)) from None


def available_memory_mb() -> float:
    """Memory a new allocation can have without swapping or the OOM killer: /proc/meminfo's MemAvailable, capped
    by a cgroup's limit (a container); inf where neither can be read."""
    free = float("inf")
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            room = (int(Path(limit).read_text()) - int(Path(used).read_text())) / 2**20
        except (OSError, ValueError):      # absent, or "max": no limit
            continue
        free = min(free, max(room, 0.0))
    return free


class FrameTooLarge(InputError):
    """An image would need more host memory than the tool's budget."""


@dataclass(frozen=True)
class ToolBudget(FrameBudget):
    """The node's memory rule as a tool flag: an image that cannot fit is skipped, with a reason, before it is
    decoded (where its header tells its size) or run."""

    def check(self, height: int, width: int, channels: int) -> None:
        """Raise FrameTooLarge when one such image alone is over the budget."""
        if not self.fits(height, width, channels):
            hint = "a smaller --max-side" if self.max_side else "--max-side (e.g. 1920)"
            raise FrameTooLarge(f"{width}x{height} would need about {self.need_mb(height, width, channels):,.0f} MB, "
                                f"over the {self.mb:,.0f} MB budget (--max-frame-memory-mb); {hint} needs less")


def budget_from_args(args: argparse.Namespace, engine: DerainEngine) -> ToolBudget:
    return ToolBudget.for_engine(args.max_frame_memory_mb or available_memory_mb(), args.max_side, engine)


def inference_failed(what: str, exc: BaseException, before: str = "") -> str:
    """The one line a batch tool prints when the model fails (out of memory, a device error): which frames, why,
    and the flag that helps; ``before``: what was done before it."""
    return (f"inference failed on {what}: {type(exc).__name__}: {exc} "
            f"({before + '; ' if before else ''}a smaller --batch or a --max-side needs less memory)")


def fail(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
    return USAGE


def start_node(params: dict[str, Any], namespace: str = "/", log: IO | int = subprocess.DEVNULL,
               params_file: Path | None = None, env: dict | None = None,
               module: str = "pcnet_ros.ros.node", prefix: Sequence[str] = ()) -> subprocess.Popen:
    """pcnet_node (or ``module``) as its own process, started as a user would (``--params-file``, ``-p``);
    ``prefix`` goes before the interpreter, as a launch file's ``prefix`` does (e.g. ``prlimit --data=...``)."""
    cmd = [*prefix, sys.executable, "-m", module, "--ros-args"]
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    cmd += ["-r", f"__ns:={namespace}"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={json.dumps(v)}"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=SOURCE_ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def process_memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a running process from /proc/PID/status, in MB (VmRSS now, VmHWM its peak so far);
    NaN where the field is missing."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop_node(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10) -> int:
    """Signal the node and wait; kill it if it does not end in ``timeout`` s. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
