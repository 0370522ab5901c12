"""Split the 12-pair RainTrainH sample for the heavy weights' last fine-tune: 8 to fit, 4 held out.

The sample is the only Rain100H-style rain here.  Fine-tuning on 8 pairs and selecting on the other 4
keeps an honest RainTrainH measurement for the shipped weights (issue 9: train on these pairs only in a
last short fine-tune whose effect is reported separately).  Every 3rd pair in natural name order is held
out (``split_pairs(..., 3)``).  Writes symlinks, so the data is not copied:

    .venv/bin/python scripts/raintrainh_fold.py [--src ../shared/data/rain100h-train-sample] [--out runs/h100fold]
"""
import argparse
from pathlib import Path

from pcnet_ros.training.pairs import list_pairs, RAINTRAINH_FOLD, RAINTRAINH_HOLD_EVERY, split_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--src", type=Path, default=root.parent / "shared" / "data" / "rain100h-train-sample")
    ap.add_argument("--out", type=Path, default=root / "runs" / RAINTRAINH_FOLD)
    args = ap.parse_args()
    fit, held = split_pairs(list_pairs(args.src), RAINTRAINH_HOLD_EVERY)
    for name, pairs in (("train", fit), ("val", held)):
        for sub in ("rain", "clean"):
            (args.out / name / sub).mkdir(parents=True, exist_ok=True)
        for rain, clean in pairs:
            for path, sub in ((rain, "rain"), (clean, "clean")):
                link = args.out / name / sub / path.name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(path.resolve())
        print(f"{args.out / name}: {len(pairs)} pairs ({', '.join(r.name for r, _ in pairs)})")


if __name__ == "__main__":
    main()
