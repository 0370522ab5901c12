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
        clean = CleanOutput(m)(x)
    assert torch.equal(clean, full)
    assert called == ["UP_B", "rrb.recon_B"]
