import argparse
import os
from pathlib import Path
import re
import subprocess
import sys

import pytest
import torch

from pcnet_ros.core.model import PCNet
from pcnet_ros.core.weights import build_model, load_weights, resolve_weights, save_weights, WeightsError
from pcnet_ros.paths import SOURCE_ROOT


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_roundtrip_authors_layout(tmp_path, tiny_model):
    path = tmp_path / "w.pth"
    save_weights(tiny_model, path, {"note": "x"})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "meta"}  # weights only: no optimizer state
    other = PCNet(n_feat=16, num_crb=2, num_rcab=1)
    assert not _same(other, tiny_model)
    assert load_weights(other, path) == {"note": "x"}
    assert _same(other, tiny_model)


@pytest.mark.parametrize("wrap", ["bare", "module", "checkpoint_with_optimizer"])
def test_accepts_published_checkpoint_shapes(tmp_path, tiny_model, wrap):
    sd = tiny_model.state_dict()
    if wrap == "bare":
        obj = sd
    elif wrap == "module":
        obj = {"state_dict": {"module." + k: v for k, v in sd.items()}}
    else:
        obj = {"epoch": 3, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}
    torch.save(obj, tmp_path / "model_best.pth")
    other = PCNet(n_feat=16, num_crb=2, num_rcab=1)
    load_weights(other, tmp_path / "model_best.pth")
    assert _same(other, tiny_model)


def test_strict_errors_name_keys(tmp_path, tiny_model):
    sd = dict(tiny_model.state_dict())
    sd.pop("model.rrb.recon_B.weight")
    sd["model.extra.weight"] = torch.zeros(1)
    sd["model.image_fea.weight"] = torch.zeros(1, 2, 3, 3)
    torch.save({"state_dict": sd}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as err:
        load_weights(PCNet(n_feat=16, num_crb=2, num_rcab=1), tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing keys: model.rrb.recon_B.weight" in msg
    assert "unexpected keys: model.extra.weight" in msg
    assert "model.image_fea.weight: file (1, 2, 3, 3) vs model (16, 3, 3, 3)" in msg


def test_wrong_architecture_is_refused(tmp_path, tiny_model):
    save_weights(tiny_model, tmp_path / "small.pth")
    with pytest.raises(WeightsError, match="missing keys"):
        load_weights(PCNet(), tmp_path / "small.pth")


def test_missing_and_corrupt_files(tmp_path, tiny_model):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tiny_model, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage" * 100)
    save_weights(tiny_model, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    for bad in ("junk.pth", "cut.pth"):
        with pytest.raises(WeightsError, match="cannot read weights file") as got:
            load_weights(tiny_model, tmp_path / bad)
        assert "\n" not in str(got.value) and "\x1b" not in str(got.value)   # one line, without torch's colours
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_weights(tiny_model, tmp_path / "list.pth")


def test_a_checkpoint_that_pickles_objects_is_refused_by_name_and_the_readme_fix_loads(tmp_path, tiny_model):
    """Research checkpoints often carry their argparse options; weights_only refuses them. The error names the
    object and never advises weights_only=False; the README's one-liner makes a file that loads."""
    sd = tiny_model.state_dict()                       # already in the authors' "model." layout
    torch.save({"state_dict": sd, "epoch": 3, "args": argparse.Namespace(lr=4e-4)}, tmp_path / "in.pth")
    with pytest.raises(WeightsError) as got:
        load_weights(tiny_model, tmp_path / "in.pth")
    msg = str(got.value)
    assert "argparse.Namespace" in msg and "never runs code" in msg and "\n" not in msg and "weights_only" not in msg
    readme = (SOURCE_ROOT / "README.md").read_text()
    [fix] = re.findall(r'`(python -c "import torch; c = torch.load[^`]+)`', readme)
    subprocess.run(fix, shell=True, cwd=tmp_path, check=True,
                   env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    fresh = PCNet(n_feat=16, num_crb=2, num_rcab=1)
    load_weights(fresh, tmp_path / "out.pth")
    assert _same(fresh, tiny_model)


def test_never_silently_random():
    with pytest.raises(WeightsError, match="random weights"):
        build_model(None)
    model, meta = build_model(None, allow_random=True, n_feat=8, num_crb=1, num_rcab=1)
    assert meta["random"] is True


def test_unknown_bundled_or_path(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(str(tmp_path / "missing.pth"))
