"""DDS transport choices made in one place: the FastDDS profile, and keeping discovery on this host."""
from __future__ import annotations

import os

from pcnet_ros.paths import find_data_file

BUNDLED_PROFILE_NAME = "fastdds_udp_large_buffers.xml"


def use_bundled_fastdds_profile(environ: dict = os.environ) -> str | None:
    """Point FastDDS at the bundled large-buffer profile unless the user chose a profile or another RMW.

    Without it best-effort camera streams lose most frames (README, "Transport").
    Set FASTDDS_DEFAULT_PROFILES_FILE yourself (even to your own file) to opt out.
    """
    if environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return None
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    found = find_data_file("config", BUNDLED_PROFILE_NAME)
    if found is None:
        return None
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(found)
    return str(found)


def keep_dds_local(environ: dict = os.environ) -> None:
    """Keep a tool's DDS traffic on this machine unless it already runs in scripts/isolated-net.

    (LOCALHOST discovery makes rmw_fastrtps replace custom transports: see README, Transport.)
    """
    if environ.get("PCNET_ISOLATED_NET") != "1":
        environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
