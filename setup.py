"""ament_python package that also installs with plain ``pip install -e .``."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "pcnet_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/weights", glob("weights/*.pth") + glob("weights/*.md")),
    ],
    install_requires=["setuptools", "numpy", "opencv-python-headless", "tqdm", "torch", "rosbags"],
    extras_require={"test": ["pytest"]},
    zip_safe=True,
    maintainer="pcnet_ros maintainers",
    maintainer_email="maintainers@pcnet-ros.invalid",
    description="Real-time rain removal for ROS 2 camera streams with PCNet",
    license="MIT",
    entry_points={
        "console_scripts": [
            "pcnet_node = pcnet_ros.ros.node:main",
            "pcnet_lifecycle_node = pcnet_ros.ros.lifecycle_node:main",
            "pcnet-derain = pcnet_ros.tools.derain:main",
            "pcnet-train = pcnet_ros.training.train:main",
            "pcnet-eval = pcnet_ros.training.evaluate:main",
            "pcnet-bag = pcnet_ros.tools.bag:main",
            "pcnet-play = pcnet_ros.tools.play:main",
            "pcnet-bench = pcnet_ros.tools.bench:main",
            "pcnet-export = pcnet_ros.tools.export:main",
        ],
    },
)
