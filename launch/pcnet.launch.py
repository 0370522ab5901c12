"""Start pcnet_node. Everything it sets is a parameter from the params file, so tests of that file cover it.

    ros2 launch pcnet_ros pcnet.launch.py input_topic:=/camera/image_raw device:=cuda
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("pcnet_ros")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "pcnet.yaml")),
        DeclareLaunchArgument("input_topic", default_value="image_raw"),
        DeclareLaunchArgument("device", default_value="auto"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(
                "FASTDDS_DEFAULT_PROFILES_FILE",
                default_value=os.path.join(share, "config", "fastdds_udp_large_buffers.xml")),
            description="FastDDS XML profile; see README, Transport"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
        Node(
            package="pcnet_ros",
            executable="pcnet_node",
            name="pcnet",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "input_topics": [LaunchConfiguration("input_topic")],
                    "device": LaunchConfiguration("device"),
                    "use_sim_time": LaunchConfiguration("use_sim_time"),
                },
            ],
        ),
    ])
