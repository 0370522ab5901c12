"""Write weights/README.md: provenance of each shipped weights file and its scores on held-out data.

    .venv/bin/python scripts/weights_card.py        (takes a few minutes on a CPU)
"""
from pathlib import Path

import cv2
import torch

from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.weights import build_model, BUNDLED
from pcnet_ros.tools.visual import contact_sheet, side_by_side
from pcnet_ros.training.evaluate import score_pairs, summarise
from pcnet_ros.training.pairs import (list_pairs, load_named_pairs, RAINTRAINH_FOLD, RAINTRAINH_HOLD_EVERY,
                                      split_pairs, synthesize_pairs)
from pcnet_ros.training.provenance import lineage
from pcnet_ros.training.run_log import LOG_NAME, read_run_log
from pcnet_ros.training.streaks import StreakBank

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
# (folder, split, synthesized rain): "streaks" = the Garg-layer compositor, "heavy" = the procedural generator
# "held": the RainTrainH pairs the heavy weights' last fine-tune leaves out (scripts/raintrainh_fold.py)
SETS = [("rain100l-train", "val", None), ("rain100h-train-sample", "all", None),
        ("rain100h-train-sample", "held", None),
        ("rain100l-train", "val", "streaks"), ("rain100l-train", "val", "heavy"), ("pcnet-train", "val", None),
        ("pcnet-train", "all", None)]


def scores(engine, folder, split, synth, bank):
    paths = list_pairs(DATA / folder)
    if split != "all":
        paths = split_pairs(paths, RAINTRAINH_HOLD_EVERY if split == "held" else 10)[1]
    triples = load_named_pairs(paths, max_side=1024)
    if synth:
        triples = synthesize_pairs(triples, "heavy", seed=0, streaks=bank if synth == "streaks" else None)
    return len(triples), summarise(score_pairs(engine, triples, progress=True))


def curve(variant: str, meta: dict) -> tuple[list[tuple[int, float, float | None]], dict]:
    """(step, validation dB, held-out split dB or None) of every validation, and the run's state.

    One source: the history inside a run's last.pth, else inside its banked checkpoint; of the schedule
    that made the shipped file (the one whose history holds its step and score: its last fine-tune,
    ``*_ft``, the main schedule, or any ``runs/{variant}_*`` such as a GPU run or a second fine-tune stage, or
    any banked ``checkpoints/{variant}_*_last.pth``), else the main schedule's.
    """
    found = []
    for run in (f"{variant}_ft", variant):
        for ckpt in (ROOT / "runs" / run / "last.pth", ROOT / "checkpoints" / f"{run}_last.pth"):
            if ckpt.is_file():
                found.append(ckpt)
                break
    found += [p for p in sorted((ROOT / "runs").glob(f"{variant}_*/last.pth")) if p not in found]
    found += [p for p in sorted((ROOT / "checkpoints").glob(f"{variant}_*_last.pth")) if p not in found]
    # a run whose checkpoint did not come back (a time-boxed GPU run) still has its log
    found += [p for p in sorted((ROOT / "runs").glob(f"{variant}_*/{LOG_NAME}"))
              if not (p.parent / "last.pth").is_file()]
    runs = []
    for ckpt in found:
        state = (_logged_state(ckpt) if ckpt.suffix == ".jsonl"
                 else torch.load(ckpt, map_location="cpu", weights_only=False)["state"])
        pts = [(h["step"], h["val_psnr"], h.get("split_psnr")) for h in state.get("history", [])]
        if any(st == meta.get("step") and abs(p - meta.get("val_psnr_y", -1)) < 0.01 for st, p, _ in pts):
            return pts, state
        runs.append((pts, state))
    return runs[0] if runs else ([], {})


def _logged_state(log: Path) -> dict:
    """A run's validations from its log.jsonl, in the shape of a checkpoint's state."""
    rows = read_run_log(log.parent)
    return {"history": [r for r in rows if "val_psnr" in r], "step": rows[-1]["step"] if rows else None}


def _name(folder: str) -> str:
    """A data folder as the card names it: the RainTrainH fold's halves by what they hold."""
    p = Path(folder)
    if p.parent.name == RAINTRAINH_FOLD:
        return "rain100h-train-sample [" + {"train": "fit", "val": "held"}.get(p.name, p.name) + "]"
    return p.name


def _fits_raintrainh(meta: dict) -> bool:
    """Whether these weights were fine-tuned on the fitted part of the RainTrainH sample."""
    return any(_name(d) == "rain100h-train-sample [fit]" for d in meta.get("data", []))


def _data_text(meta: dict) -> str:
    names = [_name(d) for d in meta.get("data", [])]
    shares = meta.get("data_share")
    if shares:
        return ", ".join(f"{n} ({sh / sum(shares):.0%} of patches)" for n, sh in zip(names, shares))
    return ", ".join(names)


def _transplant_text(meta: dict) -> str:
    """Which pairs lent their real rain to other scenes, and to what share of the patches ('' if none)."""
    if not meta.get("transplant_prob"):
        return ""
    share = (1 - meta.get("synth_prob", 0)) * meta["transplant_prob"]     # only patches not synthesized
    donors = ", ".join(_name(d) for d in meta.get("transplant_from") or [])
    return f"; real rain of {donors} added onto clean patches of all folders: {share:.0%} of patches"


def _val_names(meta: dict) -> str:
    """The --val-data folders the weights were selected with, by name ('' if none)."""
    return ", ".join(_name(d) for d in meta.get("val_data") or [])


def _curve_text(pts: list[tuple[int, float, float | None]], meta: dict) -> str:
    with_split = any(sp is not None for _, _, sp in pts)
    names = _val_names(meta)
    head = f"(step: {names or 'validation set'} / held-out split, dB)" if with_split else "(step: held-out split, dB)"
    return head + " " + ", ".join(f"{st}: {p:.2f}" + (f" / {sp:.2f}" if sp is not None else "")
                                  for st, p, sp in pts)


def _gpix(meta: dict) -> str:
    px = meta.get("pixel_samples") or meta.get("step", 0) * meta.get("batch", 8) * meta.get("patch", 96) ** 2
    return f"{px / 1e9:.2f} G"


def _lineage_text(start: dict) -> str:
    """A start and its own starts, newest first; the digest tells apart files that share a name."""
    parts = []
    for run in lineage(start):
        digest = f", sha256 {run['sha256']}" if run.get("sha256") else ""
        gpix = f", {_gpix(run)} pixel-samples" if run.get("pixel_samples") else ""
        parts.append(f"`{run['weights']}` at its step {run['step']} ({run['train_hours']} h{gpix}{digest})")
    return ", itself fine-tuned from ".join(parts)


def _loss_text(meta: dict) -> str:
    """Weights fine-tuned on mean squared error (pcnet-train --loss mse) say so; the paper's loss goes unsaid."""
    return "; loss: mean squared error" if meta.get("loss") == "mse" else ""


def _average_text(meta: dict) -> str:
    """Shipped weights may be the run's moving average (pcnet-train --ema), not its last step's weights."""
    return f"; the moving average of the weights, decay {meta['ema_decay']}" if meta.get("weights") == "ema" else ""


def _selected_on(meta: dict) -> str:
    names = _val_names(meta)
    if names:
        if "split_psnr_y" in meta and "selection_score" in meta:
            return (f"the mean of {names} ({meta['val_psnr_y']:.2f}) and the held-out split "
                    f"({meta['split_psnr_y']:.2f}): {meta['selection_score']:.2f} dB")
        return f"{names}: {meta['val_psnr_y']:.3f} dB"
    return ("the held-out split" + (f" + synthesized {meta['val_synth']}" if meta.get("val_synth") else "")
            + f": {meta['val_psnr_y']:.3f} dB")


def compare_picture(engines: dict[str, DerainEngine]) -> str:
    """docs/weights_compare.jpg: held-out images, real and synthesized, through each shipped file."""
    picks = [load_named_pairs(split_pairs(list_pairs(DATA / "rain100l-train"), 10)[1][:1])[0],
             load_named_pairs(split_pairs(list_pairs(DATA / "pcnet-train"), 10)[1][:1], max_side=640)[0]]
    picks.append(load_named_pairs(list_pairs(DATA / "rain100h-train-sample")[2:3])[0])
    rows = []
    for name, rainy, clean in picks:
        outs = [engines[v].derain(rainy).clean for v in engines]
        tiles = [cv2.cvtColor(a, cv2.COLOR_RGB2BGR) for a in [rainy, *outs, clean]]
        rows.append(side_by_side(tiles, [f"rainy: {name}", *[f"{v} weights" for v in engines], "ground truth"]))
    rows = [cv2.resize(r, (1200, round(r.shape[0] * 1200 / r.shape[1])), interpolation=cv2.INTER_AREA) for r in rows]
    out = ROOT / "docs" / "weights_compare.jpg"
    cv2.imwrite(str(out), contact_sheet(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "../docs/weights_compare.jpg"


def main() -> None:
    torch.set_num_threads(2)
    lines = ["# Shipped weights", "",
             "Made by this project's `pcnet-train` on `../shared/data` (not the authors' checkpoints). "
             "Weights only, in the authors' `{\"state_dict\": ...}` layout (`model.` keys), fp32, 2.5 MB each.",
             "Scores: PSNR (dB) / SSIM on the Y channel (BT.601), images over 1024 px downsized first. "
             "`val` = every 10th pair in natural name order, never trained on; `rain100h-train-sample` (12 "
             "RainTrainH pairs): weights marked so were fine-tuned last on 8 of them and selected on the other 4 "
             "(`[held]`, every 3rd pair, `scripts/raintrainh_fold.py`), the others never saw any. "
             "Synthesized rain is "
             "`pcnet_ros.training.pairs.synthesize_pairs(..., seed=0)` on the held-out clean images: "
             "`streak` = Garg layers composited (`pcnet-train --streaks`), `procedural` = `pcnet_ros.training.rain`. "
             "Regenerate this file with `scripts/weights_card.py`.", ""]
    bank = StreakBank(DATA / "rain-streaks-garg06")
    built = {v: build_model(v) for v in BUNDLED}                     # (model, meta) per shipped file
    engines = {v: DerainEngine(model, device="cpu") for v, (model, _) in built.items()}
    for variant, fname in BUNDLED.items():
        meta, engine = built[variant][1], engines[variant]
        lines += [f"## `{fname}` ({variant})", "",
                  f"- data: {_data_text(meta)}; synthesized rain: "
                  f"{meta.get('synth_prob', 0):.0%} of patches ({meta.get('synth_level')}){_transplant_text(meta)}",
                  f"- steps: {meta.get('step')} (batch {meta.get('batch', 8)}, {meta.get('patch', 96)}x"
                  f"{meta.get('patch', 96)} patches, {meta.get('aug', 'flips')}, {meta.get('precision', 'fp32')}"
                  f"{_loss_text(meta)}{_average_text(meta)}), "
                  f"{_gpix(meta)} pixel-samples, training time {meta.get('train_hours')} h on {meta.get('device')}; "
                  f"selected on {_selected_on(meta)}", "",
                  "| set | pairs | rainy input | PCNet |", "|---|---|---|---|"]
        fits = _fits_raintrainh(meta)
        for folder, split, synth in SETS:
            if split == "held" and not fits:
                continue
            n, s = scores(engine, folder, split, synth, bank)
            seen = split == "all" and (any(Path(d).name == folder for d in meta.get("data", []))
                                       or fits and folder == "rain100h-train-sample")
            kind = {"streaks": "streak", "heavy": "procedural"}.get(synth)
            label = f"{folder} [{split}]" + (f", its clean images with synthesized heavy {kind} rain" if synth else "")
            note = " (train pairs included)" if seen else ""
            lines.append(f"| {label}{note} | {n} | {s['psnr_in']:.2f} / {s['ssim_in']:.4f} | "
                         f"**{s['psnr_out']:.2f}** / {s['ssim_out']:.4f} |")
        base = meta.get("fine_tuned_from")
        if base:
            lines += ["", f"Fine-tuned from {_lineage_text(base)}; steps, pixel-samples and hours above count the "
                      "fine-tuning only."]
        pts, state = curve(variant, meta)
        if pts and meta.get("step") in {p[0] for p in pts}:
            averaged = any(h.get("ema_score") is not None for h in state.get("history", []))
            lines += ["", "Validation during the run that made this file " + _curve_text(pts, meta)
                      + ("; where the run kept a moving average of the weights (`--ema`), the better of the two "
                         "at each step" if averaged else "")]
        elif pts:
            lines += ["", f"A newer run continues in `checkpoints/{variant}_last.pth`, at step {state.get('step')}; "
                      "the shipped file changes only when it beats its start. Its validation so far " +
                      _curve_text(pts, meta)]
        lines.append("")
    lines += ["## Side by side", "", "Held-out images: real light rain (rain100l-train), mixed synthetic rain "
              "(pcnet-train), and RainTrainH's heavy rain (a pair every fine-tune held out).", "",
              f"![rainy | light | heavy | ground truth]({compare_picture(engines)})", ""]
    (ROOT / "weights" / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
