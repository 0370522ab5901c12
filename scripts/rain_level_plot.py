"""docs/rain_level.png: what the rain-level numbers read on dry, light, heavy and real rain (shipped light weights).

    .venv/bin/python scripts/rain_level_plot.py
"""
from pathlib import Path
import sys

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pcnet_ros.core import rain_level  # noqa: E402
from pcnet_ros.core.engine import DerainEngine  # noqa: E402
from pcnet_ros.core.weights import build_model  # noqa: E402
from pcnet_ros.imageio import list_images, read_rgb  # noqa: E402
from pcnet_ros.paths import SHARED_DATA  # noqa: E402

SETS = {  # name: (files, BGR colour)
    "dry: Rain100L clean (held out)": (list_images(SHARED_DATA / "rain100l-train" / "clean")[9::10], (90, 160, 60)),
    "light: Rain100L rainy (held out)": (list_images(SHARED_DATA / "rain100l-train" / "rain")[9::10], (220, 140, 40)),
    "heavy: RainTrainH sample": (list_images(SHARED_DATA / "rain100h-train-sample" / "rain"), (40, 40, 220)),
    "real rain video ra1": (list_images(SHARED_DATA / "real-rain-video" / "ra1")[::6], (200, 60, 200)),
    "real rain video rb2": (list_images(SHARED_DATA / "real-rain-video" / "rb2")[::6], (30, 170, 230)),
}
W, H, M = 900, 560, 70
X_TICK, Y_TICK = 0.01, 0.05      # tick spacing of intensity and coverage


def _axis(values: list[float], tick: float) -> tuple[float, list[float]]:
    """An axis that holds every reading: its end (the tick at or above the largest plus 5%) and its ticks."""
    n = int(np.ceil(max(values) * 1.05 / tick))
    return n * tick, [i * tick for i in range(n + 1)]


def main() -> int:
    """Measure every set first, so the axes hold every reading (none pinned to an edge), and print each
    set's coverage range: the README quotes them."""
    engine = DerainEngine(build_model("light")[0], device="cpu")
    levels = {name: [rain_level.measure(engine.derain(rgb).residue, rgb.dtype) for rgb in map(read_rgb, files)]
              for name, (files, _) in SETS.items()}
    for name, got in levels.items():
        cov = [lv.coverage for lv in got]
        print(f"{name}: coverage {min(cov):.2f}-{max(cov):.2f}")
    everything = [lv for got in levels.values() for lv in got]
    x_max, x_ticks = _axis([lv.intensity for lv in everything], X_TICK)
    y_max, y_ticks = _axis([lv.coverage for lv in everything], Y_TICK)
    img = np.full((H, W, 3), 255, np.uint8)
    px = lambda x, y: (int(M + x / x_max * (W - 2 * M)), int(H - M - y / y_max * (H - 2 * M)))  # noqa: E731
    for y in (rain_level.LIGHT_COVERAGE, rain_level.HEAVY_COVERAGE):
        cv2.line(img, px(0, y), px(x_max, y), (170, 170, 170), 1, cv2.LINE_AA)
    cv2.rectangle(img, px(0, 0), px(x_max, y_max), (0, 0, 0), 1)
    for k, (lo, hi, text) in enumerate(((0, rain_level.LIGHT_COVERAGE, "level 0"),
                                        (rain_level.LIGHT_COVERAGE, rain_level.HEAVY_COVERAGE, "level 1"),
                                        (rain_level.HEAVY_COVERAGE, y_max, "level 2"))):
        cv2.putText(img, text, (px(x_max, (lo + hi) / 2)[0] - 70, px(0, (lo + hi) / 2)[1] + 5),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (120, 120, 120), 1, cv2.LINE_AA)
    for t in x_ticks:
        cv2.putText(img, f"{t:.2f}", (px(t, 0)[0] - 15, H - M + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for t in y_ticks:
        cv2.putText(img, f"{t:.2f}", (M - 45, px(0, t)[1] + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(img, "intensity (mean light removed, fraction of full scale)", (M + 150, H - 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "coverage (streak-pixel fraction)", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    for row, (name, (files, colour)) in enumerate(SETS.items()):
        for level in levels[name]:
            cv2.circle(img, px(level.intensity, level.coverage), 5, colour, -1, cv2.LINE_AA)
        cv2.circle(img, (M + 20, M + 15 + 22 * row), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(img, f"{name} ({len(files)})", (M + 32, M + 20 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
    out = ROOT / "docs" / "rain_level.png"
    cv2.imwrite(str(out), img)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
