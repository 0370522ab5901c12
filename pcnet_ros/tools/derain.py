"""pcnet-derain: derain an image file, a folder or a glob; write clean, residue and comparison images.

Exit status: 0 all derained, 1 some inputs skipped (unreadable, or too large for
the memory budget), 2 usage error
(no inputs, bad weights or device, an output that cannot be written or would
overwrite an input).
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
from pathlib import Path
import sys

import numpy as np
from tqdm import tqdm

from pcnet_ros.core.engine import InputError, RESIDUE_MODES, residue_to_image
from pcnet_ros.imageio import ImageIOError, is_image, natural_key, read_any, shape_of, write_image
from pcnet_ros.progress import progress_bar
from pcnet_ros.tools.common import (add_engine_args, budget_from_args, engine_from_args, fail, inference_failed, OK,
                                    PARTIAL, ToolError)
from pcnet_ros.tools.visual import amplify, side_by_side


def collect_inputs(spec: str) -> list[Path]:
    """A file, a folder (its images, in natural order) or a glob pattern -> image paths."""
    p = Path(spec)
    if p.is_file():
        return [p]
    found = p.iterdir() if p.is_dir() else (Path(q) for q in glob.glob(spec))
    return sorted((q for q in found if q.is_file() and is_image(q)), key=natural_key)


#: What ``--residue`` and ``--compare`` add to an output's stem.
RESIDUE_SUFFIX, COMPARE_SUFFIX = "_residue.png", "_compare.jpg"


def files_written(dst: Path, residue: bool, compare: bool) -> list[Path]:
    """Every file one input writes: its clean image at ``dst``, then its residue and comparison if asked for."""
    return [dst] + [dst.with_name(dst.stem + suffix) for suffix, on in ((RESIDUE_SUFFIX, residue),
                                                                        (COMPARE_SUFFIX, compare)) if on]


def plan_outputs(inputs: list[Path], spec: str, output: Path, residue: bool = True,
                 compare: bool = True) -> dict[Path, Path]:
    """Input -> clean output path. Inputs from several folders (a glob) keep their folders below the one they share,
    so that cam_front/0001.png and cam_rear/0001.png both survive. Refuses, before any work, an output that is a
    file where a folder is needed, and two inputs, or an input and an output, that would be the same file
    (a.png and a.jpg write one a_residue.png)."""
    single = len(inputs) == 1 and Path(spec).is_file() and is_image(output) and not output.is_dir()
    if not single and output.exists() and not output.is_dir():
        raise ToolError(f"output {output} is an existing file; give a folder for {len(inputs)} input image(s)")
    if single:
        plan = {inputs[0]: output}
    else:
        root = Path(os.path.commonpath([src.absolute().parent for src in inputs]))
        plan = {src: output / src.absolute().relative_to(root) for src in inputs}
    targets: dict[Path, Path] = {}
    for src, dst in plan.items():
        for path in files_written(dst, residue, compare):
            other = targets.setdefault(path.resolve(), src)
            if other != src:
                raise ToolError(f"{other} and {src} would both write {path}; derain them into separate folders")
    clash = [src for src in inputs if src.resolve() in targets]
    if clash:
        raise ToolError(f"writing to {output} would overwrite input {clash[0]}; choose another output folder")
    return plan


def engine_input_check(img: np.ndarray) -> np.ndarray:
    """What the engine refuses, found before a batch is formed (so one bad file does not sink the batch)."""
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in
                                                                            (1, 3, 4)):
        raise InputError(f"unsupported image {img.shape} {img.dtype}")
    return img


def write_outputs(img: np.ndarray, res, dst: Path, args: argparse.Namespace) -> None:
    residue = residue_to_image(res.residue, img.dtype, args.residue_mode)
    images = [res.clean] + ([residue] if args.residue else []) + (
        [side_by_side([img, res.clean, amplify(residue)], ["rainy", "PCNet clean", "rain residue x4"])]
        if args.compare else [])
    for path, image in zip(files_written(dst, args.residue, args.compare), images, strict=True):
        write_image(path, image)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-derain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="image file, folder, or quoted glob such as 'frames/*.jpg'")
    ap.add_argument("output", type=Path, help="output folder (or an image path when the input is one file); a glob "
                    "over several folders keeps them as subfolders")
    ap.add_argument("--residue", action="store_true", help=f"also write NAME{RESIDUE_SUFFIX}")
    ap.add_argument("--residue-mode", choices=RESIDUE_MODES, default="positive")
    ap.add_argument("--compare", action="store_true", help=f"also write NAME{COMPARE_SUFFIX}: rainy | clean | residue")
    add_engine_args(ap, random_weights=True, max_side=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    inputs = collect_inputs(args.input)
    if not inputs:
        return fail("pcnet-derain", f"no images found at '{args.input}'")
    try:
        plan = plan_outputs(inputs, args.input, args.output, args.residue, args.compare)
        engine = engine_from_args(args)
    except ToolError as exc:
        return fail("pcnet-derain", str(exc))
    budget = budget_from_args(args, engine)
    skipped = written = 0
    batch: list[tuple[Path, Path, np.ndarray]] = []

    def flush() -> None:
        nonlocal written
        if not batch:
            return
        try:
            results = engine.derain_batch([img for _, _, img in batch], bgr=batch[0][2].ndim == 3,
                                          max_side=args.max_side)
        except Exception as exc:   # out of memory, a device error: one line that names the images, no traceback
            more = f" and {len(batch) - 1} more" if len(batch) > 1 else ""
            raise ToolError(inference_failed(f"{batch[0][0]}{more}", exc, f"{written} image(s) written before it")) \
                from exc
        for (src, dst, img), res in zip(batch, results):
            write_outputs(img, res, dst, args)
            written += 1
        batch.clear()

    try:
        with progress_bar(total=len(plan), desc="derain", unit="img", disable=len(plan) == 1) as bar:
            for src, dst in plan.items():
                try:
                    img = engine_input_check(read_any(src, check=budget.check))   # JPEG/PNG: before decoding
                except (ImageIOError, InputError) as exc:
                    tqdm.write(f"skipping {src}: {exc}")
                    skipped += 1
                    bar.update(1)
                    continue
                if batch and (img.shape != batch[0][2].shape or img.dtype != batch[0][2].dtype
                              or not budget.fits(*shape_of(img), len(batch) + 1)):
                    flush()
                batch.append((src, dst, img))
                if len(batch) >= (args.batch or engine.default_batch):
                    flush()
                bar.update(1)
            flush()
    except (ImageIOError, OSError, ToolError) as exc:   # the output went away or filled up, or inference failed
        return fail("pcnet-derain", str(exc))
    print(f"derained {len(plan) - skipped} image(s) into {args.output}" + (f", skipped {skipped}" if skipped else ""))
    return PARTIAL if skipped else OK


if __name__ == "__main__":
    sys.exit(main())
