"""rosbag2 files without ROS (the rosbags library): opening, the message types, Image serialization."""
from __future__ import annotations

from contextlib import contextmanager, suppress
from pathlib import Path
import shutil
from typing import Iterator

import numpy as np

from pcnet_ros.ros import image_codec

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)


class BagError(RuntimeError):
    """The input bag cannot be read, or the output cannot be written."""


def typestore():
    """The rosbags message types of the ROS 2 release the wheels here come from."""
    from rosbags.typesys import get_typestore, Stores

    return get_typestore(Stores.ROS2_KILTED)


def serialize_image(store, array: np.ndarray, encoding: str, header) -> bytes:
    """An array as CDR bytes of a sensor_msgs/Image (rosbags types, no ROS needed)."""
    fields = image_codec.encode(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return store.serialize_cdr(store.types[IMAGE_TYPE](header=header, **fields), IMAGE_TYPE)


def copy_connection(writer, conn):
    """A connection of ``writer`` for the messages of a reader's ``conn``, with the bag's own message definition.

    A lone MCAP file keeps no type hashes (they live in a folder's metadata.yaml), so one missing is computed from
    that definition, as ``rosbags.convert`` does, rather than from this release's types.
    """
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore, Stores

    rihs01 = conn.digest
    if not rihs01:
        own = get_typestore(Stores.EMPTY)
        own.register(get_types_from_idl(conn.msgdef.data) if conn.msgdef.format == MessageDefinitionFormat.IDL
                     else get_types_from_msg(conn.msgdef.data, conn.msgtype))
        rihs01 = own.hash_rihs01(conn.msgtype)
    return writer.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=rihs01,
                                 serialization_format=conn.ext.serialization_format,
                                 offered_qos_profiles=conn.ext.offered_qos_profiles)


def storage_of(path: Path) -> str:
    """How a readable bag is stored: its metadata's ``storage_identifier``, or a lone file's suffix. (Searching the
    metadata's text for "mcap" once took a sqlite3 bag with an ``/mcap_bridge/...`` topic for MCAP.)"""
    if path.is_file():
        return "mcap" if path.suffix == ".mcap" else "sqlite3"
    import yaml

    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return "mcap" if info["storage_identifier"] == "mcap" else "sqlite3"


def open_reader(path: Path):
    """A rosbags Reader, opened, with a clear error for a missing or unreadable bag."""
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise BagError(f"no bag at {path}")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:
        raise BagError(f"cannot open bag {path}: {type(exc).__name__}: {exc}") from exc
    return reader


def read_messages(reader, path: Path) -> Iterator[tuple]:
    """``reader.messages()``, with a read failure (a truncated or corrupt file) raised as one BagError that says
    how far it got, so that no caller mistakes it for its own failure or prints a traceback.

    Also raised when fewer messages come than the bag's metadata lists: rosbags' MCAP reader stops without an
    error at a zeroed stretch of a file, and a copy would then end early, silently.
    """
    n, it = 0, iter(reader.messages())
    while True:
        try:
            item = next(it)
        except StopIteration:
            if n < reader.message_count:
                raise BagError(f"input bag {path} is corrupt or truncated after {n} messages: its metadata lists "
                               f"{reader.message_count}") from None
            return
        except Exception as exc:
            raise BagError(f"input bag {path} is corrupt or truncated after {n} messages: "
                           f"{type(exc).__name__}: {exc}") from exc
        n += 1
        yield item


def writer_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


@contextmanager
def bag_writer(path: Path, storage: str) -> Iterator:
    """An open rosbags Writer at ``path``; closed on success, aborted on any error."""
    from rosbags.rosbag2 import Writer

    try:
        writer = Writer(path, version=9, storage_plugin=writer_plugin(storage))
        writer.open()
    except Exception as exc:  # parent is a file, read-only or /proc, disk full
        raise BagError(f"cannot write a bag at {path}: {type(exc).__name__}: {exc}") from exc
    try:
        yield writer
    except BaseException:
        with suppress(Exception):
            writer.abort()
        raise
    try:
        writer.close()
    except Exception as exc:  # the last pages or the index did not fit on the disk
        raise BagError(f"cannot finish the bag at {path}: {type(exc).__name__}: {exc}") from exc


@contextmanager
def finished_bag_writer(path: Path, storage: str, replace: bool = False) -> Iterator:
    """:func:`bag_writer` at ``PATH.partial``, renamed to ``path`` only once closed, so that no reader ever finds
    half a bag there; on any error the partial bag is removed. ``replace``: an earlier bag at ``path`` gives way
    to the finished one (otherwise the rename fails on it)."""
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with bag_writer(tmp, storage) as writer:
            yield writer
        if replace:
            shutil.rmtree(path, ignore_errors=True)
        try:
            tmp.rename(path)
        except OSError as exc:
            raise BagError(f"cannot move the finished bag to {path}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
