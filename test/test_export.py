"""pcnet-export: every exported graph is run once and must match torch."""
import pytest
import torch

from pcnet_ros.tools import export


@pytest.mark.parametrize("args, expect", [                  # the dynamic fp32 ONNX graph: the test below
    (["--format", "onnx", "--size", "64x96", "--fp16"], "64x96, fp16"),
    (["--format", "openvino"], "dynamic N, H, W, fp32"),
])
def test_exports_match_torch(tmp_path, capsys, args, expect):
    pytest.importorskip("onnxruntime" if "onnx" in args else "openvino")
    out = tmp_path / ("pcnet.xml" if "openvino" in args else "pcnet.onnx")
    assert export.main(args + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert expect in text and "max |diff|" in text
    assert out.is_file() and out.stat().st_size > 100_000
    if "openvino" in args:
        assert out.with_suffix(".bin").is_file()


def test_a_dynamic_onnx_graph_matches_torch_and_runs_any_multiple_of_four(tmp_path, capsys, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx

    from pcnet_ros.core.model import PCNet

    # A one-CRB PCNet: the same layers and graph form as the shipped one, exported in seconds instead of 20-45
    # (the shipped weights go through the same exporter in test_exports_match_torch).
    torch.manual_seed(0)
    small = PCNet(num_crb=1, num_rcab=1).eval()
    monkeypatch.setattr(export, "build_model", lambda weights: (small, {"step": 7}))
    monkeypatch.setenv("PCNET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "pcnet.onnx"
    assert export.main(["--out", str(tmp_path / "first.onnx")]) == 0
    # the second export of the same weights is the cached graph (the exporter takes ~20 s), byte for byte
    monkeypatch.setattr(export.export, "onnx_bytes", lambda *a, **k: pytest.fail("exported again"))
    assert export.main(["--out", str(out)]) == 0
    assert out.read_bytes() == (tmp_path / "first.onnx").read_bytes()
    text = capsys.readouterr().out
    assert "dynamic N, H, W, fp32" in text and "weights step 7" in text
    assert onnx.load(str(out)).opset_import[0].version == 17    # what TensorRT 8.6 (JetPack 6.0) still reads
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["rainy"]
    assert [o.name for o in sess.get_outputs()] == ["clean"]   # the training-only re-rendering is left out
    for shape in [(1, 3, 36, 52), (2, 3, 64, 40)]:
        clean = sess.run(["clean"], {"rainy": np.random.rand(*shape).astype(np.float32)})[0]
        assert clean.shape == shape


@pytest.mark.parametrize("fmt, name", [("onnx", "pcnet.onnx"), ("openvino", "pcnet.xml")])
def test_an_export_that_fails_its_check_leaves_no_file(tmp_path, capsys, monkeypatch, fmt, name):
    """A graph that does not match torch once stayed on disk beside the error, where a launch file would load it."""
    pytest.importorskip("onnxruntime" if fmt == "onnx" else "openvino")
    from pcnet_ros.core.model import PCNet

    torch.manual_seed(0)
    small = PCNet(num_crb=1, num_rcab=1).eval()
    monkeypatch.setattr(export, "build_model", lambda weights: (small, {"step": 7}))
    monkeypatch.setenv("PCNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(export, "TOLERANCE", {False: -1.0, True: -1.0})   # any difference at all fails the check
    assert export.main(["--format", fmt, "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert "differs from torch by" in err and "nothing was written" in err, err
    assert list(tmp_path.glob("pcnet*")) == []


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main(["--out", str(tmp_path / "x.onnx"), "--size", "30x30"])    # not multiples of 4
    assert "multiples of 4" in capsys.readouterr().err
    assert export.main(["--format", "openvino", "--out", str(tmp_path / "x.onnx")]) == 2
    assert export.main(["--weights", str(tmp_path / "none.pth"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_a_missing_exporter_package_is_named(tmp_path, capsys, monkeypatch):
    """Without onnxscript, torch's exporter fails deep inside; say what to install instead."""
    import importlib.util

    from pcnet_ros.core.backends import BackendError
    from pcnet_ros.core.engine import DerainEngine
    from pcnet_ros.core.model import PCNet

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    monkeypatch.setenv("PCNET_CACHE_DIR", str(tmp_path))              # nothing cached to fall back on
    assert export.main(["--out", str(tmp_path / "x.onnx")]) == 2
    assert "pip install onnx onnxscript" in capsys.readouterr().err
    if importlib.util.find_spec("onnxruntime"):
        with pytest.raises(BackendError, match="onnxscript"):
            DerainEngine(PCNet(n_feat=8, num_crb=1, num_rcab=1), device="cpu", backend="onnxruntime")
