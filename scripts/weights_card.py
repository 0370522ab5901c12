"""Write weights/README.md: provenance of each shipped weights file and its scores on held-out data.

    .venv/bin/python scripts/weights_card.py        (takes a few minutes on a CPU)
"""
import json
from pathlib import Path

import cv2
import torch

from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.weights import build_model, BUNDLED
from pcnet_ros.tools.visual import contact_sheet, side_by_side
from pcnet_ros.training.evaluate import score_pairs, summarise
from pcnet_ros.training.pairs import list_pairs, load_named_pairs, split_pairs, synthesize_pairs

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = [("rain100l-train", "val", None), ("rain100l-train", "val", "heavy"), ("pcnet-train", "val", None),
        ("pcnet-train", "all", None)]


def scores(engine, folder, split, synth):
    paths = list_pairs(DATA / folder)
    if split != "all":
        paths = split_pairs(paths, 10)[1]
    triples = load_named_pairs(paths, max_side=1024)
    if synth:
        triples = synthesize_pairs(triples, synth, seed=0)
    return len(triples), summarise(score_pairs(engine, triples, progress=True))


def curve(run: Path) -> list[tuple[int, float]]:
    log = run / "log.jsonl"
    if not log.is_file():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [(r["step"], r["val_psnr"]) for r in rows if "val_psnr" in r]


def compare_picture(engines: dict[str, DerainEngine]) -> str:
    """docs/weights_compare.jpg: held-out images, real and synthesized, through each shipped file."""
    picks = [load_named_pairs(split_pairs(list_pairs(DATA / "rain100l-train"), 10)[1][:1])[0],
             load_named_pairs(split_pairs(list_pairs(DATA / "pcnet-train"), 10)[1][:1], max_side=640)[0]]
    picks.append(synthesize_pairs(picks[:1], "heavy", seed=0)[0])
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
             "`val` = every 10th pair in natural name order, never trained on; synthesized rain is "
             "`pcnet_ros.training.pairs.synthesize_pairs(..., seed=0)`, the same as `pcnet-eval --synth heavy`. "
             "Regenerate this file with `scripts/weights_card.py`.", ""]
    built = {v: build_model(v) for v in BUNDLED}                     # (model, meta) per shipped file
    engines = {v: DerainEngine(model, device="cpu") for v, (model, _) in built.items()}
    for variant, fname in BUNDLED.items():
        meta, engine = built[variant][1], engines[variant]
        lines += [f"## `{fname}` ({variant})", "",
                  f"- data: {', '.join(Path(d).name for d in meta.get('data', []))}; synthesized rain: "
                  f"{meta.get('synth_prob', 0):.0%} of patches ({meta.get('synth_level')})",
                  f"- steps: {meta.get('step')} (batch 8, 96x96 patches), training time {meta.get('train_hours')} h "
                  f"on {meta.get('device')}, best validation during training {meta.get('val_psnr_y')} dB", "",
                  "| set | pairs | rainy input | PCNet |", "|---|---|---|---|"]
        for folder, split, synth in SETS:
            n, s = scores(engine, folder, split, synth)
            seen = split == "all" and any(Path(d).name == folder for d in meta.get("data", []))
            label = f"{folder} [{split}]" + (f", its clean images with synthesized {synth} rain" if synth else "")
            note = " (train pairs included)" if seen else ""
            lines.append(f"| {label}{note} | {n} | {s['psnr_in']:.2f} / {s['ssim_in']:.4f} | "
                         f"**{s['psnr_out']:.2f}** / {s['ssim_out']:.4f} |")
        base = meta.get("fine_tuned_from")
        if base:
            lines += ["", f"Fine-tuned from `{base['weights']}` at its step {base['step']} ({base['train_hours']} h); "
                      "steps and hours above count the fine-tuning only."]
        pts = curve(ROOT / "runs" / variant)
        if pts:
            lines += ["", "Validation Y-PSNR during training (step: dB): " +
                      ", ".join(f"{st}: {p:.2f}" for st, p in pts)]
        lines.append("")
    lines += ["## Side by side", "", "Held-out images: real light rain (rain100l-train), real heavy rain "
              "(pcnet-train), and heavy rain synthesized onto the first one.", "",
              f"![rainy | light | heavy | ground truth]({compare_picture(engines)})", ""]
    (ROOT / "weights" / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
