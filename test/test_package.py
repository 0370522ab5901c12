"""The ament_python package: metadata, installed data, the launch file's contract with the node."""
import xml.etree.ElementTree as ET

import yaml

from pcnet_ros.ros.transport import BUNDLED_PROFILE_NAME, use_bundled_fastdds_profile
from ros_harness import ROOT

#: import name -> rosdep key, for what is not a ROS package of the same name
PYTHON_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "tqdm": "python3-tqdm", "yaml": "python3-yaml",
               "torch": "python3-pytorch-pip", "rosbags": "python3-rosbags-pip"}
OPTIONAL = {"onnx", "onnxruntime", "openvino", "tensorrt"}  # backends and export, imported only when chosen (README)


def _imports() -> set[str]:
    import ast
    import sys

    names = set()
    for f in [*(ROOT / "pcnet_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"pcnet_ros"}


def test_package_xml_declares_exactly_what_the_code_imports():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "pcnet_ros"
    deps = {e.text for e in root.iter("exec_depend")}
    needed = {PYTHON_KEYS.get(name, name) for name in _imports() - OPTIONAL}
    assert needed == deps, f"missing: {needed - deps}, declared but not imported: {deps - needed}"
    assert "cv_bridge" not in deps             # one tested decode path on every install (image_codec docstring)
    assert root.find("export/build_type").text == "ament_python"
    assert (ROOT / "resource" / "pcnet_ros").is_file()


def test_setup_installs_launch_config_weights_and_entry_points():
    src = (ROOT / "setup.py").read_text()
    for needle in ('"launch/*.launch.py"', '"config/*.yaml"', '"config/*.xml"', '"weights/*.pth"',
                   "pcnet_node = pcnet_ros.ros.node:main", "pcnet-derain = pcnet_ros.tools.derain:main"):
        assert needle in src
    assert "install_scripts=$base/lib/pcnet_ros" in (ROOT / "setup.cfg").read_text()  # where ros2 run looks


def test_launch_overrides_only_parameters_the_params_file_has():
    """What a launch argument sets is a node parameter the params-file tests cover too."""
    from test_launch import _launch_module

    launch = _launch_module()
    set_by_launch = launch.overrides({"input_topic": "/a", "device": "cpu", "use_sim_time": "true"})
    shipped = yaml.safe_load((ROOT / "config" / "pcnet.yaml").read_text())["/**"]["ros__parameters"]
    assert set(set_by_launch) - {"use_sim_time"} <= set(shipped)


def test_bundled_fastdds_profile_applies_only_when_nothing_is_chosen():
    env = {}
    path = use_bundled_fastdds_profile(env)
    assert path and path.endswith(BUNDLED_PROFILE_NAME) and env["FASTDDS_DEFAULT_PROFILES_FILE"] == path
    ET.parse(path)                                          # well-formed XML
    mine = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}
    assert use_bundled_fastdds_profile(mine) is None and mine["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/mine.xml"
    other = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_bundled_fastdds_profile(other) is None and "FASTDDS_DEFAULT_PROFILES_FILE" not in other


def test_every_documented_entry_point_runs():
    """Console scripts and every `python -m pcnet_ros...` named in the README answer --help.

    (The node itself takes ROS arguments, not --help; the node, launch and params-file tests start it.)
    """
    import re
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    modules = sorted(set(re.findall(r"python -m (pcnet_ros(?:\.\w+)+)", readme.replace("\n", " "))))
    assert "pcnet_ros.ros.node" in modules and "pcnet_ros.tools.image_bag" in modules
    scripts = re.findall(r'"([\w-]+) = (pcnet_ros[\w.]+):main"', (ROOT / "setup.py").read_text())
    assert len(scripts) == 9
    for mod in sorted({*modules, *(m for _, m in scripts)} - {"pcnet_ros.ros.node", "pcnet_ros.ros.lifecycle_node"}):
        r = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), (mod, r.stderr[-500:])


def test_the_readme_code_map_names_every_module():
    """The code map is where a new developer starts; a module missing from it is one they will not find."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Code map", 1)[1].split("```", 2)[1]
    named, folder = set(), ""
    for line in block.splitlines():
        if line.startswith("pcnet_ros/"):
            first = line.split()[0]
            folder = first if first.endswith("/") else ""
            if first.endswith(".py"):
                named.add(first)
        elif line.startswith("  ") and folder:
            named.update(folder + w for w in line.split() if w.endswith(".py"))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pcnet_ros").rglob("*.py") if p.name != "__init__.py"}
    assert modules - named == set(), "modules missing from the README's code map"
    assert named - modules == set(), "the code map names modules that do not exist"
