"""What exported weights record about how they were made, so the whole lineage travels with the file."""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path


def start_record(path: Path, meta: dict) -> dict:
    """What a fine-tune started from: the file's name and content digest (names repeat: every light run ships as
    pcnet_light.pth), its score and length, and its own start, so the whole lineage travels with the weights."""
    record = {"weights": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:12],
              "step": meta.get("step"), "train_hours": meta.get("train_hours"), "val_psnr_y": meta.get("val_psnr_y"),
              "pixel_samples": meta.get("pixel_samples")}
    if meta.get("fine_tuned_from"):
        record["fine_tuned_from"] = meta["fine_tuned_from"]
    return record


def lineage(meta: dict | None) -> list[dict]:
    """A file's record and every start before it (its ``fine_tuned_from`` chain), newest first."""
    chain = []
    while meta:
        chain.append(meta)
        meta = meta.get("fine_tuned_from")
    return chain


def weights_meta(args: argparse.Namespace, state: dict, scores: dict, selection: float, kind: str,
                 val_images: int, train_images: int, device: str) -> dict:
    """The metadata saved with a validation's best weights: its scores, the data and recipe, and the schedule so
    far (``kind`` says whether the raw weights or their moving average scored)."""
    split = scores.get("split_psnr_out")
    return {"step": state["step"], "val_psnr_y": round(scores["psnr_out"], 3),
            "selection_score": round(selection, 3),
            "split_psnr_y": round(split, 3) if split is not None else None,
            "val_ssim_y": round(scores["ssim_out"], 4),
            "val_input_psnr_y": round(scores["psnr_in"], 3), "val_images": val_images,
            "val_data": [str(d) for d in args.val_data] or None,
            "streaks": str(args.streaks) if args.streaks else None,
            "train_images": train_images, "data": [str(d) for d in args.data],
            "data_share": args.data_share,
            "synth_prob": args.synth_prob, "synth_level": args.synth_level,
            "transplant_from": args.transplant_from or None,
            "transplant_prob": args.transplant_prob,
            "val_synth": args.val_synth, "fine_tuned_from": state.get("fine_tuned_from"),
            "train_hours": round(state["elapsed_s"] / 3600, 2), "device": device,
            "pixel_samples": state["pixel_samples"], "batch": args.batch, "accum": args.accum,
            "patch": args.patch,
            "aug": args.aug, "precision": args.precision, "schedule_steps": args.steps,
            "lr": args.lr, "loss": args.loss, "weights": kind, "ema_decay": args.ema or None,
            "select": args.select}
