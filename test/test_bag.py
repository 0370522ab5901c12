"""pcnet-bag on real rosbag2 files (written and read with the rosbags library, sqlite3 and mcap)."""
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores
import torch

from conftest import assert_same_to_a_grey_level, file_size_limit, ROOT, zero_a_stretch
from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.model import PCNet
from pcnet_ros.ros import image_codec
from pcnet_ros.tools import bag, bagio
from pcnet_ros.tools.image_bag import write_image_bag

STORE = get_typestore(Stores.ROS2_KILTED)


@pytest.fixture
def frames(rng):
    return [rng.integers(0, 256, size=(20, 28, 3), dtype=np.uint8) for _ in range(12)]


def _read(path):
    out = {}
    with Reader(path) as r:
        for conn, t, raw in r.messages():
            out.setdefault(conn.topic, []).append((t, STORE.deserialize_cdr(raw, conn.msgtype)))
    return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_derain_bag_keeps_everything_and_adds_topics(tmp_path, tiny_model, frames, storage):
    src = write_image_bag(frames, tmp_path / "in", fps=5, storage=storage)
    engine = DerainEngine(tiny_model, device="cpu")
    counts = bag.derain_bag(src, tmp_path / "out", engine, progress=False)
    assert counts == {"copied": 14, "derained": 12, "skipped": 0, "replaced": 0}
    before, after = _read(src), _read(tmp_path / "out")
    assert set(after) == {"/camera/image_raw", "/demo/note", "/camera/image_raw/derained",
                          "/camera/image_raw/rain_residue"}
    for topic in before:                                   # originals untouched, same timestamps
        assert [t for t, _ in after[topic]] == [t for t, _ in before[topic]]
    assert [m.data for _, m in after["/demo/note"]] == [m.data for _, m in before["/demo/note"]]
    for (t_in, m_in), (t_out, m_out), (_, m_res) in zip(before["/camera/image_raw"],
                                                        after["/camera/image_raw/derained"],
                                                        after["/camera/image_raw/rain_residue"]):
        assert t_in == t_out
        assert m_out.header.stamp == m_in.header.stamp and m_out.header.frame_id == "camera"
        clean, _ = image_codec.decode(m_out)
        rainy, _ = image_codec.decode(m_in)
        assert_same_to_a_grey_level(clean, engine.derain(rainy).clean)
        assert m_res.encoding == "rgb8" and (m_res.height, m_res.width) == (20, 28)
    assert not (tmp_path / "out.partial").exists()


def test_max_side_derains_large_frames_downscaled_and_writes_them_full_size(tmp_path, tiny_model, frames):
    src = write_image_bag(frames[:3], tmp_path / "in")
    engine = DerainEngine(tiny_model, device="cpu")
    assert bag.derain_bag(src, tmp_path / "out", engine, progress=False, max_side=16)["derained"] == 3
    after = _read(tmp_path / "out")
    for rainy, (_, m_out) in zip(frames, after["/camera/image_raw/derained"]):
        assert (m_out.height, m_out.width) == (20, 28)
        clean, _ = image_codec.decode(m_out)
        assert_same_to_a_grey_level(clean, engine.derain_downscaled(rainy, 16).clean)


@pytest.mark.parametrize("encoding, buffer", [("yuv422_yuy2", (20, 28, 2)), ("nv12", (30, 28))])
def test_yuv_camera_topics_are_derained_to_rgb8(tmp_path, tiny_model, rng, encoding, buffer):
    raw = [rng.integers(0, 256, size=buffer, dtype=np.uint8) for _ in range(2)]
    src = write_image_bag(raw, tmp_path / "in", encoding=encoding)
    engine = DerainEngine(tiny_model, device="cpu")
    assert bag.derain_bag(src, tmp_path / "out", engine, progress=False)["derained"] == 2
    after = _read(tmp_path / "out")
    for (_, m_in), (_, m_out) in zip(after["/camera/image_raw"], after["/camera/image_raw/derained"]):
        assert m_in.encoding == encoding and m_out.encoding == "rgb8"
        assert (m_in.height, m_out.height, m_out.width) == (20, 20, 28)
        rgb, _ = image_codec.decode(m_in)
        clean, _ = image_codec.decode(m_out)
        assert_same_to_a_grey_level(clean, engine.derain(rgb).clean)


def test_storage_can_change(tmp_path, tiny_model, frames):
    src = write_image_bag(frames[:2], tmp_path / "in", storage="sqlite3")
    bag.derain_bag(src, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), storage="mcap", progress=False)
    assert list((tmp_path / "out").glob("*.mcap"))


@pytest.mark.parametrize("storage, pattern", [("sqlite3", "*.db3"), ("mcap", "*.mcap")])
def test_output_is_stored_as_the_input_even_where_a_topic_is_named_for_the_other(tmp_path, tiny_model, frames,
                                                                                 storage, pattern):
    """The storage comes from the metadata's storage_identifier: a search of its text for "mcap" once wrote this
    sqlite3 bag as MCAP."""
    src = write_image_bag(frames[:2], tmp_path / "in", topic="/mcap_bridge/sqlite3/image_raw", storage=storage)
    bag.derain_bag(src, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), progress=False)
    assert bagio.storage_of(tmp_path / "out") == storage
    assert list((tmp_path / "out").glob(pattern)) and len(_read(tmp_path / "out")) == 4


@pytest.mark.parametrize("storage, pattern", [("sqlite3", "*.db3"), ("mcap", "*.mcap")])
def test_a_lone_bag_file_is_derained_into_a_bag_of_its_storage(tmp_path, tiny_model, frames, storage, pattern):
    """An .mcap file as a recorder or Foxglove hands it over, with no metadata.yaml beside it."""
    folder = write_image_bag(frames[:3], tmp_path / "in", storage=storage)
    with Reader(folder) as r:
        hashes = {c.topic: c.digest for c in r.connections}
    [data] = list(folder.glob(pattern))
    lone = data.rename(tmp_path / data.name)
    counts = bag.derain_bag(lone, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), progress=False)
    assert counts == {"copied": 4, "derained": 3, "skipped": 0, "replaced": 0}
    assert list((tmp_path / "out").glob(pattern))
    assert len(_read(tmp_path / "out")["/camera/image_raw/derained"]) == 3
    with Reader(tmp_path / "out") as r:     # the copies' type hashes as the recorder's, computed where none came
        assert {c.topic: c.digest for c in r.connections if c.topic in hashes} == hashes


def test_a_bag_that_already_has_the_outputs_is_refused_or_they_are_replaced(tmp_path, tiny_model, frames, capsys):
    """pcnet-bag on its own output (or on a recording of pcnet_node's topics) once died in rosbags with a
    traceback and exit status 1, which says "some frames skipped"."""
    first = DerainEngine(tiny_model, device="cpu")
    once = tmp_path / "once"
    bag.derain_bag(write_image_bag(frames[:4], tmp_path / "in"), once, first, progress=False)
    assert bag.main([str(once), str(tmp_path / "refused"), "--device", "cpu", "--backend", "eager"]) == 2
    err = capsys.readouterr().err
    assert "already has /camera/image_raw/derained, /camera/image_raw/rain_residue" in err, err
    assert "--replace-outputs" in err and "Traceback" not in err
    assert not (tmp_path / "refused").exists() and not (tmp_path / "refused.partial").exists()

    torch.manual_seed(1)                                       # other weights, as a user trying a new file would
    second = DerainEngine(PCNet(n_feat=16, num_crb=2, num_rcab=1).eval(), device="cpu")
    counts = bag.derain_bag(once, tmp_path / "twice", second, progress=False, replace_outputs=True)
    assert counts == {"copied": 4 + 1, "derained": 4, "skipped": 0, "replaced": 8}
    before, after = _read(once), _read(tmp_path / "twice")
    assert set(after) == set(before)                           # the outputs are not derained again, nor doubled
    for (t_in, m_in), (t_out, m_out) in zip(before["/camera/image_raw"], after["/camera/image_raw/derained"]):
        rainy, _ = image_codec.decode(m_in)
        clean, _ = image_codec.decode(m_out)
        assert t_out == t_in and m_out.header == m_in.header
        assert_same_to_a_grey_level(clean, second.derain(rainy).clean)
    assert len(after["/camera/image_raw/derained"]) == 4


def test_a_derained_topic_is_derained_again_only_when_named(tmp_path, tiny_model, frames):
    engine = DerainEngine(tiny_model, device="cpu")
    once = tmp_path / "once"
    bag.derain_bag(write_image_bag(frames[:2], tmp_path / "in"), once, engine, progress=False)
    bag.derain_bag(once, tmp_path / "out", engine, topics=["/camera/image_raw/derained"], progress=False)
    again = {"/camera/image_raw/derained/derained", "/camera/image_raw/derained/rain_residue"}
    assert set(_read(tmp_path / "out")) == set(_read(once)) | again


@pytest.mark.parametrize("storage, pattern", [("sqlite3", "*.db3"), ("mcap", "*.mcap")])
def test_truncated_bag_fails_clearly_and_writes_nothing(tmp_path, tiny_model, rng, storage, pattern):
    big = [rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8) for _ in range(20)]
    src = write_image_bag(big, tmp_path / "in", storage=storage)
    [data] = list(src.glob(pattern))
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(bagio.BagError, match="corrupt or truncated|cannot open bag"):
        bag.derain_bag(src, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_a_bag_whose_reader_stops_early_is_not_copied_as_if_whole(tmp_path, tiny_model, rng):
    """A zeroed stretch in an MCAP file: rosbags yields the messages before it and stops without an error;
    pcnet-bag once wrote those 9 of 22 and said so with status 0."""
    big = [rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8) for _ in range(20)]
    src = write_image_bag(big, tmp_path / "in", storage="mcap")
    zero_a_stretch(src)
    with pytest.raises(bagio.BagError, match=r"corrupt or truncated after \d+ messages: its metadata lists 22"):
        bag.derain_bag(src, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_an_inference_failure_is_named_as_such_not_blamed_on_the_bag(tmp_path, tiny_model, frames, monkeypatch):
    src = write_image_bag(frames[:3], tmp_path / "in")
    engine = DerainEngine(tiny_model, device="cpu")

    def out_of_memory(*a, **k):
        raise RuntimeError("CUDA out of memory")
    monkeypatch.setattr(engine, "derain_batch", out_of_memory)
    with pytest.raises(bagio.BagError, match="inference failed on 3 frame.*/camera/image_raw.*out of memory") as got:
        bag.derain_bag(src, tmp_path / "out", engine, progress=False)
    assert "corrupt" not in str(got.value)
    assert str(got.value).endswith("(a smaller --batch or a --max-side needs less memory)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_an_output_that_fills_up_is_named_not_blamed_on_the_input(tmp_path, rng, storage):
    """A full disk, made real with a file size limit on the process: the output is named, not the input."""
    import subprocess
    import sys

    big = [rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8) for _ in range(8)]
    src = write_image_bag(big, tmp_path / "in", storage=storage)     # about 460 KB of images
    with file_size_limit(300_000):
        proc = subprocess.run([sys.executable, "-m", "pcnet_ros.tools.bag", str(src), str(tmp_path / "out"),
                               "--device", "cpu", "--backend", "eager"], capture_output=True, text=True,
                              timeout=300, cwd=ROOT)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr
    assert line.startswith("pcnet-bag: cannot ") and str(tmp_path / "out") in line, line
    assert "corrupt" not in line and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_cli_errors(tmp_path, capsys, frames):
    assert bag.main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "no bag at" in capsys.readouterr().err
    src = write_image_bag(frames[:1], tmp_path / "in")
    (tmp_path / "exists").mkdir()
    assert bag.main([str(src), str(tmp_path / "exists")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert bag.main([str(src), str(tmp_path / "o2"), "--topics", "/nope"]) == 2
    assert "not in bag" in capsys.readouterr().err
    for quality in ("0", "101"):        # OpenCV would clamp it with a warning on every frame
        with pytest.raises(SystemExit):
            bag.main([str(src), str(tmp_path / "o2"), "--jpeg-quality", quality])
        assert f"argument --jpeg-quality: {quality} is out of range; give 1 to 100" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_cli_end_to_end_with_shipped_weights(tmp_path, frames):
    src = write_image_bag(frames[:3], tmp_path / "in")
    assert bag.main([str(src), str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert len(_read(tmp_path / "out")["/camera/image_raw/derained"]) == 3


def test_cli_usage_errors_are_status_2_with_one_line(tmp_path, capsys, frames):
    """Unwritable outputs once gave a traceback and status 1, the same as 'some frames skipped'."""
    src = write_image_bag(frames[:1], tmp_path / "in")
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile" / "out", "/proc/pcnet_out"):
        assert bag.main([str(src), str(out), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pcnet-bag: ") and "cannot write" in err and "Traceback" not in err
        assert err.count("\n") == 1
    empty = tmp_path / "empty"
    with bagio.bag_writer(empty, "mcap"):
        pass
    assert bag.main([str(empty), str(tmp_path / "o1"), "--device", "cpu"]) == 2
    assert "is empty" in capsys.readouterr().err
    notes = tmp_path / "notes"
    with bagio.bag_writer(notes, "sqlite3") as w:
        conn = w.add_connection("/note", "std_msgs/msg/String", typestore=STORE)
        w.write(conn, 1, STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
    assert bag.main([str(notes), str(tmp_path / "o2"), "--device", "cpu"]) == 2
    assert "no sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage topics" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_every_tool_takes_the_same_engine_flags(tmp_path, frames):
    src = write_image_bag(frames[:2], tmp_path / "in")
    assert bag.main([str(src), str(tmp_path / "out"), "--weights", "light", "--device", "cpu",
                     "--backend", "eager", "--threads", "1"]) == 0


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_compressed_topics_from_real_jpeg_frames(tmp_path, tiny_model, storage):
    """A camera's JPEG stream in a bag is derained into CompressedImage topics, in batches."""
    from conftest import shared_or_skip
    from pcnet_ros.tools.image_bag import load_files

    jpegs = load_files(shared_or_skip("real-rain-video", "rb2"), limit=5)
    src = write_image_bag(jpegs, tmp_path / "in", topic="/cam/image_raw/compressed", fps=5, storage=storage)
    counts = bag.derain_bag(src, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), progress=False, batch=2)
    assert counts == {"copied": 5 + 1, "derained": 5, "skipped": 0, "replaced": 0}
    out = _read(tmp_path / "out")
    rainy, clean, residue = (out[t] for t in ("/cam/image_raw/compressed", "/cam/image_raw/derained/compressed",
                                              "/cam/image_raw/rain_residue/compressed"))
    assert [t for t, _ in clean] == [t for t, _ in rainy] == [t for t, _ in residue]
    for (_, m_in), (_, m_out), (_, m_res) in zip(rainy, clean, residue):
        assert m_out.header == m_in.header and m_res.header == m_in.header
        assert m_out.format == "bgr8; jpeg compressed bgr8" and m_res.format == "bgr8; png compressed bgr8"
        a, _ = image_codec.decode_compressed(m_in)
        b, _ = image_codec.decode_compressed(m_out)
        assert a.shape == b.shape == (360, 640, 3)
    with Reader(tmp_path / "out") as r:
        types = {c.topic: c.msgtype for c in r.connections}
    assert types["/cam/image_raw/derained/compressed"] == "sensor_msgs/msg/CompressedImage"


def test_corrupt_jpeg_in_a_bag_is_skipped_and_reported(tmp_path, tiny_model, capsys):
    good = write_image_bag([b"\xff\xd8 broken", b"also broken"], tmp_path / "in", topic="/c/image_raw/compressed")
    counts = bag.derain_bag(good, tmp_path / "out", DerainEngine(tiny_model, device="cpu"), progress=False)
    assert counts["skipped"] == 2 and counts["derained"] == 0
    assert "bad_compressed" in capsys.readouterr().out


def test_frames_over_the_memory_budget_are_skipped_before_decoding(tmp_path, tiny_model, rng, capsys):
    """A recorded JPEG whose header claims 20000x20000 is skipped unread, as is a raw frame over the budget;
    the rest of the bag is derained and every input message is still copied."""
    from conftest import forged_jpeg
    from pcnet_ros.tools.common import ToolBudget

    import cv2
    ok, good = cv2.imencode(".jpg", rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8))
    src = write_image_bag([good.tobytes(), forged_jpeg(20000, 20000), good.tobytes()], tmp_path / "in",
                          topic="/c/image_raw/compressed")
    engine = DerainEngine(tiny_model, device="cpu")
    counts = bag.derain_bag(src, tmp_path / "out", engine, progress=False, budget=ToolBudget(mb=64))
    assert counts == {"copied": 3 + 1, "derained": 2, "skipped": 1, "replaced": 0}
    assert "skipped (20000x20000 would need about" in capsys.readouterr().out
    assert len(_read(tmp_path / "out")["/c/image_raw/derained/compressed"]) == 2

    raw = write_image_bag([rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8),
                           rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)], tmp_path / "raw")
    counts = bag.derain_bag(raw, tmp_path / "raw_out", engine, progress=False, budget=ToolBudget(mb=1))
    assert counts["derained"] == 1 and counts["skipped"] == 1
    assert "64x64 would need about 3 MB, over the 1 MB budget" in capsys.readouterr().out
    [(_, msg)] = _read(tmp_path / "raw_out")["/camera/image_raw/derained"]
    assert (msg.height, msg.width) == (16, 16)
    assert bag.main([str(raw), str(tmp_path / "cli"), "--device", "cpu", "--backend", "eager",
                     "--max-frame-memory-mb", "1", "--max-side", "16"]) == 0
