import cv2
import numpy as np
import pytest

from conftest import assert_same_to_a_grey_level, file_size_limit, scene
from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.tools import derain


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def test_folder_with_residue_and_compare(tmp_path, rng):
    src = tmp_path / "in"
    for i, shape in enumerate([(30, 41, 3), (17, 22, 3)]):
        _write(src / f"f{i}.png", rng.integers(0, 256, size=shape, dtype=np.uint8))
    (src / "notes.txt").write_text("not an image")
    rc = derain.main([str(src), str(tmp_path / "out"), "--random-weights", "--backend", "eager", "--residue",
                      "--compare", "--device", "cpu"])
    assert rc == 0
    for i, (h, w) in enumerate([(30, 41), (17, 22)]):
        assert cv2.imread(str(tmp_path / "out" / f"f{i}.png")).shape == (h, w, 3)
        assert cv2.imread(str(tmp_path / "out" / f"f{i}_residue.png")).shape == (h, w, 3)
        assert cv2.imread(str(tmp_path / "out" / f"f{i}_compare.jpg")).shape[1] > 3 * w


def test_single_file_and_glob(tmp_path, rng):
    _write(tmp_path / "a.png", rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8))
    _write(tmp_path / "b.jpg", rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8))
    assert derain.main([str(tmp_path / "a.png"), str(tmp_path / "one.png"), "--random-weights",
                        "--backend", "eager"]) == 0
    assert (tmp_path / "one.png").is_file()
    assert derain.main([str(tmp_path / "*.jpg"), str(tmp_path / "g"), "--random-weights", "--backend", "eager"]) == 0
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["b.jpg"]


def test_a_glob_over_camera_folders_keeps_frames_of_one_name_apart(tmp_path, rng):
    """cam_front/0001.png and cam_rear/0001.png once both went to OUT/0001.png: the rear frame overwrote the front."""
    frames = {cam: rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8) for cam in ("cam_front", "cam_rear")}
    for cam, img in frames.items():
        _write(tmp_path / "drive" / cam / "0001.png", img)
    assert derain.main([str(tmp_path / "drive" / "*" / "0001.png"), str(tmp_path / "out"), "--random-weights",
                        "--backend", "eager", "--residue", "--device", "cpu"]) == 0
    outs = {cam: cv2.imread(str(tmp_path / "out" / cam / "0001.png")) for cam in frames}
    assert all((tmp_path / "out" / cam / "0001_residue.png").is_file() for cam in frames)
    assert not np.array_equal(outs["cam_front"], outs["cam_rear"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cam_front", "cam_rear"]


def test_two_inputs_that_would_write_one_file_are_refused_before_any_work(tmp_path, capsys, rng):
    _write(tmp_path / "in" / "a.png", rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    _write(tmp_path / "in" / "a.jpg", rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    args = [str(tmp_path / "in"), str(tmp_path / "out"), "--random-weights", "--backend", "eager"]
    assert derain.main(args + ["--residue"]) == 2
    err = capsys.readouterr().err
    assert "would both write" in err and "a_residue.png" in err, err
    assert not (tmp_path / "out").exists()
    assert derain.main(args) == 0                   # without --residue the two clean images have their own names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "a.png"]


def test_max_side_derains_a_large_image_downscaled_at_full_size(tmp_path, rng):
    from pcnet_ros.core.weights import build_model
    from pcnet_ros.imageio import read_any

    _write(tmp_path / "big.png", scene(rng, 96, 128))
    assert derain.main([str(tmp_path / "big.png"), str(tmp_path / "out.png"), "--max-side", "48",
                        "--backend", "eager", "--device", "cpu"]) == 0
    img, out = read_any(tmp_path / "big.png"), read_any(tmp_path / "out.png")
    engine = DerainEngine(build_model("light")[0], device="cpu")
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, engine.derain_downscaled(img, 48, bgr=True).clean)


def test_clear_errors(tmp_path, capsys):
    assert derain.main([str(tmp_path / "nothing*"), str(tmp_path / "o")]) == 2
    assert "no images found" in capsys.readouterr().err
    _write(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    assert derain.main([str(tmp_path / "x.png"), str(tmp_path / "o"), "--weights", str(tmp_path / "missing.pth")]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_outputs_that_cannot_be_written_fail_loudly(tmp_path, capsys):
    """Writing under /proc once printed 'derained 1 image(s)' with status 0 and no file."""
    _write(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    assert derain.main([str(tmp_path / "x.png"), "/proc/pcnet_out.png", "--random-weights", "--backend", "eager"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcnet-derain: ") and "/proc/pcnet_out.png" in err


def test_never_overwrites_its_inputs(tmp_path, capsys, rng):
    _write(tmp_path / "in" / "a.png", rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    before = (tmp_path / "in" / "a.png").read_bytes()
    assert derain.main([str(tmp_path / "in"), str(tmp_path / "in"), "--random-weights", "--backend", "eager"]) == 2
    assert "would overwrite input" in capsys.readouterr().err
    assert (tmp_path / "in" / "a.png").read_bytes() == before


def test_an_existing_file_as_output_folder_is_refused(tmp_path, capsys):
    _write(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    _write(tmp_path / "in" / "b.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "out.txt").write_text("a file")
    assert derain.main([str(tmp_path / "in"), str(tmp_path / "out.txt"), "--random-weights", "--backend", "eager"]) == 2
    assert "is an existing file" in capsys.readouterr().err


def test_16_bit_input_to_jpeg_is_scaled_not_clipped(tmp_path, rng):
    """A 16-bit PNG written as .jpg once came out 99% white."""
    img = rng.integers(10000, 50000, size=(16, 16, 3), dtype=np.uint16)
    _write(tmp_path / "deep.png", img)
    assert derain.main([str(tmp_path / "deep.png"), str(tmp_path / "out.jpg"), "--device", "cpu"]) == 0
    out = cv2.imread(str(tmp_path / "out.jpg"))
    assert out.dtype == np.uint8 and (out == 255).mean() < 0.05
    assert abs(float(out.mean()) - float(img.mean()) / 257) < 60        # same brightness, in 8 bits


def test_flip_average_flags_write_the_flip_averaged_frame(tmp_path, rng):
    from pcnet_ros.core.weights import build_model

    img = rng.integers(0, 256, size=(24, 37, 3), dtype=np.uint8)
    _write(tmp_path / "a.png", img)
    flags = {"flip.png": ["--flip-average"], "both.png": ["--flip-average", "--flip-axes", "both"], "plain.png": []}
    for name, extra in flags.items():
        argv = [str(tmp_path / "a.png"), str(tmp_path / name), "--backend", "eager", "--device", "cpu"]
        assert derain.main(argv + extra) == 0
    model = build_model("light")[0]
    got = {n: cv2.imread(str(tmp_path / n)) for n in flags}
    for name, axes in (("flip.png", "horizontal"), ("both.png", "both")):
        want = DerainEngine(model, device="cpu", flip_average=True, flip_axes=axes).derain(img, bgr=True).clean
        assert_same_to_a_grey_level(got[name], want)
    assert np.abs(got["plain.png"].astype(int) - got["flip.png"]).max() > 1
    assert np.abs(got["both.png"].astype(int) - got["flip.png"]).max() > 1


def test_an_inference_failure_is_one_line_naming_the_images(tmp_path, capsys, monkeypatch, rng):
    for name in ("a.png", "b.png"):
        _write(tmp_path / "in" / name, rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))

    def out_of_memory(*a, **k):
        raise RuntimeError("CUDA out of memory")
    monkeypatch.setattr(DerainEngine, "derain_batch", out_of_memory)
    assert derain.main([str(tmp_path / "in"), str(tmp_path / "out"), "--random-weights", "--backend", "eager",
                        "--batch", "2"]) == 2
    err = capsys.readouterr().err                       # after the progress bar's lines
    [line] = [line for line in err.splitlines() if line.startswith("pcnet-derain:")]
    assert line.startswith("pcnet-derain: inference failed on ") and "a.png and 1 more" in line
    assert "out of memory" in line and "Traceback" not in err
    assert line.endswith("(0 image(s) written before it; a smaller --batch or a --max-side needs less memory)")


def test_a_write_that_runs_out_of_room_raises_and_leaves_no_half_file(tmp_path, rng):
    """A full disk, made real with a file size limit: OpenCV's TIFF writer leaves the bytes that fitted."""
    from pcnet_ros.imageio import ImageIOError, write_image

    img = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)     # 360 KB
    with file_size_limit(50_000):
        for name in ("out.tif", "out.png"):
            with pytest.raises(ImageIOError, match=f"cannot write image .*{name}"):
                write_image(tmp_path / name, img)
            assert not (tmp_path / name).exists(), name
    assert write_image(tmp_path / "out.tif", img).stat().st_size > 50_000


def test_images_too_large_for_memory_are_skipped_before_decoding(tmp_path, capsys, monkeypatch, rng):
    """On a CPU running out of memory does not raise: the OOM killer ends the run without a word. A file whose
    header claims 20000x20000 (a few hundred bytes) is skipped unread; the others are derained."""
    from conftest import forged_jpeg

    _write(tmp_path / "in" / "a.png", rng.integers(0, 256, size=(16, 24, 3), dtype=np.uint8))
    (tmp_path / "in" / "bomb.jpg").write_bytes(forged_jpeg(20000, 20000))
    decoded = []
    real_imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: decoded.append(len(buf)) or real_imdecode(buf, flags))
    assert derain.main([str(tmp_path / "in"), str(tmp_path / "out"), "--random-weights", "--backend", "eager",
                        "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "skipping" in out and "bomb.jpg: 20000x20000 would need about" in out and "--max-side" in out
    assert decoded == [(tmp_path / "in" / "a.png").stat().st_size]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_the_memory_budget_counts_max_side_and_formats_without_a_header_check(tmp_path, capsys, rng):
    """64x64 needs about 3 MB at full size and 0.4 MB run at 16 px: over and under a 1 MB budget. A BMP's size
    is not read from its header, so it is checked once decoded."""
    for name in ("a.png", "b.bmp"):
        _write(tmp_path / "in" / name, rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    argv = [str(tmp_path / "in"), "--random-weights", "--backend", "eager", "--device", "cpu",
            "--max-frame-memory-mb", "1"]
    assert derain.main(argv[:1] + [str(tmp_path / "full")] + argv[1:]) == 1
    out = capsys.readouterr().out
    assert "a.png: 64x64 would need about 3 MB, over the 1 MB budget" in out and "b.bmp: 64x64" in out
    assert not (tmp_path / "full").exists() or not any((tmp_path / "full").iterdir())
    assert derain.main(argv[:1] + [str(tmp_path / "small")] + argv[1:] + ["--max-side", "16"]) == 0
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["a.png", "b.bmp"]


def test_a_batch_is_run_before_it_would_outgrow_the_memory_budget(tmp_path, monkeypatch, rng):
    """Four same-size images, batch 4, a budget one image fits and two do not: four batches of one, all
    written, each what one batch of four gives."""
    for i in range(4):
        _write(tmp_path / "in" / f"f{i}.png", rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8))
    sizes = []
    real = DerainEngine.derain_batch
    monkeypatch.setattr(DerainEngine, "derain_batch", lambda self, frames, **k: sizes.append(len(frames))
                        or real(self, frames, **k))
    common = ["--backend", "eager", "--device", "cpu", "--batch", "4"]
    assert derain.main([str(tmp_path / "in"), str(tmp_path / "b1"), *common, "--max-frame-memory-mb", "1"]) == 0
    assert sizes == [1, 1, 1, 1]        # 36x36 needs about 0.9 MB
    sizes.clear()
    assert derain.main([str(tmp_path / "in"), str(tmp_path / "b4"), *common, "--max-frame-memory-mb", "64"]) == 0
    assert sizes == [4]
    for i in range(4):
        assert_same_to_a_grey_level(cv2.imread(str(tmp_path / "b1" / f"f{i}.png")),
                                    cv2.imread(str(tmp_path / "b4" / f"f{i}.png")))


def test_the_default_budget_is_the_memory_the_host_has_free():
    from pcnet_ros.tools.common import available_memory_mb

    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemTotal:"))
    assert 0 < available_memory_mb() <= total


@pytest.mark.parametrize("flag", ["--batch", "--threads", "--max-side", "--max-frame-memory-mb"])
def test_engine_flags_refuse_negative_counts(tmp_path, capsys, flag):
    """--max-side -1 ran the model on a 1x1 copy of each image (the output differed from a full-size run by 43
    levels on average, with exit status 0); each count flag now stops at parsing with a usage error."""
    _write(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as stop:
        derain.main([str(tmp_path / "x.png"), str(tmp_path / "o.png"), flag, "-1"])
    assert stop.value.code == 2 and f"argument {flag}: -1 is out of range; give 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
