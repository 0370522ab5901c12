"""Training loop, losses, rain synthesis and evaluation on small real fixtures."""
import argparse
import hashlib
import json
import logging
import os
from pathlib import Path
import signal

import numpy as np
import pytest
import torch

from conftest import scene, shared_or_skip
from pcnet_ros.imageio import write_rgb
from pcnet_ros.training import evaluate, rain, train
from pcnet_ros.training.losses import (charbonnier, EdgeLoss, log_mse, PCNetLoss, PSNRLoss, SquaredErrorLoss,
                                       SSIM)
from pcnet_ros.training.metrics import psnr, rgb_to_y, ssim, y_psnr_ssim
from pcnet_ros.training.pairs import (list_pairs, load_named_pairs, load_pairs, RAINTRAINH_HOLD_EVERY, split_pairs,
                                      synthesize_pairs)
from pcnet_ros.training.run_log import read_run_log, validations


def test_short_training_lowers_the_loss_and_resumes(pair_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(pair_dir), "--out", str(out), "--batch", "4", "--patch", "32", "--lr", "2e-3",
              "--model-size", "tiny", "--log-every", "1", "--eval-every", "1000", "--ckpt-every", "10", "--quiet",
              "--val-every", "3", "--device", "cpu", "--val-synth", "heavy"]
    assert train.main(common + ["--steps", "60"]) == 0
    losses = [r["loss"] for r in read_run_log(out)]
    assert len(losses) >= 60
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.02
    assert (out / "best.pth").is_file()                                  # validation ran at the last step
    meta = torch.load(out / "best.pth", weights_only=True)["meta"]
    assert meta["val_images"] == 4 and meta["val_synth"] == "heavy"     # 2 held-out pairs + their synth copies
    assert train.main(common + ["--steps", "70"]) == 0                   # resume, not restart
    ck = torch.load(out / "last.pth", weights_only=False)
    assert ck["state"]["step"] == 70
    assert len(read_run_log(out)) == len(losses) + 10   # steps 61..70


def test_a_new_machine_continues_from_the_bank_exactly_where_an_unstopped_run_would_be(pair_dir, tmp_path):
    """runs/ does not travel between machines; the committed bank does, with Adam, average, RNG and schedule."""
    args = ["--data", str(pair_dir), "--batch", "4", "--patch", "32", "--lr", "2e-3", "--model-size", "tiny",
            "--eval-every", "5", "--quiet", "--device", "cpu", "--val-every", "3", "--ema", "0.9"]
    whole = tmp_path / "whole"
    handler = signal.getsignal(signal.SIGTERM)
    assert train.main(args + ["--out", str(whole), "--steps", "20"]) == 0
    assert signal.getsignal(signal.SIGTERM) is handler                    # the caller's SIGTERM is its own again
    bank, first, second = tmp_path / "bank" / "run_last.pth", tmp_path / "first", tmp_path / "second"
    assert train.main(args + ["--out", str(first), "--bank", str(bank), "--steps", "20", "--stop-at", "8"]) == 0
    assert torch.load(bank, weights_only=False)["state"]["step"] == 8         # stopped between validations
    assert train.main(args + ["--out", str(second), "--bank", str(bank), "--steps", "20"]) == 0   # a new machine
    a, b = (torch.load(d / "last.pth", weights_only=False) for d in (whole, second))
    assert b["state"]["step"] == 20 and [h["step"] for h in b["state"]["history"]] == [5, 10, 15, 20]
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert [h["score"] for h in a["state"]["history"]] == [h["score"] for h in b["state"]["history"]]
    assert bank.read_bytes() == (second / "last.pth").read_bytes()      # the bank follows the second machine


def test_a_resume_after_a_kill_logs_each_step_once(pair_dir, tmp_path):
    """A killed run logged steps past its last checkpoint, maybe half a line: the resume drops them and goes on."""
    out = tmp_path / "run"
    args = ["--data", str(pair_dir), "--out", str(out), "--batch", "2", "--patch", "32", "--model-size", "tiny",
            "--log-every", "1", "--eval-every", "1000", "--quiet", "--device", "cpu", "--val-every", "3"]
    assert train.main(args + ["--steps", "6"]) == 0
    with open(out / "log.jsonl", "a") as log:          # what a SIGKILL after step 8 leaves beside a step-6 checkpoint
        log.write('{"step": 7, "loss": 0.1}\n{"step": 8, "loss": 0.1}\n{"step": 9, "lo')
    with pytest.raises(json.JSONDecodeError):
        json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert [r["step"] for r in read_run_log(out)] == [1, 2, 3, 4, 5, 6, 7, 8]   # the torn line is not read
    assert train.main(args + ["--steps", "10"]) == 0
    recs = read_run_log(out)
    assert [r["step"] for r in recs] == list(range(1, 11))
    assert all(r["loss"] != 0.1 for r in recs)                                  # steps 7 and 8 are the resume's
    assert len((out / "log.jsonl").read_text().splitlines()) == 10             # and every line parses


def _make_training_commands(*targets: str) -> list[list[str]]:
    """The pcnet-train argument lists that `make TARGET` runs, as make itself expands them (a dry run)."""
    import shlex
    import subprocess

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", *targets], cwd=root, capture_output=True,
                         text=True, check=True).stdout.replace("\\\n", " ")
    commands = [shlex.split(line) for line in out.splitlines() if "pcnet_ros.training.train" in line]
    return [c[c.index("pcnet_ros.training.train") + 1:] for c in commands]


def test_every_make_training_command_passes_the_argument_checks_and_the_readme_names_the_light_cycle():
    """The Makefile's recipes run only in long sessions; a bad option there would surface hours later."""
    commands = _make_training_commands("train-light", "train-heavy", "finetune-heavy", "heavy-b128", "light-mse",
                                       "light-mse-b128", "light-mse-b256", "light-psnr", "light-p320",
                                       "light-p320-b256", "light-p320-b512", "heavy-b128p160", "heavy-b96p192",
                                       "heavy-b56p256", "heavy-b96p192-low", "heavy-all12")
    assert len(commands) == 18
    repeatable = {o for a in train.build_parser()._actions if isinstance(a, argparse._AppendAction)
                  for o in a.option_strings}                           # --data, --val-data, ...
    for argv in commands:
        options = [a for a in argv if a.startswith("--") and a not in repeatable]
        assert len(options) == len(set(options)), f"an option given twice (the last silently wins): {argv}"
        args = train.parse_args(argv)                                  # SystemExit on any bad combination
        assert args.steps > 0 and args.out.parts[0] == "runs"
    light = train.parse_args(_make_training_commands("train-light")[0])
    cycle = f"{light.batch} of {light.patch}x{light.patch}"
    root = Path(__file__).resolve().parent.parent
    readme_line = next(line for line in (root / "README.md").read_text().splitlines()
                       if line.startswith("make train-light"))
    assert f"{cycle} as {light.accum} chunks" in readme_line, readme_line
    if light.stop_at:
        assert f"the first {light.stop_at} steps of a {light.steps}-step cosine" in readme_line, readme_line
    assert f"batch {cycle}" in (root / "Makefile").read_text()
    assert (root / light.init).is_file() and light.bank.parent.name == "checkpoints"


def _option_values(argv: list[str]) -> dict[str, list[list[str]]]:
    """Each option's values, in order, once per time it is given (--data three times: three lists)."""
    found: dict[str, list[list[str]]] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            rest = argv[i + 1:]
            end = next((j for j, a in enumerate(rest) if a.startswith("--")), len(rest))
            found.setdefault(arg, []).append(rest[:end])
    return found


def test_the_gpu_scripts_heavy_recipe_is_the_makefiles():
    """scripts/gpu/run.sh HEAVY=1 writes the heavy fine-tune's data, shares, rain mix and selection out again (the
    lent machine may have no make): they must stay those of `make heavy-b128p160`, folder for folder."""
    import shlex

    root = Path(__file__).resolve().parent.parent
    script = (root / "scripts" / "gpu" / "run.sh").read_text()
    recipe = script.split('RECIPE="--data $F/train', 1)[1].split('"', 1)[0]
    gpu = _option_values(shlex.split("--data $F/train" + recipe.replace("${SYNTH:-0.2}", "0.2")))
    make = _option_values(_make_training_commands("heavy-b128p160")[0])
    for option in ("--data-share", "--synth-prob", "--synth-level", "--transplant-prob", "--min-gain"):
        assert gpu[option] == make[option], option
    names = {"$F/train": "train", "$F/val": "val", "$DATA": "rain100l-train", ".gpu/pcnet-train": "pcnet-train"}
    for option in ("--data", "--val-data", "--transplant-from"):
        assert [names[v[0]] for v in gpu[option]] == [Path(v[0]).name for v in make[option]], option
    assert gpu["--streaks"] == [[".gpu/streaks"]] and make["--streaks"][0][0].endswith("rain-streaks-garg06")


def test_bad_argument_combinations_fail_before_any_data_loads():
    for bad in (["--accum", "3"], ["--ema", "1.0"], ["--min-gain", "-1"], ["--stop-at", "0"],
                ["--stop-at", "11"], ["--transplant-prob", "0.5"], ["--synth-prob", "2"],
                ["--transplant-from", "elsewhere", "--transplant-prob", "0.5"]):
        with pytest.raises(SystemExit):
            train.parse_args(["--data", "/nonexistent", "--out", "runs/x", "--batch", "8", "--steps", "10", *bad])
    assert train.parse_args(["--data", "/nonexistent", "--out", "runs/x", "--steps", "10", "--stop-at", "10"])


def test_the_bars_step_times_leave_out_the_compiling_first_step():
    """The first step of a process compiles; averaged in, it made a 36 s step read 84 s fifteen steps later."""
    from pcnet_ros.training.run_clock import StepTimes

    times = StepTimes()
    times.update(data=1.3, compute=182.0)
    assert times.postfix() == {}                                         # nothing to show yet
    times.update(data=0.5, compute=36.0)
    assert times.postfix() == {"data": "0.500s", "compute": "36.000s"}
    times.update(data=0.5, compute=46.0)                                 # then a moving average of the steps
    assert times.postfix()["compute"] == "37.000s"


def test_time_paused_with_sigtstp_is_not_training_time(pair_dir, tmp_path):
    """Sessions pause the run to give tests both cores; the card's hours must not grow while it sleeps."""
    import subprocess
    import sys
    import time

    def wait_for(cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.05)
        return False

    out = tmp_path / "run"
    with open(tmp_path / "train.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pcnet_ros.training.train", "--data", str(pair_dir), "--out",
                                 str(out), "--batch", "2", "--patch", "32", "--model-size", "tiny", "--steps",
                                 "100000", "--eval-every", "100000", "--log-every", "1", "--quiet", "--device", "cpu",
                                 "--threads", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: (out / "log.jsonl").exists() and len(read_run_log(out)) > 3, 120)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTSTP)
        state = lambda: open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0]   # noqa: E731
        assert wait_for(lambda: state() == "T", 10)                      # it stopped itself
        logged = len(read_run_log(out))
        time.sleep(6)
        assert len(read_run_log(out)) == logged                          # and took no step meanwhile
        proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: len(read_run_log(out)) > logged + 3, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        wall = time.monotonic() - t0
    finally:
        proc.kill()
    elapsed = torch.load(out / "last.pth", weights_only=False)["state"]["elapsed_s"]
    assert 0 < elapsed < wall - 4, (elapsed, wall)                      # the 6 s asleep are not in it


def test_sigtstp_pauses_a_run_that_is_still_setting_up(tmp_path):
    """A run started with nohup from a shell that has gone is in an orphaned process group, where SIGTSTP's
    default stop is discarded: a pause asked for while it loaded data or scored its start was lost (seen with
    `make heavy-b128p160`). Here the run has its own session, and the signal comes before its first validation."""
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    data, src = tmp_path / "pairs", shared_or_skip("rain100l-train")  # 30 real pairs: 3 held out, not 20, to score
    for name in ("rain", "clean"):
        (data / name).mkdir(parents=True)
        for i in range(1, 31):
            (data / name / f"norain-{i}.png").symlink_to(src / name / f"norain-{i}.png")
    log = tmp_path / "train.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "pcnet_ros.training.train", "--data",
                                 str(data), "--out", str(tmp_path / "run"), "--batch", "1",
                                 "--patch", "32", "--steps", "1", "--quiet", "--device", "cpu", "--threads", "1",
                                 "--init", str(root / "weights" / "pcnet_light.pth")], stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ,
                                                                                       "PYTHONUNBUFFERED": "1"})
    state = lambda: open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0]   # noqa: E731
    try:
        end = time.monotonic() + 120
        while "fine-tuning from" not in log.read_text() and time.monotonic() < end:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTSTP)                          # 3 images to score at full size still ahead
        end = time.monotonic() + 5
        while state() != "T" and time.monotonic() < end:
            time.sleep(0.02)
        assert state() == "T", log.read_text()
        assert "starting weights" not in log.read_text()          # it stopped while setting up
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(120) == 0, log.read_text()
    finally:
        proc.kill()
    assert "starting weights" in log.read_text() and "stopped at step 1/1" in log.read_text()


def test_lr_schedule_decays():
    assert train.lr_at(0, 100, 1e-3) == pytest.approx(1e-3)
    assert train.lr_at(50, 100, 1e-3) == pytest.approx(0.505e-3)
    assert train.lr_at(100, 100, 1e-3) == pytest.approx(1e-5)


def test_losses_behave():
    x = torch.rand(2, 3, 32, 32)
    assert charbonnier(x, x).item() == pytest.approx(1e-3, rel=1e-3)
    assert SSIM()(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert EdgeLoss()(x, x).item() == pytest.approx(1e-3, rel=1e-3)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    assert PCNetLoss()(y, y, x, x).item() > PCNetLoss()(x, x, x, x).item()
    assert SquaredErrorLoss()(x, x, x, x).item() == 0.0
    z = torch.zeros_like(x)                                # clean off by 0.1 everywhere, the rainy image by 0.2
    assert SquaredErrorLoss()(z + 0.1, z + 0.2, z, z).item() == pytest.approx(0.01 + 0.2 * 0.04)
    # minus the PSNR at peak 1: 20 dB for the clean image, 13.98 for the rainy one
    assert PSNRLoss()(z + 0.1, z + 0.2, z, z).item() == pytest.approx(-20 + 0.2 * 10 * np.log10(0.04), rel=1e-5)
    assert PSNRLoss()(x, x, x, x).item() == pytest.approx(-1.2 * 100)      # the floor, not -inf
    # each sample's dB counts alike: errors of 0.1 and 0.01 average -20 and -40 dB, where a batch MSE would read
    # -22.97 dB, held up by the worse sample
    pred = torch.cat([z[:1] + 0.1, z[1:] + 0.01])
    assert log_mse(pred, z).item() == pytest.approx(-30, rel=1e-5)
    assert 10 * np.log10(SquaredErrorLoss()(pred, z, z, z).item()) == pytest.approx(-22.97, abs=0.01)


def _tiny_fine_tune(pair_dir: Path, out: Path) -> list[str]:
    """40 logged steps of the tiny model on the fixture pairs, fast enough to watch a loss fall."""
    return ["--data", str(pair_dir), "--out", str(out), "--batch", "4", "--patch", "32", "--lr", "2e-3",
            "--model-size", "tiny", "--log-every", "1", "--eval-every", "40", "--quiet", "--val-every", "3",
            "--device", "cpu", "--steps", "40"]


def test_mse_fine_tune_lowers_the_squared_error_and_says_so_in_the_weights(pair_dir, tmp_path, capsys):
    """--loss mse, the last fine-tune that took the light file from 35.64 to 35.73 dB on the held-out split."""
    out, exported = tmp_path / "run", tmp_path / "w.pth"
    args = _tiny_fine_tune(pair_dir, out) + ["--export", str(exported)]
    assert train.main(args + ["--loss", "mse"]) == 0
    losses = [r["loss"] for r in read_run_log(out) if "loss" in r]
    assert 0 < np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])        # squared errors: positive, and falling
    assert torch.load(exported, weights_only=False)["meta"]["loss"] == "mse"
    # the same run resumed under the paper's loss (the default) would change its objective mid-schedule: refused
    before = (out / "last.pth").read_bytes()
    with pytest.raises(SystemExit):
        train.main(args[:-4] + ["--steps", "50", "--export", str(exported)])
    assert (out / "last.pth").read_bytes() == before
    assert "trained with --loss mse" in capsys.readouterr().err


def test_psnr_loss_run_raises_the_patches_psnr(pair_dir, tmp_path):
    """--loss psnr logs minus the mean patch PSNR: negative, and falling as the fit improves."""
    out = tmp_path / "run"
    assert train.main(_tiny_fine_tune(pair_dir, out) + ["--loss", "psnr"]) == 0
    losses = [r["loss"] for r in read_run_log(out) if "loss" in r]
    assert max(losses) < 0                                      # in dB below peak, never a positive error
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 1.0          # at least 1 dB gained over 40 steps


def test_psnr_and_ssim_known_values(rng):
    a = rng.integers(20, 200, size=(40, 50, 3)).astype(np.uint8)
    b = a + 5                                              # every channel +5 -> Y differs by 5 * 219/255
    assert psnr(rgb_to_y(a), rgb_to_y(b)) == pytest.approx(20 * np.log10(255 / (5 * 219 / 255)), abs=1e-6)
    assert psnr(a, a) == float("inf")
    assert ssim(rgb_to_y(a), rgb_to_y(a)) == pytest.approx(1.0)
    assert ssim(rgb_to_y(a), rgb_to_y(b)) > 0.99               # a constant shift barely changes structure
    noisy = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    p, s = y_psnr_ssim(noisy, a)
    assert 18 < p < 26 and s < 0.95


def test_split_is_deterministic_and_disjoint(pair_dir):
    pairs = list_pairs(pair_dir)
    tr, va = split_pairs(pairs, 3)
    assert [p[0].name for p in va] == ["2.png", "5.png"]
    assert not set(tr) & set(va) and len(tr) + len(va) == len(pairs)


def test_images_without_a_partner_are_named_in_a_warning(pair_dir, caplog):
    (pair_dir / "rain" / "1.png").rename(pair_dir / "rain" / "rain-1.png")      # a misnamed rainy image
    for i in range(4):
        (pair_dir / "clean" / f"extra{i}.png").write_bytes((pair_dir / "clean" / "0.png").read_bytes())
    with caplog.at_level(logging.WARNING, logger="pcnet_ros.training.pairs"):
        pairs = list_pairs(pair_dir)
    assert [r.name for r, _ in pairs] == ["0.png", "2.png", "3.png", "4.png", "5.png"]
    rain_side, clean_side = [r.getMessage() for r in caplog.records]
    assert "1 image(s) in rain/" in rain_side and "rain-1.png" in rain_side
    assert "5 image(s) in clean/" in clean_side and "1.png, extra0.png, extra1.png and 2 more" in clean_side
    (pair_dir / "rain" / "rain-1.png").rename(pair_dir / "rain" / "1.png")
    for i in range(4):
        (pair_dir / "clean" / f"extra{i}.png").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pcnet_ros.training.pairs"):
        assert len(list_pairs(pair_dir)) == 6
    assert not caplog.records                                                   # a matched set says nothing


def test_rain_synthesis(rng):
    clean = scene(rng, 96, 128)
    p = rain.RainParams(density=0.02, length=21, angle=20, width=1, intensity=0.8, blur=0.5, haze=0.0)
    rainy = rain.add_rain(clean, p, np.random.default_rng(1))
    assert rainy.shape == clean.shape and rainy.dtype == np.uint8
    assert (rainy.astype(int) >= clean.astype(int) - 1).all()        # streaks only add light
    again = rain.add_rain(clean, p, np.random.default_rng(1))
    np.testing.assert_array_equal(rainy, again)                       # reproducible from a seed
    sparse = rain.add_rain(clean, rain.RainParams(**{**p.to_dict(), "density": 0.002}), np.random.default_rng(1))
    assert (sparse != clean).mean() < (rainy != clean).mean()
    k = rain.streak_kernel(15, 30, 1)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    heavy = rain.random_params(rng, "heavy")
    assert 0 <= heavy.haze <= 0.15 and heavy.density >= 0.02 and heavy.length >= 20
    with pytest.raises(ValueError, match="unknown rain level"):
        rain.random_params(rng, "drizzle")


def test_synthesized_validation_pairs_are_reproducible(pair_dir):
    triples = load_named_pairs(list_pairs(pair_dir))
    heavy = synthesize_pairs(triples, "heavy", seed=3)
    again = synthesize_pairs(triples, "heavy", seed=3)
    other = synthesize_pairs(triples, "heavy", seed=4)
    light = synthesize_pairs(triples, "light", seed=3)
    assert [n for n, _, _ in heavy] == [f"synth-heavy/{i}.png" for i in range(6)]
    for (_, r, c), (_, r2, _), (_, r3, _), (_, _, c0) in zip(heavy, again, other, triples):
        np.testing.assert_array_equal(r, r2)
        np.testing.assert_array_equal(c, c0)                          # the clean side is untouched
        assert not np.array_equal(r, r3)
    mean_psnr = lambda ts: np.mean([y_psnr_ssim(r, c)[0] for _, r, c in ts])  # noqa: E731
    assert mean_psnr(heavy) < mean_psnr(light) - 3                    # heavy rain hides more of the scene


def test_eval_synthesizes_rain_on_a_folder_of_clean_frames(pair_dir, tmp_path, capsys):
    frames = pair_dir / "clean"                                       # plain image folder, no rain/ beside it
    assert evaluate.main([str(frames), "--synth", "heavy", "--device", "cpu", "--csv", str(tmp_path / "s.csv")]) == 0
    assert "clean[all]+synth-heavy" in capsys.readouterr().out
    rows = (tmp_path / "s.csv").read_text().splitlines()[1:]
    assert len(rows) == 6 and all(",synth-heavy/" in r for r in rows)
    assert all(float(r.split(",")[2]) < 60 for r in rows)             # the input really carries rain
    assert evaluate.main([str(tmp_path / "nowhere"), "--device", "cpu"]) == 2
    assert "must hold 'rain/' and 'clean/'" in capsys.readouterr().err


def test_eval_cli_scores_known_psnr_on_synthetic_pairs(tmp_path, rng, capsys):
    """Rainy = clean + 5 in every channel: Y differs by 5*219/255, so the input PSNR is known exactly."""
    for i in range(3):
        clean = rng.integers(20, 200, size=(48, 64, 3)).astype(np.uint8)
        write_rgb(tmp_path / "set" / "clean" / f"{i}.png", clean)
        write_rgb(tmp_path / "set" / "rain" / f"{i}.png", clean + 5)
    assert evaluate.main([str(tmp_path / "set"), "--device", "cpu", "--csv", str(tmp_path / "s.csv")]) == 0
    rows = [r.split(",") for r in (tmp_path / "s.csv").read_text().splitlines()[1:]]
    expected = 20 * np.log10(255 / (5 * 219 / 255))
    assert len(rows) == 3
    for r in rows:
        assert float(r[2]) == pytest.approx(expected, abs=1e-3) and 0.99 < float(r[3]) <= 1.0
        assert float(r[4]) > 0                                       # the model's own score sits beside it
    assert f"{expected:.2f}" in capsys.readouterr().out


def test_eval_cli_prints_baseline_and_writes_csv(pair_dir, tmp_path, capsys):
    assert evaluate.main([str(pair_dir), "--device", "cpu", "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "input PSNR/SSIM" in out and "PCNet PSNR/SSIM" in out
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0].startswith("set,image,psnr_input") and len(rows) == 7


def test_eval_against_an_earlier_csv_prints_the_paired_gain(pair_dir, tmp_path, capsys):
    """The same weights against their own CSV gain exactly 0; against a CSV with every score 0.1 dB lower, +0.1
    on every image with no spread; images that do not match are a clear error, not a mean over a mismatch."""
    args = [str(pair_dir), "--device", "cpu"]
    assert evaluate.main(args + ["--csv", str(tmp_path / "a.csv")]) == 0
    capsys.readouterr()
    assert evaluate.main(args + ["--against", str(tmp_path / "a.csv")]) == 0
    assert f"against {tmp_path / 'a.csv'}: +0.000 dB Y-PSNR (paired standard error 0.000), 0 of 6 images higher" \
        in capsys.readouterr().out
    lines = (tmp_path / "a.csv").read_text().splitlines()
    rows = [r.split(",") for r in lines[1:]]
    lower = [lines[0]] + [",".join(r[:4] + [f"{float(r[4]) - 0.1:.4f}"] + r[5:]) for r in rows]
    (tmp_path / "lower.csv").write_text("\n".join(lower) + "\n")
    assert evaluate.main(args + ["--against", str(tmp_path / "lower.csv")]) == 0
    assert "+0.100 dB Y-PSNR (paired standard error 0.000), 6 of 6 images higher" in capsys.readouterr().out
    (tmp_path / "fewer.csv").write_text("\n".join(lines[:-1]) + "\n")
    assert evaluate.main(args + ["--against", str(tmp_path / "fewer.csv")]) == 2
    out, err = capsys.readouterr()
    assert "scored different images (1 in one only" in err
    assert out == ""                                  # refused before scoring anything, or printing the table
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert evaluate.main(args + ["--against", str(tmp_path / "other.csv")]) == 2
    assert "not a CSV pcnet-eval wrote" in capsys.readouterr().err


@pytest.mark.parametrize("split", [["--split", "val", "--every", "10"], ["--split", "val", "--every", "1"]])
def test_a_split_that_leaves_no_pairs_is_one_line(pair_dir, capsys, split):
    assert evaluate.main([str(pair_dir), "--device", "cpu", *split]) == 2       # the fixture holds 6 pairs
    err = capsys.readouterr().err
    assert f"--split {split[1]} with --every {split[3]} leaves none of its 6 pairs" in err and "Traceback" not in err


def test_paired_gain_standard_error_is_that_of_the_per_image_differences():
    before = {("s", str(i)): 30.0 + i for i in range(4)}
    now = {k: v + d for (k, v), d in zip(before.items(), [0.1, -0.1, 0.3, 0.1])}
    g = evaluate.paired_gain(now, before)
    assert (g.rose, g.n) == (3, 4) and g.mean == pytest.approx(0.1)
    assert g.stderr == pytest.approx(np.std([0.1, -0.1, 0.3, 0.1], ddof=1) / 2)


@pytest.mark.parametrize("variant, folder, held_out, margin", [
    ("light", "rain100l-train", "every 10th", 7.5),     # these 4: 25.5 -> 33.8 dB (all 20: 34.66)
    ("heavy", "pcnet-train", "every 10th", 2.0),        # these 4: 23.9 -> 26.6 dB
    # the 4 pairs the last fine-tune holds out: 14.5 -> 20.3 dB before it, 25.6 after it (24.25 without
    # transplanted rain)
    ("heavy", "rain100h-train-sample", "every 3rd", 9.0),
])
def test_shipped_weights_beat_the_rainy_input(variant, folder, held_out, margin):
    """Regression guard: the committed weights must clearly improve held-out pairs they were not trained on."""
    from pcnet_ros.core.engine import DerainEngine
    from pcnet_ros.core.weights import build_model

    pairs = list_pairs(shared_or_skip(folder))
    every = {"every 10th": 10, "every 3rd": RAINTRAINH_HOLD_EVERY}[held_out]
    paths = split_pairs(pairs, every)[1][:4]
    model, meta = build_model(variant)
    engine = DerainEngine(model, device="cpu")
    triples = load_named_pairs(paths, max_side=640)
    s = evaluate.summarise(evaluate.score_pairs(engine, triples))
    assert s["psnr_out"] > s["psnr_in"] + margin, s
    assert s["ssim_out"] > s["ssim_in"], s
    assert meta["step"] > 0 and "val_psnr_y" in meta


def test_continue_from_shipped_style_weights(pair_dir, tmp_path):
    """A new machine has no runs/*/last.pth: training carries on from exported weights and their metadata."""
    from pcnet_ros.core.model import PCNet
    from pcnet_ros.core.weights import save_weights

    init = tmp_path / "w.pth"
    save_weights(PCNet(**train.MODEL_SIZES["tiny"]), init, {"step": 50, "val_psnr_y": 99.0, "train_hours": 0.5})
    out = tmp_path / "run"
    assert train.main(["--data", str(pair_dir), "--out", str(out), "--batch", "2", "--patch", "32",
                       "--model-size", "tiny", "--steps", "55", "--init", str(init), "--continue-schedule",
                       "--quiet", "--device", "cpu", "--val-every", "3", "--export", str(init)]) == 0
    state = torch.load(out / "last.pth", weights_only=False)["state"]
    assert state["step"] == 55 and state["best_psnr"] == 99.0       # a worse validation never overwrites
    assert torch.load(init, weights_only=True)["meta"]["step"] == 50


def test_min_gain_keeps_weights_that_beat_the_best_only_by_noise(pair_dir, tmp_path):
    """--min-gain: a validation that beats the starting weights by less than the margin replaces neither best.pth
    nor the exported file, while the same run without the margin does replace them."""
    from pcnet_ros.core.model import PCNet
    from pcnet_ros.core.weights import save_weights

    torch.manual_seed(0)
    init = tmp_path / "start.pth"
    save_weights(PCNet(**train.MODEL_SIZES["tiny"]), init, {"step": 0})
    args = ["--data", str(pair_dir), "--batch", "4", "--patch", "32", "--lr", "2e-3", "--model-size", "tiny",
            "--steps", "10", "--eval-every", "5", "--init", str(init), "--quiet", "--device", "cpu",
            "--val-every", "3"]

    def run(name: str, min_gain: float) -> tuple[Path, Path, list[dict]]:
        out, export = tmp_path / name, tmp_path / f"{name}.pth"
        assert train.main(args + ["--out", str(out), "--export", str(export), "--min-gain", str(min_gain)]) == 0
        return out, export, read_run_log(out)

    out, export, recs = run("plain", 0.0)
    start = torch.load(out / "last.pth", weights_only=False)["state"]["history"][0]["score"]
    best = max(r["score"] for r in recs if "score" in r)
    assert best > start and export.exists() and (out / "best.pth").exists()   # training did beat the start
    out, export, recs = run("margin", best - start + 1.0)
    assert max(r["score"] for r in recs if "score" in r) == best                # the same run, the same scores
    assert not export.exists() and not (out / "best.pth").exists()
    assert torch.load(out / "last.pth", weights_only=False)["state"]["best_psnr"] == start
    with pytest.raises(SystemExit):
        train.main(args + ["--out", str(tmp_path / "bad"), "--min-gain", "-0.1"])


def test_select_last_keeps_the_last_validation_even_when_it_scores_worse(pair_dir, tmp_path, capsys):
    """--select last (a fine-tune on data with nothing of its kind left to hold out): the exported weights are the
    last validation's, here a run wrecked by a far too high rate, scoring under its start; --select best keeps
    none of them. The weights say how they were kept, and a resume does not call the kept score the best."""
    from pcnet_ros.core.weights import read_checkpoint

    init = tmp_path / "start.pth"           # weights that have learnt something, so a wrecked run scores under them
    common = ["--data", str(pair_dir), "--batch", "4", "--patch", "32", "--model-size", "tiny", "--quiet",
              "--device", "cpu", "--val-every", "3"]
    assert train.main(common + ["--out", str(tmp_path / "start"), "--lr", "2e-3", "--steps", "30",
                                "--eval-every", "30", "--export", str(init)]) == 0
    args = common + ["--lr", "0.5", "--steps", "6", "--eval-every", "3", "--init", str(init)]
    for select in ("best", "last"):
        out, export = tmp_path / select, tmp_path / f"{select}.pth"
        assert train.main(args + ["--out", str(out), "--export", str(export), "--select", select]) == 0
        history = torch.load(out / "last.pth", weights_only=False)["state"]["history"]
        start, last = history[0]["score"], history[-1]["score"]
        assert last < start and all(h["score"] < start for h in history[1:])     # the rate wrecked every step
        if select == "best":
            assert not export.exists()
            continue
        meta = read_checkpoint(export)["meta"]
        assert meta["step"] == 6 and meta["select"] == "last" and meta["selection_score"] == round(last, 3)
        kept = torch.load(out / "last.pth", weights_only=False)["model"]
        exported = read_checkpoint(export)["state_dict"]
        assert all(torch.equal(kept[k], exported[k]) for k in kept)
        capsys.readouterr()
        assert train.main(args + ["--out", str(out), "--select", select, "--steps", "7"]) == 0
        assert f"at step 6 (last selection score {last:.2f})" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train.main(args + ["--out", str(tmp_path / "bad"), "--select", "last", "--min-gain", "0.05"])


def test_fine_tuning_records_its_starting_weights(pair_dir, tmp_path):
    """The heavy weights are fine-tuned from light ones; their card must say from which step."""
    from pcnet_ros.core.model import PCNet
    from pcnet_ros.core.weights import save_weights

    init = tmp_path / "light.pth"
    grandparent = {"weights": "light.pth", "sha256": "0123456789ab", "step": 900, "train_hours": 2.0,
                   "val_psnr_y": 19.0, "pixel_samples": 5000}
    save_weights(PCNet(**train.MODEL_SIZES["tiny"]), init, {"step": 50, "val_psnr_y": 20.0, "train_hours": 0.5,
                                                            "pixel_samples": 1000, "fine_tuned_from": grandparent})
    digest = hashlib.sha256(init.read_bytes()).hexdigest()[:12]
    export = tmp_path / "heavy.pth"
    args = ["--data", str(pair_dir), "--out", str(tmp_path / "run"), "--batch", "2", "--patch", "32",
            "--model-size", "tiny", "--steps", "4", "--eval-every", "2", "--init", str(init), "--quiet",
            "--device", "cpu", "--val-every", "3", "--export", str(export)]
    assert train.main(args) == 0
    meta = torch.load(export, weights_only=True)["meta"]
    # the same file name recurs down a lineage, so the digest tells which light.pth, and the start's own start
    assert meta["fine_tuned_from"] == {"weights": "light.pth", "sha256": digest, "step": 50, "train_hours": 0.5,
                                       "val_psnr_y": 20.0, "pixel_samples": 1000, "fine_tuned_from": grandparent}
    assert meta["pixel_samples"] == meta["step"] * 2 * 32 * 32    # this run's own samples
    assert meta["step"] in (2, 4)                                  # counts the fine-tuning only
    assert train.main(args[:-2] + ["--steps", "6", "--export", str(export)]) == 0   # resumed: still recorded
    assert torch.load(tmp_path / "run" / "last.pth", weights_only=False)["state"]["fine_tuned_from"]["step"] == 50


def test_weight_average_is_validated_beside_the_weights_and_the_better_one_is_exported(pair_dir, tmp_path):
    """--ema: each validation scores the raw weights and their moving average at the same step; the export is
    the one that scored, the average resumes with the run."""
    from pcnet_ros.core.engine import DerainEngine
    from pcnet_ros.core.model import PCNet
    from pcnet_ros.core.weights import load_weights

    out, export = tmp_path / "run", tmp_path / "w.pth"
    args = ["--data", str(pair_dir), "--out", str(out), "--batch", "4", "--patch", "32", "--lr", "2e-3",
            "--model-size", "tiny", "--eval-every", "5", "--quiet", "--device", "cpu", "--val-every", "3",
            "--ema", "0.8", "--export", str(export)]
    assert train.main(args + ["--steps", "20"]) == 0
    recs = [r for r in read_run_log(out) if "score" in r]
    assert [r["step"] for r in recs] == [5, 10, 15, 20]
    for r in recs:
        if r["weights"] == "ema":
            assert r["score"] == r["ema_score"] > r["raw_score"] and "raw_val_psnr" in r
        else:
            assert r["weights"] == "raw" and r["ema_score"] <= r["score"]
    ck = torch.load(out / "last.pth", weights_only=False)
    assert int(ck["ema"]["n_averaged"]) == 20
    assert any(not torch.equal(ck["ema"][f"module.{k}"], v) for k, v in ck["model"].items())
    meta = torch.load(export, weights_only=True)["meta"]
    assert meta["selection_score"] == max(r["score"] for r in recs) and meta["ema_decay"] == 0.8
    model = PCNet(**train.MODEL_SIZES["tiny"])
    load_weights(model, export)                # the exported file is the one that scored
    _, val = split_pairs(list_pairs(pair_dir), 3)
    rescored = evaluate.summarise(evaluate.score_pairs(DerainEngine(model, device="cpu"), load_named_pairs(val)))
    assert rescored["psnr_out"] == pytest.approx(meta["val_psnr_y"], abs=1e-3)
    assert train.main(args + ["--steps", "24"]) == 0                     # resumed: the average goes on
    assert int(torch.load(out / "last.pth", weights_only=False)["ema"]["n_averaged"]) == 24
    with pytest.raises(SystemExit):                                      # a decay is below 1
        train.main(args[:-4] + ["--ema", "1.5", "--steps", "24"])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_lowers_the_loss_in_either_precision(pair_dir, tmp_path, precision):
    out = tmp_path / precision
    assert train.main(["--data", str(pair_dir), "--out", str(out), "--batch", "4", "--patch", "32", "--lr", "2e-3",
                       "--model-size", "tiny", "--log-every", "1", "--eval-every", "1000", "--quiet",
                       "--device", "cpu", "--steps", "40", "--precision", precision]) == 0
    losses = [r["loss"] for r in read_run_log(out)]
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.02
    sd = torch.load(out / "last.pth", weights_only=False)["model"]
    assert all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())   # weights stay fp32


def test_accumulated_chunks_take_the_same_step_as_the_whole_batch(pair_dir, tmp_path, rng):
    from pcnet_ros.core.model import PCNet

    rainy = torch.from_numpy(rng.random((4, 3, 32, 32), dtype=np.float32))
    clean = (rainy * 0.8).contiguous()
    torch.manual_seed(0)
    start = PCNet(**train.MODEL_SIZES["tiny"]).state_dict()
    steps = {}
    for accum in (1, 2, 4):
        model = PCNet(**train.MODEL_SIZES["tiny"])
        model.load_state_dict(start)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loss = train.train_step(model, opt, PCNetLoss(), rainy, clean, accum=accum)
        steps[accum] = loss.item(), torch.cat([(p - start[n]).flatten() for n, p in model.named_parameters()])
    loss1, moved1 = steps[1]
    assert moved1.abs().max() > 1e-4                                     # the step moved the weights
    for accum in (2, 4):
        assert steps[accum][0] == pytest.approx(loss1, rel=1e-5)
        torch.testing.assert_close(steps[accum][1], moved1, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="equal chunks"):
        train.train_step(model, opt, PCNetLoss(), rainy[:3], clean[:3], accum=2)
    with pytest.raises(SystemExit):
        train.main(["--data", str(pair_dir), "--out", str(tmp_path / "x"), "--batch", "6", "--accum", "4"])


def _streak_folder(tmp_path, rng, n=4):
    """Small white-streak-on-black layers, as the Garg database holds them."""
    import cv2

    for i in range(n):
        layer = np.zeros((64, 96), np.uint8)
        for _ in range(40):
            x, y = rng.integers(0, 96), rng.integers(0, 64)
            cv2.line(layer, (int(x), int(y)), (int(x) + 2, int(y) + 14), int(rng.integers(120, 240)), 1)
        write_rgb(tmp_path / "streaks" / f"{i}.png", np.repeat(layer[:, :, None], 3, axis=2))
    return tmp_path / "streaks"


def test_streak_compositor_is_reproducible_adds_light_and_stays_in_range(tmp_path, rng):
    from pcnet_ros.training.streaks import composite, StreakBank

    bank = StreakBank(_streak_folder(tmp_path, rng))
    clean = scene(rng, 80, 120)
    a = composite(clean, bank, np.random.default_rng(5))
    b = composite(clean, bank, np.random.default_rng(5))
    c = composite(clean, bank, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)                              # reproducible per seed
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == clean.shape
    assert (a.astype(int) >= clean.astype(int) - 1).all()           # screen blend: rain only adds light
    light = composite(clean, bank, np.random.default_rng(5), "light")
    assert (light.astype(int) - clean).mean() < (a.astype(int) - clean).mean()
    white = composite(np.full((40, 40, 3), 255, np.uint8), bank, np.random.default_rng(1))
    assert white.max() == 255 and white.min() >= 200                 # never past the top of the range


def test_streak_rain_on_real_layers_is_as_heavy_as_raintrainh():
    """Calibration: on the real Garg layers the heavy style lands near RainTrainH's input PSNR (15.3 dB)."""
    from pcnet_ros.imageio import read_rgb
    from pcnet_ros.training.streaks import composite, StreakBank

    bank = StreakBank(shared_or_skip("rain-streaks-garg06"), limit=60)
    cleans = sorted(shared_or_skip("rain100l-train", "clean").iterdir())[:8]
    scores = [y_psnr_ssim(composite(read_rgb(p), bank, np.random.default_rng(i)), read_rgb(p))[0]
              for i, p in enumerate(cleans)]
    assert 13.0 < np.mean(scores) < 19.0, scores


def test_heavy_training_on_streaks_selects_on_the_validation_folders(pair_dir, tmp_path, rng):
    held = tmp_path / "held"
    for i in range(3):
        clean = scene(rng)
        write_rgb(held / "clean" / f"{i}.png", clean)
        write_rgb(held / "rain" / f"{i}.png", rain.add_rain(clean, rain.random_params(rng, "heavy"), rng))
    out = tmp_path / "run"
    assert train.main(["--data", str(pair_dir), "--out", str(out), "--batch", "2", "--patch", "32",
                       "--model-size", "tiny", "--eval-every", "5", "--quiet", "--device", "cpu", "--steps", "10",
                       "--synth-prob", "1.0", "--synth-level", "heavy", "--streaks", str(_streak_folder(tmp_path, rng)),
                       "--val-data", str(held), "--val-every", "3"]) == 0
    meta = torch.load(out / "best.pth", weights_only=True)["meta"]
    assert meta["val_images"] == 3 and meta["val_data"] == [str(held)] and meta["streaks"]
    logged = validations(out)
    assert logged and all("split_psnr" in r for r in logged)        # the held-out split is still reported


def test_default_augmentation_keeps_streaks_vertical(rng):
    """Flips by default: quarter turns lay near-vertical rain flat and cost held-out PSNR (README, Training)."""
    from pcnet_ros.training.pairs import PatchSampler

    clean = np.zeros((48, 48, 3), np.uint8)
    rainy = clean.copy()
    rainy[:, 20] = 255                                     # one vertical streak
    views = {}
    for aug in ("flips", "dihedral"):
        r, _ = PatchSampler([(rainy, clean)], patch=48, seed=1, **({} if aug == "flips" else {"aug": aug})).sample(64)
        vertical = (r[:, 0].max(axis=1) > 0.5).sum(axis=1) == 1       # one lit column in every row
        views[aug] = vertical.mean()
    assert views["flips"] == 1.0
    assert 0.3 < views["dihedral"] < 0.7


def test_gpu_data_packing_is_lossless(tmp_path, rng):
    """scripts/gpu/pack_data.py: clean + grey streak layer where rain = min(clean + s, 255), whole otherwise."""
    import subprocess
    import sys

    from pcnet_ros.imageio import read_rgb
    from pcnet_ros.paths import SOURCE_ROOT

    src = tmp_path / "src"
    clean = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    streak = np.zeros((20, 30), np.int16)
    streak[:, 7] = 200                                              # saturates where clean > 55
    layered = np.minimum(clean.astype(np.int16) + streak[..., None], 255).astype(np.uint8)
    coloured = clean.copy()
    coloured[3, 4] = (clean[3, 4].astype(np.int16) + (9, 0, 0)).clip(0, 255)   # not one grey layer
    coloured[5, 5] = 0                                                          # darker than clean
    for name, rainy in (("a.png", layered), ("b.png", coloured)):
        write_rgb(src / "clean" / name, clean)
        write_rgb(src / "rain" / name, rainy)
    script = str(SOURCE_ROOT / "scripts" / "gpu" / "pack_data.py")
    out = subprocess.run([sys.executable, script, "pack", str(src), str(tmp_path / "packed")],
                         capture_output=True, text=True, check=True).stdout
    assert "packed 2 pairs (1 as clean + streak layer)" in out
    subprocess.run([sys.executable, script, "unpack", str(tmp_path / "packed"), str(tmp_path / "back")], check=True)
    for name, rainy in (("a.png", layered), ("b.png", coloured)):
        np.testing.assert_array_equal(read_rgb(tmp_path / "back" / "rain" / name), rainy)
        np.testing.assert_array_equal(read_rgb(tmp_path / "back" / "clean" / name), clean)


def test_data_share_sets_how_often_each_folder_is_drawn(pair_dir, tmp_path):
    """A few in-domain pairs (the RainTrainH sample) can take a fixed share of the patches of a fine-tune."""
    from pcnet_ros.training.pairs import PatchSampler, share_weights

    w = share_weights([2, 8], [0.75, 0.25])
    assert len(w) == 10 and abs(sum(w[:2]) - 0.75) < 1e-9 and abs(sum(w[2:]) - 0.25) < 1e-9
    dark = (np.zeros((40, 40, 3), np.uint8),) * 2
    bright = (np.full((40, 40, 3), 255, np.uint8),) * 2
    r, _ = PatchSampler([dark] * 2 + [bright] * 8, patch=32, seed=3, weights=w).sample(2000)
    assert abs((r.mean(axis=(1, 2, 3)) < 0.5).mean() - 0.75) < 0.04       # by share, not by pair count (0.2)
    with pytest.raises(ValueError):
        share_weights([3], [0.5, 0.5])
    with pytest.raises(ValueError):
        share_weights([0, 3], [0.5, 0.5])                                  # a share for a folder without pairs
    with pytest.raises(SystemExit):                                        # a clear CLI error, not a traceback
        train.main(["--data", str(pair_dir), "--data-share", "0.5", "0.5", "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("flag, says", [("--data", "must hold 'rain/' and 'clean/' folders"),
                                        ("--val-data", "must hold 'rain/' and 'clean/' folders"),
                                        ("--init", "weights file not found"), ("--streaks", "no images under")])
def test_a_mistyped_input_is_a_usage_error_before_the_run_folder_is_made(pair_dir, tmp_path, capsys, flag, says):
    typo, args = str(tmp_path / "typo"), _tiny_fine_tune(pair_dir, tmp_path / "run")
    if flag == "--data":
        args[args.index("--data") + 1] = typo
    else:
        args += [flag, typo]
    with pytest.raises(SystemExit) as exit_:
        train.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert says in err and typo in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_cuda_asked_for_without_a_gpu_is_a_usage_error_before_the_run_folder_is_made(pair_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main(_tiny_fine_tune(pair_dir, tmp_path / "run") + ["--device", "cuda"])
    assert exit_.value.code == 2 and "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_export_without_any_validation_pair_is_a_usage_error(pair_dir, tmp_path, capsys):
    """6 pairs and --val-every 10 hold none out: the run would train for hours and never write --export."""
    args = _tiny_fine_tune(pair_dir, tmp_path / "run") + ["--val-every", "10"]
    with pytest.raises(SystemExit) as exit_:
        train.main(args + ["--export", str(tmp_path / "w.pth")])
    assert exit_.value.code == 2 and "--val-every 10 holds out no pair of 6" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert train.main(args + ["--steps", "2"]) == 0                    # without --export it trains, and says so
    assert "nothing is validated: only" in capsys.readouterr().out and (tmp_path / "run" / "last.pth").exists()


def test_init_weights_of_another_size_are_a_usage_error(pair_dir, tmp_path, capsys):
    args = _tiny_fine_tune(pair_dir, tmp_path / "run") + ["--init", "light"]        # the tiny model, light weights
    with pytest.raises(SystemExit) as exit_:
        train.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "pcnet-train: error:" in err and "Traceback" not in err


def test_rain_layer_is_what_was_added_and_transplants_onto_other_scenes(rng):
    """rainy = min(clean + grey rain, 255): the layer comes back exactly where nothing clipped, and where a
    channel clipped the layer keeps the least-clipped channel's difference."""
    from pcnet_ros.training.transplant import add_rain, rain_layer

    clean = rng.integers(0, 200, (24, 32, 3), dtype=np.uint8)
    clean[2, 3] = (250, 100, 40)                                      # a bright red pixel: R clips, B does not
    layer = rng.integers(0, 60, (24, 32), dtype=np.uint8)
    layer[2, 3] = 50
    rainy = add_rain(clean, layer)
    assert rainy[2, 3].tolist() == [255, 150, 90]
    np.testing.assert_array_equal(rain_layer(rainy, clean), layer)
    other = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    moved = add_rain(other, layer)
    assert (moved >= other).all() and moved.max() == 255               # rain only adds light, and clips
    grey = moved.astype(int) - other
    unclipped = moved.max(axis=2) < 255
    assert (grey[unclipped] == layer[unclipped][:, None]).all()
    with pytest.raises(ValueError):
        add_rain(other, layer[:10])
    with pytest.raises(ValueError):
        rain_layer(rainy, clean[:10])


def test_rain100l_rain_is_an_added_grey_layer():
    """The premise of transplanting: on real Rain100L pairs, clean + rain_layer gives back the rainy image."""
    from pcnet_ros.imageio import read_rgb
    from pcnet_ros.training.transplant import add_rain, rain_layer

    for rp, cp in list_pairs(shared_or_skip("rain100l-train"))[:3]:
        rainy, clean = read_rgb(rp), read_rgb(cp)
        back = add_rain(clean, rain_layer(rainy, clean))
        assert np.abs(back.astype(int) - rainy).max() <= 1 and (back == rainy).mean() > 0.999


def test_sampler_transplants_real_rain_onto_clean_patches(pair_dir, tmp_path):
    from pcnet_ros.training.pairs import PatchSampler
    from pcnet_ros.training.transplant import rain_layer

    bare = [(c, c) for _, c in load_pairs(list_pairs(pair_dir))]       # scenes without rain of their own
    donor_r, donor_c = bare[0][1].copy(), bare[0][1]
    donor_r[:, ::7] = np.minimum(donor_c[:, ::7].astype(int) + 90, 255)  # vertical grey streaks
    layers = [rain_layer(donor_r, donor_c)]

    def draw(prob: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return PatchSampler(bare, patch=32, seed=seed, rain_layers=layers, transplant_prob=prob).sample(200)

    r, c = draw(1.0, 5)
    d = np.round((r - c) * 255).astype(int)
    unclipped = r.max(axis=1) < 1.0
    assert (d >= 0).all() and (d.max(axis=1) - d.min(axis=1))[unclipped].max() <= 1   # added, grey where not clipped
    assert (d.max(axis=(1, 2, 3)) > 0).all()                                    # every patch got rain
    np.testing.assert_array_equal(draw(1.0, 5)[0], r)                           # reproducible per seed
    half = (np.abs(draw(0.5, 6)[0] - draw(0.5, 6)[1]).max(axis=(1, 2, 3)) > 0).mean()
    assert 0.35 < half < 0.65
    with pytest.raises(ValueError):
        PatchSampler(bare, patch=32, transplant_prob=0.5)


def test_training_with_transplanted_rain_records_it_and_keeps_held_out_pairs_out(pair_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(pair_dir), "--out", str(out), "--batch", "2", "--patch", "32", "--model-size", "tiny",
              "--eval-every", "5", "--quiet", "--device", "cpu", "--steps", "5", "--val-every", "3"]
    assert train.main(common + ["--transplant-from", str(pair_dir), "--transplant-prob", "0.5"]) == 0
    meta = torch.load(out / "best.pth", weights_only=True)["meta"]
    assert meta["transplant_from"] == [str(pair_dir)] and meta["transplant_prob"] == 0.5
    spelled = tmp_path / "spelled"                           # the same folder spelled another way is the same donor
    respelled = [{str(pair_dir): f"{pair_dir}/", str(out): str(spelled)}.get(a, a) for a in common]
    assert train.main(respelled + ["--transplant-from", f"{pair_dir}/../{pair_dir.name}",
                                   "--transplant-prob", "0.5"]) == 0
    assert torch.load(spelled / "best.pth", weights_only=True)["meta"]["transplant_prob"] == 0.5
    with pytest.raises(SystemExit):                          # a donor must be a --data folder, split like it
        train.main(common + ["--transplant-from", str(tmp_path / "elsewhere"), "--transplant-prob", "0.5"])
    with pytest.raises(SystemExit):
        train.main(common + ["--transplant-from", str(pair_dir)])
    with pytest.raises(SystemExit):
        train.main(common + ["--transplant-from", str(pair_dir), "--transplant-prob", "1.5"])


def test_progress_bars_written_to_a_log_redraw_rarely(tmp_path):
    """Long jobs under nohup wrote a redraw ten times a second into their logs; a file gets one per 30 s."""
    import subprocess
    import sys

    code = ("import time\nfrom pcnet_ros.progress import progress_bar\n"
            "for _ in progress_bar(range(200)):\n    time.sleep(0.005)\n")
    with open(tmp_path / "log", "w") as log:
        subprocess.run([sys.executable, "-c", code], stderr=log, check=True)
    text = (tmp_path / "log").read_bytes()               # bytes: reading text turns every \r into \n
    redraws = text.count(b"\r")
    assert 1 <= redraws <= 3, repr(text)                       # the first and the final draw, not one per 0.1 s
    bare = subprocess.run([sys.executable, "-c", code.replace("from pcnet_ros.progress import progress_bar",
                                                              "from tqdm import tqdm as progress_bar")],
                          capture_output=True, check=True).stderr
    assert bare.count(b"\r") > 5                               # what plain tqdm writes in the same second


def test_compute_curve_reads_the_lineage_oldest_first_and_fits_dB_per_doubling():
    """scripts/compute_curve.py: each file's pixel-samples add up along the chain, and the fit recovers a slope."""
    import importlib.util

    from pcnet_ros.paths import SOURCE_ROOT

    spec = importlib.util.spec_from_file_location("compute_curve", SOURCE_ROOT / "scripts" / "compute_curve.py")
    cc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cc)
    meta = {"pixel_samples": 4e9, "val_psnr_y": 35.0,
            "fine_tuned_from": {"pixel_samples": 2e9, "val_psnr_y": 34.7,
                                "fine_tuned_from": {"pixel_samples": 2e9, "val_psnr_y": 34.4}}}
    assert cc.curve_points(meta) == [(2e9, 34.4), (4e9, 34.7), (8e9, 35.0)]
    assert abs(cc.doubling_slope(cc.curve_points(meta), 0) - 0.3) < 1e-9
    assert abs(cc.doubling_slope(cc.curve_points(meta), 3e9) - 0.3) < 1e-9      # the two recent points only
