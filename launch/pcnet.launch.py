"""Start pcnet_node from a params file; launch arguments override the file only when given.

    ros2 launch pcnet_ros pcnet.launch.py input_topic:=/camera/image_raw device:=cuda
    ros2 launch pcnet_ros pcnet.launch.py params_file:=my_cameras.yaml
    ros2 launch pcnet_ros pcnet.launch.py input_topics:="[/cam_front/image_raw, /cam_rear/image_raw]"
    ros2 launch pcnet_ros pcnet.launch.py lifecycle:=true autostart:=false   # managed: bring-up configures it

An empty argument (the default) leaves the params file's value in force, so a
multi-camera params file is never silently reduced to one topic.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition
import yaml

#: Launch arguments that override a node parameter when given (name: meaning).
OVERRIDES = {
    "input_topic": "one camera topic; replaces the params file's input_topics",
    "input_topics": "a YAML list of camera topics, e.g. \"[/a/image_raw, /b/image_raw]\"; replaces input_topics",
    "device": "auto | cpu | cuda | cuda:N; replaces the params file's device",
    "use_sim_time": "true | false; take time from /clock",
}


def _topics(value: str) -> list[str]:
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):
        parsed = [t.strip() for t in parsed.split(",")]
    if not isinstance(parsed, list) or not parsed or not all(isinstance(t, str) and t for t in parsed):
        raise ValueError(f"input_topics:='{value}' is not a list of topic names, e.g. \"[/a/image_raw, /b/image_raw]\"")
    return parsed


def _bool(name: str, value: str) -> bool:
    parsed = yaml.safe_load(value)
    if not isinstance(parsed, bool):
        raise ValueError(f"{name}:='{value}' must be true or false")
    return parsed


def overrides(given: dict[str, str]) -> dict:
    """Node parameters from the launch arguments that were given (non-empty)."""
    given = {k: v for k, v in given.items() if v != ""}
    if "input_topic" in given and "input_topics" in given:
        raise ValueError("give input_topic or input_topics, not both")
    params = {}
    if "input_topic" in given:
        params["input_topics"] = [given["input_topic"]]
    if "input_topics" in given:
        params["input_topics"] = _topics(given["input_topics"])
    if "device" in given:
        params["device"] = given["device"]
    if "use_sim_time" in given:
        params["use_sim_time"] = _bool("use_sim_time", given["use_sim_time"])
    return params


def _change(node, transition: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))


def _node(context):
    params = overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDES})
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    managed = _bool("lifecycle", LaunchConfiguration("lifecycle").perform(context))
    kwargs = {
        "package": "pcnet_ros",
        "name": "pcnet",
        "namespace": LaunchConfiguration("namespace"),
        "output": "screen",
        "emulate_tty": True,
        "parameters": [LaunchConfiguration("params_file")] + ([params] if params else []),
        # empty: the node picks its bundled large-buffer profile unless FASTDDS_DEFAULT_PROFILES_FILE is set
        "additional_env": {"FASTDDS_DEFAULT_PROFILES_FILE": profile} if profile else None,
    }
    if not managed:
        return [Node(executable="pcnet_node", **kwargs)]
    node = LifecycleNode(executable="pcnet_lifecycle_node", **kwargs)
    if not _bool("autostart", LaunchConfiguration("autostart").perform(context)):
        return [node]
    return [node,
            RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, goal_state="inactive",
                                                   entities=[_change(node, Transition.TRANSITION_ACTIVATE)])),
            _change(node, Transition.TRANSITION_CONFIGURE)]


def generate_launch_description():
    share = get_package_share_directory("pcnet_ros")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "pcnet.yaml"),
                              description="node parameters (see config/pcnet.yaml)"),
        *[DeclareLaunchArgument(name, default_value="", description=f"{doc} (empty: the params file's)")
          for name, doc in OVERRIDES.items()],
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: start the managed node (pcnet_lifecycle_node)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="with lifecycle:=true, configure and activate it at once; false leaves "
                                          "it unconfigured for your bring-up manager"),
        DeclareLaunchArgument("fastdds_profile", default_value="",
                              description="FastDDS XML profile for the node (empty: $FASTDDS_DEFAULT_PROFILES_FILE, "
                                          "else the bundled large-buffer one); see README, Transport"),
        OpaqueFunction(function=_node),
    ])
