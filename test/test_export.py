"""pcnet-export: every exported graph is run once and must match torch."""
import pytest

from pcnet_ros.tools import export


@pytest.mark.parametrize("args, expect", [
    (["--format", "onnx"], "dynamic N, H, W, fp32"),
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


def test_a_dynamic_onnx_graph_runs_any_multiple_of_four(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    out = tmp_path / "pcnet.onnx"
    assert export.main(["--out", str(out)]) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["rainy"]
    assert [o.name for o in sess.get_outputs()] == ["clean"]   # the training-only re-rendering is left out
    for shape in [(1, 3, 36, 52), (2, 3, 64, 40)]:
        clean = sess.run(["clean"], {"rainy": np.random.rand(*shape).astype(np.float32)})[0]
        assert clean.shape == shape


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main(["--out", str(tmp_path / "x.onnx"), "--size", "30x30"])    # not multiples of 4
    assert "multiples of 4" in capsys.readouterr().err
    assert export.main(["--format", "openvino", "--out", str(tmp_path / "x.onnx")]) == 2
    assert export.main(["--weights", str(tmp_path / "none.pth"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "weights file not found" in capsys.readouterr().err
