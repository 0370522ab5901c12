"""pcnet-eval: Y-channel PSNR/SSIM of a model over paired folders, next to the rainy-input baseline."""
from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path
import sys
from typing import Iterable

import numpy as np

from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.progress import progress_bar
from pcnet_ros.training.metrics import y_psnr_ssim
from pcnet_ros.training.pairs import list_clean, list_pairs, load_named_pairs, split_pairs, synthesize_pairs


@dataclass
class PairScore:
    name: str
    psnr_in: float
    ssim_in: float
    psnr_out: float
    ssim_out: float


def score_pairs(engine: DerainEngine, pairs: Iterable[tuple[str, np.ndarray, np.ndarray]],
                progress: bool = False) -> list[PairScore]:
    """Score (name, rainy, clean) uint8 RGB triples."""
    pairs = list(pairs)
    out = []
    for name, rainy, clean in progress_bar(pairs, desc="eval", disable=not progress, unit="img"):
        derained = engine.derain(rainy).clean
        out.append(PairScore(name, *y_psnr_ssim(rainy, clean), *y_psnr_ssim(derained, clean)))
    return out


def summarise(scores: list[PairScore]) -> dict[str, float]:
    if not scores:
        raise ValueError("no pairs were scored")
    keys = ("psnr_in", "ssim_in", "psnr_out", "ssim_out")
    return {k: float(np.mean([getattr(s, k) for s in scores])) for k in keys}


@dataclass
class PairedGain:
    """Y-PSNR gain of one model over another on the same images.  On 20 images a few hundredths of a dB in the
    mean can be noise; the per-image differences say whether it is (their standard error, how many rose)."""
    mean: float
    stderr: float
    rose: int
    n: int

    def __str__(self) -> str:
        return (f"{self.mean:+.3f} dB Y-PSNR (paired standard error {self.stderr:.3f}), "
                f"{self.rose} of {self.n} images higher")


def paired_gain(now: dict[tuple[str, str], float], before: dict[tuple[str, str], float]) -> PairedGain:
    """``now`` and ``before``: Y-PSNR by (set, image), as pcnet-eval's CSV holds them; the images must match."""
    check_same_images(now.keys(), before.keys())
    d = np.array([now[k] - before[k] for k in sorted(now)])
    stderr = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return PairedGain(float(d.mean()), stderr, int((d > 0).sum()), len(d))


def check_same_images(now: Iterable[tuple[str, str]], before: Iterable[tuple[str, str]]) -> None:
    """ValueError unless both name the same (set, image) keys: a mean gain over a mismatch means nothing."""
    now, before = set(now), set(before)
    if now != before:
        missing = sorted(now ^ before)
        raise ValueError(f"the two runs scored different images ({len(missing)} in one only, e.g. "
                         f"{missing[0][0]} {missing[0][1]}): score the same folders, split and seed")


#: pcnet-eval's CSV columns; ``csv_row`` writes them, ``scores_by_image`` reads the model's back.
CSV_COLUMNS = ("set", "image", "psnr_input", "ssim_input", "psnr_pcnet", "ssim_pcnet")


def csv_row(label: str, sc: PairScore) -> dict[str, str]:
    """One image's scores as ``--csv`` writes them, rounded as ``--against`` reads them back: one format for both."""
    return dict(zip(CSV_COLUMNS, (label, sc.name, f"{sc.psnr_in:.4f}", f"{sc.ssim_in:.5f}", f"{sc.psnr_out:.4f}",
                                  f"{sc.ssim_out:.5f}")))


def scores_by_image(rows: Iterable[dict[str, str]]) -> dict[tuple[str, str], float]:
    """The model's Y-PSNR by (set, image) from CSV rows, as written: the same weights then differ by exactly 0."""
    return {(r["set"], r["image"]): float(r["psnr_pcnet"]) for r in rows}


def read_scores(path: Path) -> dict[tuple[str, str], float]:
    """The model's Y-PSNR by (set, image) from a CSV pcnet-eval wrote."""
    with open(path, newline="") as f:
        return scores_by_image(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    from pcnet_ros.tools.common import add_engine_args, engine_from_args, fail, ToolError

    ap = argparse.ArgumentParser(prog="pcnet-eval", description=__doc__)
    ap.add_argument("data", nargs="+", help="paired folders holding rain/ and clean/ "
                                            "(with --synth: clean/ or plain image folders)")
    ap.add_argument("--split", choices=["all", "val", "train"], default="all",
                    help="score only the held-out (every Nth) pairs, or the rest")
    ap.add_argument("--every", type=int, default=10, help="hold-out period used with --split")
    ap.add_argument("--max-side", type=int, default=0, help="downsize larger images first (0: never)")
    ap.add_argument("--synth", choices=["light", "heavy"],
                    help="score rain of this level synthesized onto the clean images instead of the folder's rain/")
    ap.add_argument("--seed", type=int, default=0, help="rain seed for --synth")
    ap.add_argument("--csv", type=Path, help="write per-image scores here")
    ap.add_argument("--against", type=Path, metavar="CSV",
                    help="another model's --csv on the same images: also print the per-image gain over it, "
                         "with its paired standard error")
    add_engine_args(ap)
    args = ap.parse_args(argv)
    try:
        before = read_scores(args.against) if args.against else None
    except OSError as exc:
        return fail("pcnet-eval", f"--against: {exc}")
    except (KeyError, ValueError) as exc:
        return fail("pcnet-eval", f"--against {args.against}: not a CSV pcnet-eval wrote (no {exc})")
    try:
        engine = engine_from_args(args)
    except ToolError as exc:
        return fail("pcnet-eval", str(exc))
    sets = []
    for folder in args.data:
        try:
            paths = list_clean(folder) if args.synth else list_pairs(folder)
        except FileNotFoundError as exc:
            return fail("pcnet-eval", str(exc))
        if args.split != "all":
            train, val = split_pairs(paths, args.every)
            if not (chosen := val if args.split == "val" else train):
                return fail("pcnet-eval", f"{folder}: --split {args.split} with --every {args.every} leaves none of "
                                          f"its {len(paths)} pairs (the split holds out every Nth pair, N >= 2)")
            paths = chosen
        triples = load_named_pairs(paths, args.max_side)
        if args.synth:
            triples = synthesize_pairs(triples, args.synth, args.seed)
        sets.append((f"{Path(folder).name}[{args.split}]" + (f"+synth-{args.synth}" if args.synth else ""), triples))
    if before is not None:      # refuse a mismatch now, not after scoring every image
        try:
            check_same_images({(label, name) for label, triples in sets for name, _, _ in triples}, before)
        except ValueError as exc:
            return fail("pcnet-eval", f"--against {args.against}: {exc}")
    rows = []
    print(f"{'set':<28}{'n':>4}  {'input PSNR/SSIM':>17}  {'PCNet PSNR/SSIM':>17}")
    for label, triples in sets:
        scores = score_pairs(engine, triples, progress=True)
        s = summarise(scores)
        print(f"{label:<28}{len(scores):>4}  {s['psnr_in']:>8.2f}/{s['ssim_in']:.4f}  "
              f"{s['psnr_out']:>8.2f}/{s['ssim_out']:.4f}")
        rows += [(label, sc) for sc in scores]
    table = [csv_row(label, sc) for label, sc in rows]
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_COLUMNS)
            w.writeheader()
            w.writerows(table)
        print(f"wrote {args.csv}")
    if before is not None:
        try:
            gain = paired_gain(scores_by_image(table), before)
        except ValueError as exc:
            return fail("pcnet-eval", f"--against {args.against}: {exc}")
        print(f"against {args.against}: {gain}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
