"""pcnet-derain: derain an image file, a folder or a glob; write clean, residue and comparison images."""
from __future__ import annotations

import argparse
import glob
import logging
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from .engine import BACKENDS, RESIDUE_MODES, DerainEngine, InputError, residue_to_image
from .pairs import IMAGE_EXTS
from .visual import amplify, side_by_side
from .weights import WeightsError, build_model


def collect_inputs(spec: str) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob pattern -> image paths."""
    p = Path(spec)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTS)
    return sorted(Path(q) for q in glob.glob(spec) if Path(q).suffix.lower() in IMAGE_EXTS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-derain", description=__doc__)
    ap.add_argument("input", help="image file, folder, or quoted glob such as 'frames/*.jpg'")
    ap.add_argument("output", help="output folder (or an image path when the input is one file)")
    ap.add_argument("--weights", default="light", help="bundled name (light, heavy) or a .pth path")
    ap.add_argument("--random-weights", action="store_true",
                    help="ignore --weights and run an untrained model (plumbing tests only; output is noise)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    ap.add_argument("--backend", choices=BACKENDS, default="eager")
    ap.add_argument("--residue", action="store_true", help="also write NAME_residue.png")
    ap.add_argument("--residue-mode", choices=RESIDUE_MODES, default="positive")
    ap.add_argument("--compare", action="store_true", help="also write NAME_compare.jpg: rainy | clean | residue")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    inputs = collect_inputs(args.input)
    if not inputs:
        print(f"pcnet-derain: no images found at '{args.input}'", file=sys.stderr)
        return 2
    try:
        model, meta = build_model(None if args.random_weights else args.weights, allow_random=args.random_weights)
    except WeightsError as exc:
        print(f"pcnet-derain: {exc}", file=sys.stderr)
        return 2
    if meta.get("random"):
        logging.warning("RUNNING WITH RANDOM WEIGHTS: output is meaningless")
    engine = DerainEngine(model, device=args.device, fp16=args.fp16, backend=args.backend)

    out = Path(args.output)
    single_file = len(inputs) == 1 and Path(args.input).is_file() and out.suffix.lower() in IMAGE_EXTS
    failures = 0
    for path in tqdm(inputs, desc="derain", unit="img", disable=len(inputs) == 1):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        try:
            if img is None:
                raise InputError("unreadable image")
            res = engine.derain(img, bgr=img.ndim == 3)
        except InputError as exc:
            tqdm.write(f"skipping {path}: {exc}")
            failures += 1
            continue
        clean_path = out if single_file else out / path.name
        clean_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(clean_path), res.clean)
        residue = residue_to_image(res.residue, img.dtype, args.residue_mode)
        if args.residue:
            cv2.imwrite(str(clean_path.with_name(clean_path.stem + "_residue.png")), residue)
        if args.compare:
            strip = side_by_side([img, res.clean, amplify(residue)], ["rainy", "PCNet clean", "rain residue x4"])
            cv2.imwrite(str(clean_path.with_name(clean_path.stem + "_compare.jpg")), strip)
    print(f"derained {len(inputs) - failures} image(s) into {out}" + (f", skipped {failures}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
