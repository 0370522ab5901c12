"""QoS profiles from parameter strings, and matching a topic's publishers as image_proc does."""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, qos_profile_system_default, QoSProfile,
                       ReliabilityPolicy)

#: ``auto`` subscribes with the reliability the topic's publishers offer.
INPUT_CHOICES = ("auto", "sensor_data", "best_effort", "reliable", "system_default")
OUTPUT_CHOICES = ("reliable", "best_effort", "sensor_data", "system_default")


def make_profile(name: str, depth: int) -> QoSProfile:
    """A keep-last volatile profile of the named kind (``auto`` is resolved by the caller)."""
    if name == "sensor_data":
        base = qos_profile_sensor_data
        return QoSProfile(depth=depth, reliability=base.reliability, history=HistoryPolicy.KEEP_LAST,
                          durability=base.durability)
    if name == "system_default":
        return QoSProfile(depth=depth, reliability=qos_profile_system_default.reliability,
                          history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
    rel = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}.get(name)
    if rel is None:
        raise ValueError(f"unknown QoS '{name}': use one of {INPUT_CHOICES}")
    return QoSProfile(depth=depth, reliability=rel, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.VOLATILE)


def matching_reliability(publisher_qos: list) -> str | None:
    """'reliable' when every publisher is reliable (so lost fragments get resent), else 'best_effort'
    (the only kind that receives from a best-effort publisher); None without publishers."""
    if not publisher_qos:
        return None
    if all(q.reliability == ReliabilityPolicy.RELIABLE for q in publisher_qos):
        return "reliable"
    return "best_effort"
