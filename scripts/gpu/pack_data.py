"""Pack a paired folder small enough to travel to a lent GPU machine (64 MiB with the whole tree), losslessly.

Rain100L's rainy image is its clean image plus one grey streak layer, clipped at 255, so
``rain = min(clean + s, 255)`` with ``s = max over channels of (rain - clean)`` holds exactly (``add_rain``
and ``rain_layer`` of ``pcnet_ros.training.transplant``).  The clean image goes as lossless WebP and ``s``
as a grey PNG: about 40% of the PNG pairs.  Pairs where the identity
does not hold exactly are stored whole (lossless WebP).  ``unpack`` writes the usual rain/ and clean/ PNGs.

    python scripts/gpu/pack_data.py pack ../shared/data/rain100l-train .gpu/rain100l-train
    python scripts/gpu/pack_data.py unpack .gpu/rain100l-train /tmp/data/rain100l-train
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import sys

import cv2

from pcnet_ros.training.transplant import add_rain, rain_layer

LOSSLESS_WEBP = [cv2.IMWRITE_WEBP_QUALITY, 101]


def _pack_one(job: tuple[Path, Path, Path]) -> str:
    rain_p, clean_p, out = job
    rain, clean = cv2.imread(str(rain_p)), cv2.imread(str(clean_p))
    stem = rain_p.name
    cv2.imwrite(str(out / f"{stem}.clean.webp"), clean, LOSSLESS_WEBP)
    s = rain_layer(rain, clean)
    if (add_rain(clean, s) == rain).all():         # also false where rain is darker than clean anywhere
        cv2.imwrite(str(out / f"{stem}.streak.png"), s, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        return "layer"
    cv2.imwrite(str(out / f"{stem}.rain.webp"), rain, LOSSLESS_WEBP)
    return "whole"


def _unpack_one(job: tuple[Path, Path]) -> None:
    clean_p, dst = job
    stem = clean_p.name[:-len(".clean.webp")]
    clean = cv2.imread(str(clean_p))
    streak = clean_p.with_name(f"{stem}.streak.png")
    if streak.exists():
        rain = add_rain(clean, cv2.imread(str(streak), cv2.IMREAD_GRAYSCALE))
    else:
        rain = cv2.imread(str(clean_p.with_name(f"{stem}.rain.webp")))
    fast = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    cv2.imwrite(str(dst / "clean" / stem), clean, fast)
    cv2.imwrite(str(dst / "rain" / stem), rain, fast)


def main(argv: list[str]) -> int:
    verb, src, dst = argv[0], Path(argv[1]), Path(argv[2])
    with ProcessPoolExecutor() as pool:
        if verb == "pack":
            dst.mkdir(parents=True, exist_ok=True)
            jobs = [(p, src / "clean" / p.name, dst) for p in sorted((src / "rain").iterdir())
                    if (src / "clean" / p.name).exists()]
            kinds = list(pool.map(_pack_one, jobs))
            size = sum(f.stat().st_size for f in dst.iterdir())
            print(f"packed {len(jobs)} pairs ({kinds.count('layer')} as clean + streak layer) into "
                  f"{size / 2**20:.1f} MiB")
        else:
            for sub in ("clean", "rain"):
                (dst / sub).mkdir(parents=True, exist_ok=True)
            jobs = [(p, dst) for p in sorted(src.glob("*.clean.webp"))]
            list(pool.map(_unpack_one, jobs))
            print(f"unpacked {len(jobs)} pairs into {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
