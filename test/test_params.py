"""The parameter table is the one source: the shipped params file, the README table and the checks follow it."""
import pytest
import yaml

from pcnet_ros.ros import params
from ros_harness import ROOT


def test_shipped_params_file_is_generated_from_the_table():
    assert (ROOT / "config" / "pcnet.yaml").read_text() == params.yaml_text(), \
        "regenerate: python -m pcnet_ros.ros.params --yaml > config/pcnet.yaml"
    shipped = yaml.safe_load(params.yaml_text())["/**"]["ros__parameters"]
    assert shipped == {p.name: p.default for p in params.PARAMS}


def test_readme_parameter_table_is_generated_from_the_table():
    assert params.markdown_table() in (ROOT / "README.md").read_text(), \
        "regenerate: python -m pcnet_ros.ros.params --markdown, and paste it into README.md"


def test_defaults_pass_their_own_checks():
    params.check_all({p.name: p.default for p in params.PARAMS})


@pytest.mark.parametrize("name, value, message", [
    ("residue_mode", "bogus", "residue_mode must be one of positive, signed"),
    ("max_input_size", -1, "max_input_size must be >= 0"),
    ("max_input_size", 2.5, "max_input_size must be an integer"),
    ("enabled", "yes", "enabled must be a bool"),
    ("device", "cuda", "device is read-only"),
])
def test_run_time_changes_are_checked(name, value, message):
    assert message in params.check_change(name, value)


def test_run_time_changes_that_are_fine():
    assert params.check_change("max_input_size", 640) is None
    assert params.check_change("use_sim_time", True) is None      # not ours: rclpy handles it
    assert set(params.RUNTIME_NAMES) == {"enabled", "publish_residue", "publish_rain_level", "jpeg_quality",
                                         "residue_mode", "max_input_size",
                                         "oversize_policy", "max_frame_memory_mb"}


def test_changes_are_all_or_nothing_and_static_ones_only_where_allowed():
    """The running node refuses static parameters; a managed node that is not configured takes them (hint None),
    still checked one by one and against each other, and a refused set leaves every value as it was."""
    base = {p.name: p.default for p in params.PARAMS}
    new = params.changed_values(base, [("max_input_size", 640), ("use_sim_time", True)])
    assert new["max_input_size"] == 640 and base["max_input_size"] == 1920 and "use_sim_time" not in new
    with pytest.raises(params.ConfigError, match="device is read-only: restart the node"):
        params.changed_values(base, [("max_input_size", 640), ("device", "cuda")])
    new = params.changed_values(base, [("device", "cuda"), ("warmup_sizes", "64x48")], static_hint=None)
    assert (new["device"], new["warmup_sizes"]) == ("cuda", "64x48")
    with pytest.raises(params.ConfigError, match="warmup_sizes must be WIDTHxHEIGHT"):
        params.changed_values(base, [("warmup_sizes", "64 by 48")], static_hint=None)
    with pytest.raises(params.ConfigError, match="clean and residue images would share one topic"):
        params.changed_values(base, [("residue_suffix", "derained")], static_hint=None)
    assert base == {p.name: p.default for p in params.PARAMS}


def test_warmup_sizes_are_width_by_height_lists():
    assert params.parse_sizes("") == []
    assert params.parse_sizes("1280x720, 640 X 480,") == [(1280, 720), (640, 480)]


@pytest.mark.parametrize("text", ["640by480", "640x", "0x480", "640x480x3", "16385x2", "-640x480"])
def test_bad_warmup_sizes_stop_the_start(text):
    values = {p.name: p.default for p in params.PARAMS} | {"warmup_sizes": text}
    with pytest.raises(params.ConfigError, match="warmup_sizes must be WIDTHxHEIGHT"):
        params.check_all(values)
