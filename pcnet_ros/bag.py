"""pcnet-bag: derain the image topics of a rosbag2 (sqlite3 or mcap) into a new bag, offline, without ROS.

Every input topic is copied unchanged with its timestamps; each image topic T
gains T/derained and T/rain_residue at the same timestamps and with the same
headers.  Output is written to a temporary folder and renamed into place only
when complete, so a failure (corrupt or truncated input, full disk) never
leaves a plausible-looking half bag behind.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import image_codec
from .engine import RESIDUE_MODES, DerainEngine, InputError, residue_to_image

IMAGE_TYPE = "sensor_msgs/msg/Image"


class BagError(RuntimeError):
    """The input bag cannot be read, or the output cannot be written."""


def typestore():
    """The rosbags message types of the ROS 2 release the wheels here come from."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def serialize_image(store, array: np.ndarray, encoding: str, header) -> bytes:
    """An array as CDR bytes of a sensor_msgs/Image (rosbags types, no ROS needed)."""
    fields = image_codec.encode(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return store.serialize_cdr(store.types[IMAGE_TYPE](header=header, **fields), IMAGE_TYPE)


def _storage_of(path: Path) -> str:
    meta = path / "metadata.yaml"
    if meta.is_file() and "mcap" in meta.read_text():
        return "mcap"
    return "sqlite3"


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


def derain_bag(src: Path, dst: Path, engine: DerainEngine, topics: list[str] | None = None,
               storage: str | None = None, residue: bool = True, residue_mode: str = "positive",
               progress: bool = True) -> dict[str, int]:
    """Write ``dst`` = ``src`` + derained (and residue) topics. Returns counts per kind."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if dst.exists():
        raise BagError(f"output {dst} already exists; remove it or choose another name")
    store = typestore()
    reader = open_reader(src)
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"copied": 0, "derained": 0, "skipped": 0}
    try:
        image_conns = [c for c in reader.connections if c.msgtype == IMAGE_TYPE and (not topics or c.topic in topics)]
        if topics and {c.topic for c in image_conns} != set(topics):
            missing = set(topics) - {c.topic for c in image_conns}
            raise BagError(f"image topics not in bag {src}: {sorted(missing)}")
        plugin = StoragePlugin.MCAP if (storage or _storage_of(src)) == "mcap" else StoragePlugin.SQLITE3
        with Writer(tmp, version=9, storage_plugin=plugin) as writer:
            out_conns, derived = {}, {}
            for c in reader.connections:
                out_conns[c.id] = writer.add_connection(
                    c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest,
                    serialization_format=c.ext.serialization_format,
                    offered_qos_profiles=c.ext.offered_qos_profiles)
            for c in image_conns:
                kinds = ["derained"] + (["rain_residue"] if residue else [])
                derived[c.id] = {k: writer.add_connection(f"{c.topic}/{k}", IMAGE_TYPE, typestore=store,
                                                          offered_qos_profiles=c.ext.offered_qos_profiles)
                                 for k in kinds}
            bar = tqdm(total=reader.message_count, unit="msg", desc="pcnet-bag", disable=not progress)
            try:
                for conn, stamp, raw in reader.messages():
                    writer.write(out_conns[conn.id], stamp, raw)
                    counts["copied"] += 1
                    bar.update(1)
                    if conn.id not in derived:
                        continue
                    msg = store.deserialize_cdr(raw, conn.msgtype)
                    try:
                        arr, enc = image_codec.decode(msg)
                        res = engine.derain(arr, bgr=enc.bgr)
                    except (image_codec.MalformedImage, InputError) as exc:
                        counts["skipped"] += 1
                        tqdm.write(f"{conn.topic} @ {stamp}: skipped ({exc})")
                        continue
                    outputs = {"derained": res.clean,
                               "rain_residue": residue_to_image(res.residue, arr.dtype, residue_mode)}
                    for kind, out_conn in derived[conn.id].items():
                        writer.write(out_conn, stamp, serialize_image(store, outputs[kind], msg.encoding, msg.header))
                    counts["derained"] += 1
            except BagError:
                raise
            except Exception as exc:
                raise BagError(f"input bag {src} is corrupt or truncated after {counts['copied']} messages: "
                               f"{type(exc).__name__}: {exc}") from exc
            finally:
                bar.close()
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    from .weights import WeightsError, build_model

    ap = argparse.ArgumentParser(prog="pcnet-bag", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="rosbag2 folder (sqlite3 or mcap)")
    ap.add_argument("output", type=Path, help="new bag folder (must not exist)")
    ap.add_argument("--topics", nargs="*", help="image topics to derain (default: all sensor_msgs/Image)")
    ap.add_argument("--storage", choices=["sqlite3", "mcap"], help="output storage (default: as the input)")
    ap.add_argument("--weights", default="light")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-residue", action="store_true", help="do not write rain_residue topics")
    ap.add_argument("--residue-mode", choices=RESIDUE_MODES, default="positive")
    args = ap.parse_args(argv)
    try:
        model, _ = build_model(args.weights)
        counts = derain_bag(args.input, args.output, DerainEngine(model, device=args.device), args.topics,
                            args.storage, not args.no_residue, args.residue_mode)
    except (BagError, WeightsError) as exc:
        print(f"pcnet-bag: {exc}; nothing was written to {args.output}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {counts['copied']} messages copied, {counts['derained']} images derained"
          + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))
    return 1 if counts["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
