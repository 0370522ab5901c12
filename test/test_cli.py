import cv2
import numpy as np

from pcnet_ros import cli


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def test_folder_with_residue_and_compare(tmp_path, rng):
    src = tmp_path / "in"
    for i, shape in enumerate([(30, 41, 3), (17, 22, 3)]):
        _write(src / f"f{i}.png", rng.integers(0, 256, size=shape, dtype=np.uint8))
    (src / "notes.txt").write_text("not an image")
    rc = cli.main([str(src), str(tmp_path / "out"), "--random-weights", "--residue", "--compare", "--device", "cpu"])
    assert rc == 0
    for i, (h, w) in enumerate([(30, 41), (17, 22)]):
        assert cv2.imread(str(tmp_path / "out" / f"f{i}.png")).shape == (h, w, 3)
        assert cv2.imread(str(tmp_path / "out" / f"f{i}_residue.png")).shape == (h, w, 3)
        assert cv2.imread(str(tmp_path / "out" / f"f{i}_compare.jpg")).shape[1] > 3 * w


def test_single_file_and_glob(tmp_path, rng):
    _write(tmp_path / "a.png", rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8))
    _write(tmp_path / "b.jpg", rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8))
    assert cli.main([str(tmp_path / "a.png"), str(tmp_path / "one.png"), "--random-weights"]) == 0
    assert (tmp_path / "one.png").is_file()
    assert cli.main([str(tmp_path / "*.jpg"), str(tmp_path / "g"), "--random-weights"]) == 0
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["b.jpg"]


def test_clear_errors(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nothing*"), str(tmp_path / "o")]) == 2
    assert "no images found" in capsys.readouterr().err
    _write(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    assert cli.main([str(tmp_path / "x.png"), str(tmp_path / "o"), "--weights", str(tmp_path / "missing.pth")]) == 2
    assert "weights file not found" in capsys.readouterr().err
