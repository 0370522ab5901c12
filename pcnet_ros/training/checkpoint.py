"""A training run's resumable state, ``OUT/last.pth``, and its committable copy (the bank).

It holds everything a resume needs to take the same steps it would have taken unstopped: weights,
Adam state, the weight average, the sampler's and torch's RNG states and the schedule's progress.
Writes are atomic, so a kill never leaves half a checkpoint under the real name.
"""
from __future__ import annotations

from pathlib import Path
import shutil

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from pcnet_ros.paths import atomic_write


def fresh_state() -> dict:
    """The schedule's progress at step 0: nothing validated yet (best -1), no time, no history."""
    return {"step": 0, "best_psnr": -1.0, "elapsed_s": 0.0, "history": [], "pixel_samples": 0}


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator,
                    state: dict, args: dict, averaged: AveragedModel | None = None) -> None:
    """Everything a resume needs, with the command line that made it (as text, for the record)."""
    ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "sampler_rng": rng.bit_generator.state,
          "torch_rng": torch.get_rng_state(), "state": state, "args": {k: str(v) for k, v in args.items()}}
    if averaged is not None:
        ck["ema"] = averaged.state_dict()
    atomic_write(path, lambda tmp: torch.save(ck, tmp))


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator,
                    averaged: AveragedModel | None = None, loss: str = "paper") -> dict:
    """Restore a run in place and return its schedule state. A run that adds --ema on resume starts its average
    from the restored weights (the checkpoint has none). A resume under another loss is refused (ValueError): the
    same command must take the same steps, and a changed objective mid-schedule is a new run."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    made_with = ck.get("args", {}).get("loss", "paper")             # runs from before --loss used the paper's
    if made_with != loss:
        raise ValueError(f"{path} was trained with --loss {made_with}; resuming it with --loss {loss} would change "
                         "the objective mid-schedule (start a new run: another --out, --init from its weights)")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    rng.bit_generator.state = ck["sampler_rng"]
    torch.set_rng_state(ck["torch_rng"])
    if averaged is not None and "ema" in ck:
        averaged.load_state_dict(ck["ema"])
    return {"pixel_samples": 0, **ck["state"]}        # runs from before pixel_samples was counted


def bank_checkpoint(last: Path, bank_path: Path) -> None:
    """Copy the checkpoint to the bank, atomically: the bank is committed and may be read at any moment."""
    atomic_write(bank_path, lambda tmp: shutil.copyfile(last, tmp))
