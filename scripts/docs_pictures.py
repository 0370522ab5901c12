"""Regenerate the README's pictures: rain synthesis panels and the demo contact sheet (after `make demo`)."""
from pathlib import Path

import cv2
import numpy as np

from pcnet_ros.imageio import read_rgb
from pcnet_ros.tools.visual import contact_sheet, side_by_side
from pcnet_ros.training import rain
from pcnet_ros.training.streaks import composite, StreakBank

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs"


def rain_panel() -> None:
    rng = np.random.default_rng(7)
    clean = read_rgb(DATA / "rain100l-train" / "clean" / "norain-1.png")
    real = read_rgb(DATA / "rain100l-train" / "rain" / "norain-1.png")
    light = rain.add_rain(clean, rain.random_params(rng, "light"), rng)
    heavy = rain.add_rain(clean, rain.random_params(rng, "heavy"), rng)
    bgr = [cv2.cvtColor(a, cv2.COLOR_RGB2BGR) for a in (clean, light, heavy, real)]
    strip = side_by_side(bgr, ["clean", "synthesized light", "synthesized heavy", "real Rain100L"])
    cv2.imwrite(str(DOCS / "rain_synthesis.jpg"), strip, [cv2.IMWRITE_JPEG_QUALITY, 85])


def streak_panel() -> None:
    """Heavy rain composited from the Garg streak layers beside RainTrainH's own rain on the same images."""
    bank = StreakBank(DATA / "rain-streaks-garg06")
    rows = []
    for k, name in enumerate(("norain-12.png", "norain-5.png")):
        clean = read_rgb(DATA / "rain100h-train-sample" / "clean" / name)
        real = read_rgb(DATA / "rain100h-train-sample" / "rain" / name)
        synth = composite(clean, bank, np.random.default_rng(k))
        bgr = [cv2.cvtColor(a, cv2.COLOR_RGB2BGR) for a in (clean, synth, real)]
        rows.append(side_by_side(bgr, ["clean", "synthesized: streak compositor", "real RainTrainH"]))
    cv2.imwrite(str(DOCS / "streak_rain.jpg"), contact_sheet(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])


def demo_sheet() -> None:
    sheet = cv2.imread(str(ROOT / "out" / "demo" / "contact_sheet.jpg"))
    if sheet is None:
        raise SystemExit("run `make demo` first")
    small = cv2.resize(sheet, (960, round(sheet.shape[0] * 960 / sheet.shape[1])), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(DOCS / "demo_contact_sheet.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 82])


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    rain_panel()
    streak_panel()
    if (ROOT / "out" / "demo" / "contact_sheet.jpg").is_file():
        demo_sheet()
