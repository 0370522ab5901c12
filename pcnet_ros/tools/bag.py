"""pcnet-bag: derain the image topics of a rosbag2 (sqlite3 or mcap) into a new bag, offline, without ROS.

Every input topic is copied unchanged with its timestamps; each image topic
gains derained and residue topics of the same message type at the same
timestamps and with the same headers: ``sensor_msgs/Image`` T gets T/derained
and T/rain_residue, ``sensor_msgs/CompressedImage`` B/compressed gets
B/derained/compressed (JPEG) and B/rain_residue/compressed (PNG).  Output is
written to a temporary folder and renamed into place only when complete, so a
failure (corrupt or truncated input, full disk) never leaves a plausible-looking
half bag behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np
from tqdm import tqdm

from pcnet_ros.core.engine import DerainEngine, InputError, RESIDUE_MODES, residue_to_image
from pcnet_ros.imageio import header_shape, shape_of
from pcnet_ros.progress import progress_bar
from pcnet_ros.ros import image_codec
from pcnet_ros.tools.bagio import (BagError, COMPRESSED_TYPE, copy_connection, finished_bag_writer, IMAGE_TYPE,
                                   IMAGE_TYPES, open_reader, read_messages, serialize_image, storage_of, typestore)
from pcnet_ros.tools.common import (add_engine_args, budget_from_args, engine_from_args, fail, inference_failed, OK,
                                    PARTIAL, ToolBudget, ToolError, whole)


def _outputs_of(topic: str, msgtype: str) -> tuple[str, str]:
    """Base topics of the clean and residue streams for an input topic (image_transport naming)."""
    if msgtype == COMPRESSED_TYPE:
        base = topic[:-len("/compressed")] if topic.endswith("/compressed") else topic
        return f"{base}/derained/compressed", f"{base}/rain_residue/compressed"
    return f"{topic}/derained", f"{topic}/rain_residue"


class _Pending:
    """Image messages of one topic waiting to run as a batch."""

    def __init__(self) -> None:
        self.items: list[tuple] = []          # (conn, stamp, msg, array, encoding, bgr)

    def key(self):
        _, _, _, arr, _, bgr = self.items[0]
        return arr.shape, arr.dtype.str, bgr


def _to_derain(reader, src: Path, topics: list[str] | None, replace: bool) -> tuple[list, set[str]]:
    """The image connections to derain, and the topics of the bag to leave out of the copy.

    By default an image topic that is another's output (``T/derained`` beside ``T``: a recording of pcnet_node, or
    pcnet-bag's own output) is not derained again. An output topic the bag already has is refused, or with
    ``replace`` left out of the copy so that new ones take its place: a bag never gets one topic twice.
    """
    images = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
    if topics:
        chosen = [c for c in images if c.topic in topics]
        missing = set(topics) - {c.topic for c in chosen}
        if missing:
            raise BagError(f"image topics not in bag {src}: {sorted(missing)}")
    else:
        outputs = {t for c in images for t in _outputs_of(c.topic, c.msgtype)}
        chosen = [c for c in images if c.topic not in outputs]
    if not chosen:
        raise BagError(f"bag {src} has no {' or '.join(IMAGE_TYPES)} topics to derain" if reader.message_count
                       else f"bag {src} is empty")
    present = {c.topic for c in reader.connections}
    clash = sorted(present & {t for c in chosen for t in _outputs_of(c.topic, c.msgtype)})
    if clash and not replace:
        raise BagError(f"bag {src} already has {', '.join(clash)}, which pcnet-bag would write (a recording of "
                       "pcnet_node's output, or pcnet-bag's own): --replace-outputs writes new ones in their place")
    return chosen, set(clash)


def derain_bag(src: Path, dst: Path, engine: DerainEngine, topics: list[str] | None = None,
               storage: str | None = None, residue: bool = True, residue_mode: str = "positive",
               progress: bool = True, batch: int = 4, jpeg_quality: int = 90, max_side: int = 0,
               budget: ToolBudget = ToolBudget(mb=float("inf")), replace_outputs: bool = False) -> dict[str, int]:
    """Write ``dst`` = ``src`` + derained (and residue) topics, in the input's message type. Returns counts.

    ``sensor_msgs/Image`` topics T gain ``T/derained`` and ``T/rain_residue``; ``CompressedImage`` topics
    ``B/compressed`` gain ``B/derained/compressed`` (JPEG) and ``B/rain_residue/compressed`` (PNG).
    Consecutive frames of one topic and size run ``batch`` at a time; frames longer than ``max_side`` (if set)
    run downscaled, one at a time, and come out full size. Frames over ``budget`` (host memory; no limit by
    default) are skipped before they are decoded, and a batch is run before it would outgrow it. Output topics
    the input already has: see :func:`_to_derain`; with ``replace_outputs`` their old messages count as replaced.
    """
    if dst.exists():
        raise BagError(f"output {dst} already exists; remove it or choose another name")
    store = typestore()
    reader = open_reader(src)
    counts = {"copied": 0, "derained": 0, "skipped": 0, "replaced": 0}
    try:
        image_conns, replaced = _to_derain(reader, src, topics, replace_outputs)
        with finished_bag_writer(dst, storage or storage_of(src)) as writer:
            out_conns, derived = {}, {}
            for c in reader.connections:
                if c.topic not in replaced:
                    out_conns[c.id] = copy_connection(writer, c)
            for c in image_conns:
                clean_topic, residue_topic = _outputs_of(c.topic, c.msgtype)
                kinds = {"derained": clean_topic, **({"rain_residue": residue_topic} if residue else {})}
                derived[c.id] = {k: writer.add_connection(t, c.msgtype, typestore=store,
                                                          offered_qos_profiles=c.ext.offered_qos_profiles)
                                 for k, t in kinds.items()}

            def flush(p: _Pending) -> None:
                if not p.items:
                    return
                try:
                    results = engine.derain_batch([it[3] for it in p.items], bgr=p.items[0][5], max_side=max_side)
                except InputError as exc:
                    counts["skipped"] += len(p.items)
                    tqdm.write(f"{p.items[0][0].topic}: {len(p.items)} frame(s) skipped ({exc})")
                    results = []
                except Exception as exc:   # out of memory, a device error: the bag is not to blame
                    raise BagError(inference_failed(f"{len(p.items)} frame(s) of {p.items[0][0].topic} at "
                                                    f"{p.items[0][1]}", exc)) from exc
                for (conn, stamp, msg, arr, encoding, _), res in zip(p.items, results):
                    outputs = {"derained": res.clean,
                               "rain_residue": residue_to_image(res.residue, arr.dtype, residue_mode)}
                    for kind, out_conn in derived[conn.id].items():
                        writer.write(out_conn, stamp, _serialize(store, conn.msgtype, outputs[kind], encoding,
                                                                 msg.header, kind, jpeg_quality))
                    counts["derained"] += 1
                p.items = []

            pending: dict[int, _Pending] = {c.id: _Pending() for c in image_conns}
            bar = progress_bar(total=reader.message_count, unit="msg", desc="pcnet-bag", disable=not progress)
            try:
                for conn, stamp, raw in read_messages(reader, src):
                    bar.update(1)
                    if conn.id not in out_conns:
                        counts["replaced"] += 1
                        continue
                    writer.write(out_conns[conn.id], stamp, raw)
                    counts["copied"] += 1
                    if conn.id not in derived:
                        continue
                    try:
                        msg = store.deserialize_cdr(raw, conn.msgtype)
                    except Exception as exc:
                        raise BagError(f"input bag {src} is corrupt: the {conn.topic} message at {stamp} cannot be "
                                       f"read: {type(exc).__name__}: {exc}") from exc
                    try:
                        shape = _shape(conn.msgtype, msg)
                        if shape is not None:
                            budget.check(*shape)
                        arr, encoding, bgr = _decode(conn.msgtype, msg)
                        if shape is None:
                            budget.check(*shape_of(arr))
                    except (image_codec.MalformedImage, InputError) as exc:
                        counts["skipped"] += 1
                        tqdm.write(f"{conn.topic} @ {stamp}: skipped ({exc})")
                        continue
                    p = pending[conn.id]
                    if p.items and (p.key() != (arr.shape, arr.dtype.str, bgr)
                                    or not budget.fits(*shape_of(arr), len(p.items) + 1)):
                        flush(p)
                    p.items.append((conn, stamp, msg, arr, encoding, bgr))
                    if len(p.items) >= batch:
                        flush(p)
                for p in pending.values():
                    flush(p)
            except BagError:
                raise
            except Exception as exc:     # reading and decoding raise BagError: this is the output side
                raise BagError(f"cannot write {dst} after {counts['copied']} messages: "
                               f"{type(exc).__name__}: {exc}") from exc
            finally:
                bar.close()
    finally:
        reader.close()
    return counts


def _shape(msgtype: str, msg) -> tuple[int, int, int] | None:
    """(height, width, channels) a message decodes to, read from its fields or its JPEG/PNG header without
    decoding; None for a compressed format whose header is not read (checked after decoding)."""
    if msgtype == COMPRESSED_TYPE:
        return header_shape(msg.data)
    return int(msg.height), int(msg.width), image_codec.validate(msg).decoded_channels


def _decode(msgtype: str, msg) -> tuple[np.ndarray, str, bool]:
    if msgtype == COMPRESSED_TYPE:
        arr, encoding = image_codec.decode_compressed(msg)
        return arr, encoding, True
    arr, enc = image_codec.decode(msg)
    return arr, enc.decoded_as, enc.bgr


def _serialize(store, msgtype: str, array: np.ndarray, encoding: str, header, kind: str, quality: int) -> bytes:
    if msgtype == IMAGE_TYPE:
        return serialize_image(store, array, encoding, header)
    fmt, data = image_codec.encode_compressed(array, encoding, "jpeg" if kind == "derained" else "png", quality)
    out = store.types[COMPRESSED_TYPE](header=header, format=fmt, data=np.frombuffer(data, np.uint8))
    return store.serialize_cdr(out, COMPRESSED_TYPE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcnet-bag", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="exit status: 0 all derained, 1 some images skipped, 2 usage or input error "
                                        "(nothing written)")
    ap.add_argument("input", type=Path, help="rosbag2 folder (sqlite3 or mcap), or a lone .mcap or .db3 file")
    ap.add_argument("output", type=Path, help="new bag folder (must not exist)")
    ap.add_argument("--topics", nargs="*", help="image topics to derain (default: every Image and CompressedImage "
                    "topic that is not the output of another in the bag)")
    ap.add_argument("--storage", choices=["sqlite3", "mcap"], help="output storage (default: as the input)")
    ap.add_argument("--no-residue", action="store_true", help="do not write rain_residue topics")
    ap.add_argument("--replace-outputs", action="store_true",
                    help="where the bag already has the topics pcnet-bag writes (a recording of pcnet_node's output), "
                         "leave the old ones out and write new ones in their place (default: refuse)")
    ap.add_argument("--residue-mode", choices=RESIDUE_MODES, default="positive")
    ap.add_argument("--jpeg-quality", type=whole(*image_codec.JPEG_QUALITY_RANGE), default=90,
                    help="for derained CompressedImage topics")
    add_engine_args(ap, max_side=True)
    args = ap.parse_args(argv)
    try:
        engine = engine_from_args(args)
        counts = derain_bag(args.input, args.output, engine, args.topics, args.storage,
                            not args.no_residue, args.residue_mode, batch=args.batch or engine.default_batch,
                            jpeg_quality=args.jpeg_quality, max_side=args.max_side,
                            budget=budget_from_args(args, engine), replace_outputs=args.replace_outputs)
    except (BagError, ToolError) as exc:
        return fail("pcnet-bag", f"{exc}; nothing was written to {args.output}")
    print(f"wrote {args.output}: {counts['copied']} messages copied, {counts['derained']} images derained"
          + (f", {counts['skipped']} skipped" if counts["skipped"] else "")
          + (f", {counts['replaced']} old output messages replaced" if counts["replaced"] else ""))
    return PARTIAL if counts["skipped"] else OK


if __name__ == "__main__":
    sys.exit(main())
