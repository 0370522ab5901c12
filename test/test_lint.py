"""ament_flake8, as `colcon test` runs it in a ROS 2 workspace, with this package's setup.cfg [flake8] section."""
from ament_flake8.main import main_with_errors

from ros_harness import ROOT


def test_flake8():
    paths = [str(ROOT / p) for p in ("pcnet_ros", "test", "launch", "scripts", "setup.py")]
    rc, errors = main_with_errors(argv=["--config", str(ROOT / "setup.cfg"), *paths])
    assert rc == 0, f"{len(errors)} style errors:\n" + "\n".join(errors)
