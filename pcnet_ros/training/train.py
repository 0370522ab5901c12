"""pcnet-train: train PCNet on paired folders, on CPU or GPU, resumable across sessions.

Everything needed to continue lives in ``OUT/last.pth`` (weights, Adam state,
step, RNG states, history), written atomically every ``--ckpt-every`` steps
and on Ctrl-C/SIGTERM.  Re-running the same command continues where it
stopped.  ``--bank FILE`` keeps a copy of it at every validation in a file
that can be committed, so that a new machine without ``OUT/`` continues the
same schedule with the same optimizer state.  The best validation weights go
to ``OUT/best.pth`` (weights only), and with ``--export`` to a shippable file
with their provenance.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
import shutil
import signal
import sys
import time

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from pcnet_ros.core.engine import DerainEngine, resolve_device
from pcnet_ros.core.model import PCNet
from pcnet_ros.core.weights import LOAD_ERRORS, load_weights, resolve_weights, save_weights, WeightsError
from pcnet_ros.progress import progress_bar
from pcnet_ros.training.checkpoint import bank_checkpoint, fresh_state, load_checkpoint, save_checkpoint
from pcnet_ros.training.evaluate import score_pairs, summarise
from pcnet_ros.training.losses import LOSSES
from pcnet_ros.training.pairs import (AUGMENTATIONS, list_pairs, load_named_pairs, load_pairs, PatchSampler,
                                      share_weights, split_pairs, synthesize_pairs)
from pcnet_ros.training.provenance import start_record, weights_meta
from pcnet_ros.training.run_clock import RunClock, StepTimes, stop_self
from pcnet_ros.training.run_log import append_record, open_run_log
from pcnet_ros.training.streaks import StreakBank
from pcnet_ros.training.transplant import rain_layer

MODEL_SIZES = {"paper": {}, "tiny": {"n_feat": 8, "num_crb": 1, "num_rcab": 1}}


def lr_at(step: int, total: int, base: float, floor: float = 0.01, warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``base`` to ``base * floor``.

    Stateless, so resuming needs no scheduler state.  The warm-up lets a fresh
    Adam settle when a schedule restarts from trained weights.
    """
    if step < warmup:
        return base * (step + 1) / warmup
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def to_device_batch(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """A sampled N,3,P,P float32 batch on the device, channels_last as the model runs."""
    return torch.from_numpy(a).to(device).contiguous(memory_format=torch.channels_last)


def train_step(forward, opt: torch.optim.Optimizer, loss_fn: torch.nn.Module, rainy: torch.Tensor, clean: torch.Tensor,
               precision: str = "fp32", accum: int = 1) -> torch.Tensor:
    """One optimiser step; the forward pass autocasts to bf16 if asked, the loss stays fp32. With accum > 1 the
    batch runs as that many equal chunks whose gradients add up before the step (every loss term is a mean over
    the batch, so the step is the same), for batches whose activations do not fit in memory. Returns the loss."""
    if rainy.shape[0] % accum:
        raise ValueError(f"a batch of {rainy.shape[0]} does not split into {accum} equal chunks")
    opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=rainy.device)             # summed where the loss lives: no sync per chunk
    for r, c in zip(rainy.chunk(accum), clean.chunk(accum)):
        with torch.autocast(r.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            clean_pred, rain_pred = forward(r)
        loss = loss_fn(clean_pred.float(), rain_pred.float(), c, r) / accum
        loss.backward()
        total += loss.detach()
    opt.step()
    return total


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pcnet-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="paired folder (rain/, clean/); repeatable")
    ap.add_argument("--data-share", type=float, nargs="+",
                    help="share of the patches drawn from each --data folder, in order (default: by pair count)")
    ap.add_argument("--val-every", type=int, default=10, help="hold out every Nth pair of each --data folder")
    ap.add_argument("--out", type=Path, required=True, help="run folder for checkpoints and logs")
    ap.add_argument("--steps", type=int, default=60000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--accum", type=int, default=1,
                    help="run each batch as this many equal chunks, gradients accumulated: the same step as the "
                         "whole batch at a fraction of the activation memory (--batch must divide by it)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=0, help="steps of linear learning-rate warm-up")
    ap.add_argument("--aug", choices=AUGMENTATIONS, default="flips",
                    help="patch views: 4 flips, or all 8 flips and quarter turns (these lay the rain's "
                         "near-vertical streaks flat and cost PSNR on Rain100L)")
    ap.add_argument("--loss", choices=list(LOSSES), default="paper",
                    help="paper: the authors' Charbonnier + edge + SSIM; mse: what PSNR measures (a last fine-tune); "
                         "psnr: minus each patch's PSNR, averaged as the benchmarks average images")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="autocast the forward pass; validation and saved weights stay fp32. bf16 pays off only "
                         "on CPUs with native bf16 (avx512_bf16/AMX) or on GPUs")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the training forward (about 2 min once per patch size; ~13%% faster "
                         "steps measured on 2 CPU cores)")
    ap.add_argument("--bank", type=Path,
                    help="a committable copy of last.pth, refreshed at every validation; resumed from when "
                         "OUT/last.pth is missing (a new machine)")
    ap.add_argument("--stop-at", type=int, metavar="STEP",
                    help="stop at this step of the --steps schedule (checkpoint and bank, as on SIGTERM); the "
                         "same command without it continues the same schedule")
    ap.add_argument("--eval-every", type=int, default=500, help="validation PSNR every N steps")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=20, help="write the loss to OUT/log.jsonl every N steps")
    ap.add_argument("--max-val", type=int, default=0, help="score at most N validation images (0: all)")
    ap.add_argument("--max-side", type=int, default=1024, help="downsize bigger training images to this")
    ap.add_argument("--synth-prob", type=float, default=0.0, help="chance a patch gets synthesized rain instead")
    ap.add_argument("--synth-level", default="light", choices=["light", "heavy"])
    ap.add_argument("--val-synth", choices=["light", "heavy"],
                    help="also validate on rain of this level synthesized onto the held-out clean images")
    ap.add_argument("--streaks", type=Path,
                    help="folder of rendered rain-streak layers (e.g. ../shared/data/rain-streaks-garg06): "
                         "synthesized rain is composited from them (RainMix style) instead of drawn procedurally")
    ap.add_argument("--transplant-from", action="append", default=[],
                    help="a --data folder whose training pairs lend their real rain (rainy - clean) to clean "
                         "patches of any folder; repeatable")
    ap.add_argument("--transplant-prob", type=float, default=0.0,
                    help="chance a patch not synthesized gets transplanted rain instead of its own")
    ap.add_argument("--val-data", action="append", default=[],
                    help="paired folder used only for validation (all its pairs); repeatable. When given, the "
                         "best weights are chosen on the mean of its Y-PSNR and the held-out split's")
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="also keep an exponential moving average of the weights (e.g. 0.995), validated beside "
                         "them; the better of the two is exported (0: off)")
    ap.add_argument("--init", help="start from these weights (fine-tuning); ignored when resuming")
    ap.add_argument("--continue-schedule", action="store_true",
                    help="with --init: take step, best score and time from the weights' metadata")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--export", type=Path, help="also write the best weights here, with provenance")
    ap.add_argument("--min-gain", type=float, default=0.0, metavar="DB",
                    help="a validation replaces the best (best.pth, --export) only when it beats it by more than "
                         "this: on a small split a gain of a thousandth of a dB is noise, not new weights")
    ap.add_argument("--select", choices=("best", "last"), default="best",
                    help="best: keep the best-scoring validation; last: every validation replaces the kept weights "
                         "(a last fine-tune on data with nothing of its kind left to hold out, whose effect is "
                         "measured elsewhere; its scores are then no selection)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--model-size", choices=list(MODEL_SIZES), default="paper",
                    help="'tiny' only for quick tests of the training loop itself")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with every check that needs no data: a bad combination fails before anything loads."""
    ap = build_parser()
    args = ap.parse_args(argv)
    data_dirs = [Path(f).resolve() for f in args.data]                 # "dir/", "./dir" and "dir" are one folder
    unknown = [f for f in args.transplant_from if Path(f).resolve() not in data_dirs]
    if unknown:
        ap.error(f"--transplant-from {unknown[0]} is not a --data folder (its held-out pairs must stay held out)")
    for name in ("synth_prob", "transplant_prob"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            ap.error(f"--{name.replace('_', '-')} is a chance, between 0 and 1: {getattr(args, name)}")
    if not 0.0 <= args.ema < 1.0:
        ap.error(f"--ema is a decay per step, 0 (off) or between 0 and 1: {args.ema}")
    if args.min_gain < 0:
        ap.error(f"--min-gain is a margin in dB, 0 or more: {args.min_gain}")
    if args.select == "last" and args.min_gain:
        ap.error("--min-gain is a margin over the best; --select last keeps every validation")
    if bool(args.transplant_from) != bool(args.transplant_prob):
        ap.error("--transplant-from and --transplant-prob go together")
    if args.stop_at is not None and not 0 < args.stop_at <= args.steps:
        ap.error(f"--stop-at is a step of the schedule, 1 to --steps ({args.steps}): {args.stop_at}")
    if args.accum < 1 or args.batch % args.accum:
        ap.error(f"--accum must divide --batch into equal chunks: --batch {args.batch}, --accum {args.accum}")
    return args


def main(argv: list[str] | None = None) -> int:
    """pcnet-train; SIGTSTP pauses it from the start (see run_clock.stop_self), not only once steps run."""
    previous = signal.signal(signal.SIGTSTP, stop_self)
    try:
        return _train(argv)
    finally:
        signal.signal(signal.SIGTSTP, previous)


def _train(argv: list[str] | None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:        # every input before any image is loaded or the run folder made: a typo is a usage error
        listed = [list_pairs(folder) for folder in args.data]
        listed_select = [list_pairs(folder) for folder in args.val_data]
        init = resolve_weights(args.init) if args.init else None
        streak_bank = StreakBank(args.streaks) if args.streaks else None
        resolve_device(args.device)                 # --device cuda on a host without one
    except (FileNotFoundError, *LOAD_ERRORS) as e:
        build_parser().error(str(e))

    data_dirs = [Path(f).resolve() for f in args.data]
    donor_dirs = {Path(f).resolve() for f in args.transplant_from}
    train_paths, val_paths, counts, donors = [], [], [], []
    for pairs, resolved in zip(listed, data_dirs):
        tr, va = split_pairs(pairs, args.val_every)
        if resolved in donor_dirs:
            donors += range(len(train_paths), len(train_paths) + len(tr))
        train_paths += tr
        val_paths += va
        counts.append(len(tr))
    try:
        weights = share_weights(counts, args.data_share) if args.data_share else None
    except ValueError as e:                  # a usage error: say so on the command line, not in a traceback
        build_parser().error(f"--data-share: {e}")
    if args.max_val:
        val_paths = val_paths[:args.max_val]
    if not (val_paths or listed_select):     # nothing would ever be validated, so nothing selected or exported
        held = f"--val-every {args.val_every} holds out no pair of {sum(counts)}"
        if args.export:
            build_parser().error(f"--export needs a validation set: {held}; lower --val-every or add --val-data")
        print(f"pcnet-train: {held}, so nothing is validated: only {args.out / 'last.pth'} is written")
    args.out.mkdir(parents=True, exist_ok=True)
    train_pairs = load_pairs(train_paths, args.max_side)
    layers = [rain_layer(*train_pairs[i]) for i in donors] or None
    sampler = PatchSampler(train_pairs, args.patch, args.synth_prob, args.synth_level, args.seed, args.aug,
                           streak_bank, weights, layers, args.transplant_prob)
    val = load_named_pairs(val_paths, args.max_side)
    if args.val_synth:
        val += synthesize_pairs(val, args.val_synth, seed=args.seed, streaks=streak_bank)
    select = [t for pairs in listed_select for t in load_named_pairs(pairs, args.max_side)]

    model = PCNet(**MODEL_SIZES[args.model_size])
    engine = DerainEngine(model, device=args.device, channels_last=True)   # moves the model, shares its weights
    device = engine.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True     # fixed patch size: pick the fastest kernels once
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    loss_fn = LOSSES[args.loss]().to(device)
    forward = torch.compile(model, dynamic=False) if args.compile else model
    averaged = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema))
                if args.ema else None)
    averaged_engine = DerainEngine(averaged.module, device=str(device), channels_last=True) if averaged else None

    last = args.out / "last.pth"
    state = fresh_state()
    if not last.exists() and args.bank and args.bank.exists():
        shutil.copyfile(args.bank, last)
        print(f"no {last}: continuing from the banked checkpoint {args.bank}")
    if last.exists():
        try:
            state = load_checkpoint(last, model, opt, sampler.rng, averaged, loss=args.loss)
        except ValueError as e:              # a usage error: say so on the command line, not in a traceback
            build_parser().error(str(e))
        print(f"resuming {last} at step {state['step']} ({args.select} selection score {state['best_psnr']:.2f})")
    elif args.init:
        try:
            meta = load_weights(model, init)
        except WeightsError as e:            # not a PCNet file, or not of --model-size
            build_parser().error(f"--init {args.init} (with --model-size {args.model_size}): {e}")
        if args.continue_schedule and "step" in meta:
            # a new machine without last.pth: carry on from shipped weights instead of from scratch
            best = meta.get("selection_score", meta.get("val_psnr_y", -1.0))
            state.update(step=int(meta["step"]), best_psnr=float(best),
                         elapsed_s=3600.0 * float(meta.get("train_hours", 0.0)),
                         pixel_samples=int(meta.get("pixel_samples", 0)))
            if "fine_tuned_from" in meta:
                state["fine_tuned_from"] = meta["fine_tuned_from"]
            print(f"continuing {args.init} at step {state['step']} (optimizer state starts fresh)")
        else:
            state["fine_tuned_from"] = start_record(init, meta)
            print(f"fine-tuning from {args.init}")

    def checkpoint() -> None:
        save_checkpoint(last, model, opt, sampler.rng, state, vars(args), averaged)

    def bank() -> None:
        if args.bank:
            bank_checkpoint(last, args.bank)

    times = StepTimes()

    def validate(engine: DerainEngine = engine) -> tuple[float, dict]:
        """The selection score and all scores: mean Y-PSNR of the held-out split, or with --val-data the mean
        of that set's and the split's, so weights tuned for one kind of rain do not wreck the other."""
        engine.model.eval()
        s = summarise(score_pairs(engine, select or val))
        score = s["psnr_out"]
        if select and val:
            s.update({f"split_{k}": v for k, v in summarise(score_pairs(engine, val)).items()})
            score = (s["psnr_out"] + s["split_psnr_out"]) / 2
        engine.model.train()
        return score, s

    if state["step"] == 0 and state["best_psnr"] < 0 and args.init and (val or select):
        # a restart or fine-tune never exports weights worse on this validation set than those it started from
        state["best_psnr"], s0 = validate()
        state["history"].append({"step": 0, "val_psnr": s0["psnr_out"], "score": state["best_psnr"],
                                 "split_psnr": s0.get("split_psnr_out"), "elapsed_s": 0.0, "pixel_samples": 0})
        split = f", held-out split {s0['split_psnr_out']:.2f}" if "split_psnr_out" in s0 else ""
        print(f"starting weights: val Y-PSNR {s0['psnr_out']:.2f} dB (input {s0['psnr_in']:.2f}){split}; "
              f"selection score {state['best_psnr']:.2f}")

    stop = {"now": False}
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    log = open_run_log(args.out, state["step"])
    bar = progress_bar(total=args.steps, initial=state["step"], disable=args.quiet, unit="step", dynamic_ncols=True)
    clock = RunClock(state["elapsed_s"]).install()
    model.train()
    try:
        while state["step"] < (args.stop_at or args.steps) and not stop["now"]:
            lr = lr_at(state["step"], args.steps, args.lr, warmup=args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            rainy, clean = (to_device_batch(a, device) for a in sampler.sample(args.batch))
            t1 = time.perf_counter()
            loss = train_step(forward, opt, loss_fn, rainy, clean, args.precision, args.accum)
            if averaged is not None:
                averaged.update_parameters(model)
            t2 = time.perf_counter()
            times.update(data=t1 - t0, compute=t2 - t1)
            state["step"] += 1
            state["pixel_samples"] += args.batch * args.patch * args.patch
            state["elapsed_s"] = clock.elapsed()
            bar.update(1)
            bar.set_postfix({"loss": f"{loss.item():.4f}", args.select: f"{state['best_psnr']:.2f}", **times.postfix()})
            rec = {"step": state["step"], "loss": round(loss.item(), 5), "lr": lr}
            if (val or select) and (state["step"] % args.eval_every == 0 or state["step"] == args.steps):
                psnr, s = validate()
                best_model, kind = model, "raw"
                if averaged is not None:
                    # the average is validated beside the raw weights at the same step; the better one competes
                    psnr_ema, s_ema = validate(averaged_engine)
                    rec.update(ema_score=round(psnr_ema, 3), ema_val_psnr=round(s_ema["psnr_out"], 3))
                    if psnr_ema > psnr:
                        rec.update(raw_score=round(psnr, 3), raw_val_psnr=round(s["psnr_out"], 3))
                        psnr, s, best_model, kind = psnr_ema, s_ema, averaged.module, "ema"
                rec.update(weights=kind, val_psnr=round(s["psnr_out"], 3), score=round(psnr, 3),
                           val_ssim=round(s["ssim_out"], 4), val_psnr_input=round(s["psnr_in"], 3))
                if "split_psnr_out" in s:
                    rec.update(split_psnr=round(s["split_psnr_out"], 3))
                state["history"].append({"step": state["step"], "val_psnr": s["psnr_out"], "score": psnr,
                                         "split_psnr": s.get("split_psnr_out"), "elapsed_s": state["elapsed_s"],
                                         "pixel_samples": state["pixel_samples"], "lr": lr, "weights": kind,
                                         "ema_score": rec.get("ema_score")})
                if args.select == "last" or psnr > state["best_psnr"] + args.min_gain:
                    state["best_psnr"] = psnr
                    meta = weights_meta(args, state, s, psnr, kind, len(select or val), len(train_paths),
                                        str(device))
                    save_weights(best_model, args.out / "best.pth", meta)
                    if args.export:
                        save_weights(best_model, args.export, meta)
                split = f"; held-out split {s['split_psnr_out']:.2f}" if "split_psnr_out" in s else ""
                avg = f" ({kind}; average {rec['ema_score']:.2f})" if averaged is not None else ""
                tqdm.write(f"step {state['step']}: val Y-PSNR {s['psnr_out']:.2f} dB (input {s['psnr_in']:.2f})"
                           f"{split}; "
                           f"selection score {psnr:.2f}{avg}, {args.select} {state['best_psnr']:.2f}")
                checkpoint()
                bank()
            if state["step"] % args.log_every == 0 or "val_psnr" in rec:
                append_record(log, rec)
            if state["step"] % args.ckpt_every == 0:
                checkpoint()
    except KeyboardInterrupt:
        pass
    finally:
        checkpoint()
        bank()
        bar.close()
        log.close()
        signal.signal(signal.SIGTERM, previous_handler)      # a caller in the same process gets its SIGTERM back
        clock.restore()
    print(f"stopped at step {state['step']}/{args.steps}; {args.select} val Y-PSNR {state['best_psnr']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
