import pytest
import torch

from pcnet_ros.core.model import CleanOutput, count_parameters, PCNet, SIZE_MULTIPLE


def test_default_parameter_count_matches_paper_release():
    assert count_parameters(PCNet()) == 627_462


def test_state_dict_keys_follow_authors_layout():
    sd = PCNet().state_dict()
    for key, shape in {
        "model.image_fea.weight": (32, 3, 3, 3),
        "model.shallow_fea_B.depth_conv.weight": (32, 1, 3, 3),
        "model.shallow_fea_B.point_conv.bias": (32,),
        "model.crm.body.0.down_R.weight": (32, 32, 3, 3),
        "model.crm.body.19.body.2.CA.conv_du.0.weight": (8, 32, 1, 1),
        "model.crm.body.7.lfsfb.FFU.weight": (32, 32, 3, 3),
        "model.crm.body.3.CA_R.conv_du.2.weight": (32, 8, 1, 1),
        "model.UP_B.0.weight": (32, 32, 3, 3),
        "model.rrb.recon_B.weight": (3, 32, 3, 3),
        "model.rrb.recon_R.weight": (3, 32, 3, 3),
        "model.rrb.conv_du.0.weight": (32, 3, 1, 1),
    }.items():
        assert tuple(sd[key].shape) == shape, key
    assert len(sd) == 940
    assert not any(k.startswith("module.") for k in sd)


def test_prelu_is_one_shared_parameter_like_the_release():
    m = PCNet()
    assert m.model.UP_B[1] is m.model.crm.body[5].act1 is m.model.crm.body[0].body[0].body[1]


def test_forward_shapes_and_outputs():
    m = PCNet(n_feat=16, num_crb=2, num_rcab=1).eval()
    x = torch.rand(2, 3, 8 * SIZE_MULTIPLE, 5 * SIZE_MULTIPLE)
    with torch.inference_mode():
        clean, rain = m(x)
    assert clean.shape == x.shape and rain.shape == x.shape
    assert torch.isfinite(clean).all() and torch.isfinite(rain).all()


def test_clean_path_equals_forward_and_skips_the_rain_reconstruction():
    """Inference runs B alone: bit-identical to the full forward's B, and the R upsampling and
    re-rendering (training-only) are never evaluated."""
    torch.manual_seed(0)
    m = PCNet(n_feat=16, num_crb=2, num_rcab=1).eval()
    called = []
    for name in ("UP_R", "rrb.recon_R", "rrb.conv_du", "UP_B", "rrb.recon_B"):
        m.model.get_submodule(name).register_forward_hook(lambda *_, name=name: called.append(name))
    x = torch.rand(2, 3, 8 * SIZE_MULTIPLE, 5 * SIZE_MULTIPLE)
    with torch.inference_mode():
        full = m(x)[0]
        called.clear()
        clean = m.clean(x)
    assert torch.equal(clean, full)
    assert called == ["UP_B", "rrb.recon_B"]


def test_the_exported_form_gives_the_same_numbers_to_rounding():
    """What the exporters trace (CleanOutput) is each CRB rewritten to fuse better: another order of
    operations, the same function."""
    torch.manual_seed(0)
    m = PCNet(n_feat=16, num_crb=3, num_rcab=1).eval()
    with torch.no_grad():
        m.model.crm.body[0].act1.weight.fill_(-0.3)          # a negative slope too: PReLU, not a ReLU shortcut
    x = torch.rand(2, 3, 8 * SIZE_MULTIPLE, 5 * SIZE_MULTIPLE)
    with torch.inference_mode():
        full = m(x)[0]
        exported_form = CleanOutput(m)(x)
    assert not torch.equal(exported_form, full)
    torch.testing.assert_close(exported_form, full, rtol=0, atol=1e-5)


def test_openvino_runs_fewer_layers_for_the_exported_form():
    """The point of the rewrite: OpenVINO fuses the PReLU after each CRB's up-convolution into the residual
    add, and the exchange into fewer elementwise passes, so fewer layers run a frame."""
    ov = pytest.importorskip("openvino")
    import collections
    import warnings

    torch.manual_seed(0)
    crbs = 3
    m = PCNet(n_feat=16, num_crb=crbs, num_rcab=1).eval()
    shape = (1, 3, 160, 160)
    executed = []
    for module in (CleanOutput(m, fusable=False), CleanOutput(m)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")              # torch.jit.trace's deprecation, as in export.py
            graph = ov.convert_model(module, example_input=torch.zeros(shape), input=[ov.PartialShape(shape)])
        request = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
                                          ).create_infer_request()
        request.infer({0: torch.rand(shape).numpy()})
        executed.append(collections.Counter(p.node_type for p in request.profiling_info
                                            if p.status == p.Status.EXECUTED))
    authors, exported = executed
    assert authors["LeakyRelu"] - exported["LeakyRelu"] == crbs
    assert sum(exported.values()) <= sum(authors.values()) - crbs
