"""Output topic names from an input topic, in one place (image_transport conventions).

``suffix`` layout: ``T`` -> ``T/derained``, ``T/rain_residue``, ``T/rain_level``.
``camera`` layout, for chaining into image_proc and detectors that want an image
with its sibling ``camera_info``: ``<cam>/image_raw`` -> ``<cam>/derained/image_raw``
with ``<cam>/derained/camera_info``, ``<cam>/rain_residue/image_raw`` with its
``camera_info``, and ``<cam>/rain_level``.  A compressed stream lives at
``<base>/compressed`` beside every raw one.
"""
from __future__ import annotations

LAYOUTS = ("suffix", "camera")
INPUT_TRANSPORTS = ("raw", "compressed")
OUTPUT_TRANSPORTS = ("raw", "compressed", "raw+compressed")


def _split(topic: str) -> tuple[str, str]:
    ns, _, leaf = topic.rpartition("/")
    return ns, leaf


def output_topic(topic: str, suffix: str, layout: str) -> str:
    """Base (raw) topic of the clean or residue image for input ``topic``."""
    if layout == "suffix":
        return f"{topic}/{suffix}"
    ns, leaf = _split(topic)
    return f"{ns}/{suffix}/{leaf}" if topic.rfind("/") >= 0 else f"{suffix}/{leaf}"


def camera_info_topic(image_topic: str) -> str:
    """The ``camera_info`` beside an image topic, as image_transport's CameraSubscriber finds it."""
    ns, _ = _split(image_topic)
    return f"{ns}/camera_info" if image_topic.rfind("/") >= 0 else "camera_info"


def rain_level_topic(topic: str, layout: str) -> str:
    if layout == "suffix":
        return f"{topic}/rain_level"
    ns, _ = _split(topic)
    return f"{ns}/rain_level" if topic.rfind("/") >= 0 else "rain_level"


def transport_topic(base: str, transport: str) -> str:
    """Where ``transport`` ("raw" or "compressed") of a base image topic is published."""
    return base if transport == "raw" else f"{base}/compressed"


def output_transports(setting: str) -> tuple[str, ...]:
    return tuple(setting.split("+"))
