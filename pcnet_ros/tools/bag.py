"""pcnet-bag: derain the image topics of a rosbag2 (sqlite3 or mcap) into a new bag, offline, without ROS.

Every input topic is copied unchanged with its timestamps; each image topic T
gains T/derained and T/rain_residue at the same timestamps and with the same
headers.  Output is written to a temporary folder and renamed into place only
when complete, so a failure (corrupt or truncated input, full disk) never
leaves a plausible-looking half bag behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import shutil
import sys

from tqdm import tqdm

from pcnet_ros.core.engine import DerainEngine, InputError, RESIDUE_MODES, residue_to_image
from pcnet_ros.ros import image_codec
from pcnet_ros.tools.bagio import bag_writer, BagError, IMAGE_TYPE, open_reader, serialize_image, storage_of, typestore
from pcnet_ros.tools.common import add_engine_args, engine_from_args, fail, OK, PARTIAL, ToolError


def derain_bag(src: Path, dst: Path, engine: DerainEngine, topics: list[str] | None = None,
               storage: str | None = None, residue: bool = True, residue_mode: str = "positive",
               progress: bool = True) -> dict[str, int]:
    """Write ``dst`` = ``src`` + derained (and residue) topics. Returns counts per kind."""
    if dst.exists():
        raise BagError(f"output {dst} already exists; remove it or choose another name")
    store = typestore()
    reader = open_reader(src)
    tmp = dst.with_name(dst.name + ".partial")
    counts = {"copied": 0, "derained": 0, "skipped": 0}
    try:
        image_conns = [c for c in reader.connections if c.msgtype == IMAGE_TYPE and (not topics or c.topic in topics)]
        if topics and {c.topic for c in image_conns} != set(topics):
            missing = set(topics) - {c.topic for c in image_conns}
            raise BagError(f"image topics not in bag {src}: {sorted(missing)}")
        if not image_conns:
            raise BagError(f"bag {src} has no {IMAGE_TYPE} topics to derain" if reader.message_count else
                           f"bag {src} is empty")
        shutil.rmtree(tmp, ignore_errors=True)
        with bag_writer(tmp, storage or storage_of(src)) as writer:
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
        try:
            tmp.rename(dst)
        except OSError as exc:
            raise BagError(f"cannot move the finished bag to {dst}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-bag", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="exit status: 0 all derained, 1 some images skipped, 2 usage or input error "
                                        "(nothing written)")
    ap.add_argument("input", type=Path, help="rosbag2 folder (sqlite3 or mcap)")
    ap.add_argument("output", type=Path, help="new bag folder (must not exist)")
    ap.add_argument("--topics", nargs="*", help="image topics to derain (default: all sensor_msgs/Image)")
    ap.add_argument("--storage", choices=["sqlite3", "mcap"], help="output storage (default: as the input)")
    ap.add_argument("--no-residue", action="store_true", help="do not write rain_residue topics")
    ap.add_argument("--residue-mode", choices=RESIDUE_MODES, default="positive")
    add_engine_args(ap)
    args = ap.parse_args(argv)
    try:
        counts = derain_bag(args.input, args.output, engine_from_args(args), args.topics, args.storage,
                            not args.no_residue, args.residue_mode)
    except (BagError, ToolError) as exc:
        return fail("pcnet-bag", f"{exc}; nothing was written to {args.output}")
    print(f"wrote {args.output}: {counts['copied']} messages copied, {counts['derained']} images derained"
          + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))
    return PARTIAL if counts["skipped"] else OK


if __name__ == "__main__":
    sys.exit(main())
