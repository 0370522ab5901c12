"""Finding, loading and saving PCNet weights, strictly.

Loading accepts the authors' checkpoints as they publish them (a dict with a
``state_dict`` entry, optionally saved from ``nn.DataParallel`` with a
``module.`` prefix) as well as a bare state_dict.  Anything that does not fit
the model exactly is refused with the offending key names: a silently partial
load would publish plausible-looking but wrong images.
"""
from __future__ import annotations

import os
from pathlib import Path
import re
from typing import Any, Mapping

import torch

from pcnet_ros.core.model import count_parameters, PCNet
from pcnet_ros.paths import atomic_write, data_dirs

#: Variants shipped in ``weights/``; the node's ``weights`` parameter accepts these names.
BUNDLED = {"light": "pcnet_light.pth", "heavy": "pcnet_heavy.pth"}


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


#: What loading weights and putting the model on a device raise for a user's mistake (a missing or foreign file, a
#: device or precision that is not there): every caller reports these in one line, never a traceback.
LOAD_ERRORS = (WeightsError, ValueError, RuntimeError)


def weights_dirs() -> list[Path]:
    """Where bundled weights may live: $PCNET_WEIGHTS_DIR first, then :func:`data_dirs`."""
    env = [Path(os.environ["PCNET_WEIGHTS_DIR"])] if os.environ.get("PCNET_WEIGHTS_DIR") else []
    return env + data_dirs("weights")


def resolve_weights(spec: str) -> Path:
    """A bundled variant name ('light', 'heavy') or a path -> an existing file path."""
    if spec in BUNDLED:
        for d in weights_dirs():
            if (d / BUNDLED[spec]).is_file():
                return d / BUNDLED[spec]
        searched = ", ".join(str(d) for d in weights_dirs())
        raise WeightsError(f"bundled weights '{spec}' ({BUNDLED[spec]}) not found in: {searched}")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file into a dict, with a clear error for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and EOF errors all mean the same to a user
        raise _unreadable(path, exc) from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"weights file {path} holds a {type(obj).__name__}, not a state_dict")
    return dict(obj)


def _unreadable(path: Path, exc: Exception) -> WeightsError:
    """One line for a file torch.load refused. torch's own text runs to several lines, with terminal colour codes,
    and advises ``weights_only=False``, which a node parameter cannot set and which would run the file's code."""
    text = str(exc)
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if unpickler and unpickler.group(1).startswith("Unsupported global"):
        what = unpickler.group(1).split(" was not an allowed global")[0].replace("GLOBAL ", "")
        return WeightsError(f"weights file {path} holds Python objects besides tensors ({what}); pcnet_ros never "
                            "runs code from a weights file: save its state_dict alone from a copy you trust "
                            "(README, Weights)")
    reason = (unpickler.group(1) if unpickler else text).strip().splitlines()
    return WeightsError(f"cannot read weights file {path}: {type(exc).__name__}: {reason[0] if reason else ''} "
                        "(truncated or corrupt download? not a torch checkpoint?)")


def extract_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict': ...}`` and strip a DataParallel ``module.`` prefix."""
    sd = checkpoint.get("state_dict", checkpoint)
    if not isinstance(sd, Mapping):
        raise WeightsError("checkpoint's 'state_dict' entry is not a mapping")
    out = {}
    for key, value in sd.items():
        if key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


def check_state_dict(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Raise WeightsError naming missing, unexpected and wrongly shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {show(shapes)}")
        raise WeightsError("weights do not fit PCNet(" + ", ".join(
            f"{k}={v}" for k, v in getattr(model, "config", {}).items()) + "): " + "; ".join(parts))


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Strictly load ``path`` into ``model``; returns the checkpoint's metadata (may be empty)."""
    ckpt = read_checkpoint(path)
    sd = extract_state_dict(ckpt)
    check_state_dict(model, sd)
    model.load_state_dict(sd, strict=True)
    meta = ckpt.get("meta", {})
    return dict(meta) if isinstance(meta, Mapping) else {}


def save_weights(model: torch.nn.Module, path: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> None:
    """Weights only (no optimizer state), in the authors' ``{'state_dict': ...}`` layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().float().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save({"state_dict": sd, "meta": dict(meta or {})}, tmp))


def build_model(weights: str | None, allow_random: bool = False, **config: Any) -> tuple[PCNet, dict[str, Any]]:
    """PCNet with weights loaded; random weights only when explicitly allowed."""
    model = PCNet(**config)
    if weights:
        path = resolve_weights(weights)
        meta = load_weights(model, path)
        meta.setdefault("path", str(path))
    elif allow_random:
        meta = {"random": True}
    else:
        raise WeightsError("no weights given; pass a weights file or a bundled name "
                           f"({', '.join(BUNDLED)}); random weights produce garbage")
    model.eval()
    meta.setdefault("parameters", count_parameters(model))
    return model, meta
