"""What vehicle teams wire the node into, over real DDS: compressed images, camera_info, rain level, lifecycle."""
from pathlib import Path
import signal
import sys
import threading
import time

from geometry_msgs.msg import Vector3Stamped
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from conftest import forged_jpeg, shared_or_skip
from pcnet_ros.ros import image_codec
from pcnet_ros.tools.common import process_memory_mb
from ros_harness import Collector, Diagnostics, NodeProcess, set_params, wait_until


def _weights() -> dict:
    from pcnet_ros.core.weights import resolve_weights

    return {"weights": str(resolve_weights("light")), "device": "cpu", "torch_threads": 1, "warmup": False}


def _jpegs(n: int) -> list[bytes]:
    """Real rain video frames, as a camera's JPEG stream carries them."""
    frames = sorted(shared_or_skip("real-rain-video", "ra1").glob("*.jpg"))[:n]
    return [p.read_bytes() for p in frames]


def _compressed_msg(data: bytes, k: int) -> CompressedImage:
    msg = CompressedImage(format="jpeg", data=data)
    msg.header.frame_id = f"cam_{k}"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + k, 1000 * k
    return msg


def _stamp(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def _wait_matched(pub, *collectors, timeout=60):
    assert wait_until(lambda: pub.get_subscription_count() > 0
                      and all(c.sub.get_publisher_count() > 0 for c in collectors), timeout)


def test_compressed_in_raw_and_compressed_out(graph, tmp_path):
    ns = "/jpeg"
    proc = NodeProcess({**_weights(), "input_topics": ["cam/image_raw"], "input_transport": "compressed",
                        "output_transport": "raw+compressed", "jpeg_quality": 80}, ns, tmp_path)
    try:
        node = graph.node("jpeg_pub")
        pub = node.create_publisher(CompressedImage, f"{ns}/cam/image_raw/compressed", 10)
        raw = Collector(graph.node("jpeg_raw"), f"{ns}/cam/image_raw/derained")
        jpg = Collector(graph.node("jpeg_jpg"), f"{ns}/cam/image_raw/derained/compressed", CompressedImage)
        png = Collector(graph.node("jpeg_png"), f"{ns}/cam/image_raw/rain_residue/compressed", CompressedImage)
        diag = Diagnostics(graph.node("jpeg_diag"))
        _wait_matched(pub, raw, jpg, png)
        [data] = _jpegs(1)
        sent = _compressed_msg(data, 1)
        pub.publish(sent)
        assert raw.wait_for(1, 60) and jpg.wait_for(1, 30) and png.wait_for(1, 30), proc.log()
        img, (out_jpg,), (out_png,) = raw.msgs()[0], jpg.msgs(), png.msgs()
        assert img.encoding == "bgr8" and (img.height, img.width) == (480, 640)      # the JPEG's own size
        for m in (img, out_jpg, out_png):
            assert _stamp(m) == _stamp(sent) and m.header.frame_id == "cam_1"
        assert out_jpg.format == "bgr8; jpeg compressed bgr8" and out_png.format == "bgr8; png compressed bgr8"
        clean_from_jpeg, _ = image_codec.decode_compressed(out_jpg)
        clean_raw, _ = image_codec.decode(img)
        assert np.abs(clean_from_jpeg.astype(int) - clean_raw).mean() < 3           # JPEG of the same image
        rainy, _ = image_codec.decode_compressed(sent)
        assert np.abs(clean_raw.astype(int) - rainy).mean() > 0.2                    # actually derained

        name = f"pcnet: {ns}/cam/image_raw"
        for n, bad in enumerate((b"\xff\xd8\xff\xe0 not really a jpeg", b"\x89PNG\r\n\x1a\n" + bytes(40)), 1):
            pub.publish(_compressed_msg(bad, 2))      # one at a time: a newer frame would replace a waiting one
            assert wait_until(lambda n=n: int(diag.values(name).get("rejected_bad_compressed", 0)) == n,
                              20), diag.latest(name)
        # a few hundred bytes declaring 20000x20000 are refused on their header, before a decoder allocates it
        peak = process_memory_mb(proc.proc.pid, "VmHWM")
        pub.publish(_compressed_msg(forged_jpeg(20000, 20000), 4))
        assert wait_until(lambda: int(diag.values(name).get("rejected_oversize", 0)) == 1, 20), diag.latest(name)
        assert process_memory_mb(proc.proc.pid, "VmHWM") < peak + 300      # decoding it first took 2.4 GB more
        raw.clear(), jpg.clear()
        pub.publish(_compressed_msg(data, 3))
        assert raw.wait_for(1, 60)                                                     # and it keeps serving
        assert jpg.wait_for(1, 30)        # both outputs in hand: a late one would land after the next clear()

        # enabled=false still decodes for the raw output: the same header check, junk goes out nowhere
        assert all(r.successful for r in set_params(graph.node("jpeg_params"), f"{ns}/pcnet", enabled=False,
                                                    max_frame_memory_mb=512))
        raw.clear(), jpg.clear()
        pub.publish(_compressed_msg(forged_jpeg(20000, 20000), 5))
        assert wait_until(lambda: int(diag.values(name).get("rejected_oversize", 0)) == 2, 20), diag.latest(name)
        pub.publish(_compressed_msg(b"\xff\xd8\xff\xe0 not really a jpeg", 6))
        assert wait_until(lambda: int(diag.values(name).get("rejected_bad_compressed", 0)) == 3,
                          20), diag.latest(name)
        assert process_memory_mb(proc.proc.pid, "VmHWM") < peak + 300
        pub.publish(_compressed_msg(data, 7))
        assert raw.wait_for(1, 30) and jpg.wait_for(1, 30), proc.log()
        assert [_stamp(m) for m in raw.msgs() + jpg.msgs()] == [(107, 7000)] * 2     # only the good frame
        assert bytes(jpg.msgs()[0].data) == data                                       # passed through as sent
        np.testing.assert_array_equal(image_codec.decode(raw.msgs()[0])[0], rainy)
        assert int(diag.values(name).get("errors", 0)) == 0
    finally:
        assert proc.stop()[0] == 0


def _info(stamp: tuple[int, int], k: int) -> CameraInfo:
    info = CameraInfo(width=64, height=48, distortion_model="plumb_bob")
    info.header.frame_id = "optical"
    info.header.stamp.sec, info.header.stamp.nanosec = stamp
    info.k = [50.0 + k, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    return info


def test_camera_layout_relays_camera_info_for_every_derained_frame(graph, tmp_path, rng):
    """A consumer pairing image and camera_info by stamp, as image_proc's approximate-time sync does."""
    ns = "/chain"
    proc = NodeProcess({**_weights(), "input_topics": ["front/image_raw"], "output_layout": "camera"}, ns, tmp_path)
    try:
        node = graph.node("chain_pub")
        pub = node.create_publisher(Image, f"{ns}/front/image_raw", 10)
        info_pub = node.create_publisher(CameraInfo, f"{ns}/front/camera_info", 10)
        images = Collector(graph.node("chain_img"), f"{ns}/front/derained/image_raw")
        infos = Collector(graph.node("chain_info"), f"{ns}/front/derained/camera_info", CameraInfo)
        res_infos = Collector(graph.node("chain_rinfo"), f"{ns}/front/rain_residue/camera_info", CameraInfo)
        levels = Collector(graph.node("chain_level"), f"{ns}/front/rain_level", Vector3Stamped)
        _wait_matched(pub, images, infos, levels)
        assert wait_until(lambda: info_pub.get_subscription_count() > 0, 30)
        sent = []
        for k in range(8):
            stamp = (500 + k, 7 * k)
            info_pub.publish(_info(stamp, k))                       # a driver sends info with each image
            msg = image_codec.encode(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "rgb8")
            img = Image(**msg)
            img.header.frame_id, (img.header.stamp.sec, img.header.stamp.nanosec) = "optical", stamp
            pub.publish(img)
            sent.append(stamp)
            time.sleep(0.4)
        assert images.wait_for(2, 60), proc.log()
        time.sleep(1.0)
        by_stamp = {_stamp(i): i for i in infos.msgs()}
        derained = images.msgs()
        assert derained and all(_stamp(m) in by_stamp for m in derained)            # every frame finds its info
        for m in derained:
            info = by_stamp[_stamp(m)]
            k = sent.index(_stamp(m))
            assert list(info.k)[0] == 50.0 + k and info.header.frame_id == "optical"   # relayed unchanged
        assert {_stamp(i) for i in res_infos.msgs()} == {_stamp(m) for m in derained}
        level_stamps = {_stamp(v) for v in levels.msgs()}
        assert {_stamp(m) for m in derained} <= level_stamps
        for v in levels.msgs():
            assert 0 <= v.vector.x <= 1 and 0 <= v.vector.y <= 1 and v.vector.z in (0.0, 1.0, 2.0)
    finally:
        assert proc.stop()[0] == 0


def test_camera_info_lookup_is_safe_while_infos_arrive():
    """camera_info arrives on the executor while the inference thread looks one up: the lookup must not see the
    cache change under it (unguarded, it raised "OrderedDict mutated during iteration" and the frame failed)."""
    from pcnet_ros.ros.node import Camera

    cam = Camera("front/image_raw", "/front/image_raw")
    for k in range(3):
        cam.keep_info(_info((100 + k, 0), k))
    assert list(cam.info_for(_info((101, 0), 0).header.stamp).k)[0] == 51.0            # the same stamp
    assert list(cam.info_for(_info((110, 0), 0).header.stamp).k)[0] == 52.0            # else the nearest
    stop, errors, interval = threading.Event(), [], sys.getswitchinterval()

    def arrive():
        k = 0
        while not stop.is_set():
            cam.keep_info(_info((1000 + k, 0), k))
            k += 1

    sys.setswitchinterval(1e-6)                  # switch threads often, so an unguarded lookup meets a change
    feeder = threading.Thread(target=arrive)
    feeder.start()
    try:
        far = _info((10**6, 0), 0).header.stamp
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            try:
                assert cam.info_for(far) is not None
            except RuntimeError as exc:
                errors.append(exc)
    finally:
        stop.set()
        feeder.join()
        sys.setswitchinterval(interval)
    assert not errors, f"{len(errors)} lookups failed: {errors[0]!r}"
    assert len(cam.infos) == Camera.INFOS_KEPT   # the cache stays bounded, as the README says
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"of the last {Camera.INFOS_KEPT}\nreceived, the nearest in time" in readme
    cam.forget_infos()
    assert cam.info_for(far) is None


def test_rain_level_reads_heavier_for_heavier_rain(graph, tmp_path):
    """Dry < light rain < heavy rain on the level topic, and the numbers reach diagnostics."""
    from pcnet_ros.imageio import read_rgb

    data = shared_or_skip()
    frames = {"dry": read_rgb(data / "rain100l-train" / "clean" / "norain-10.png"),
              "light": read_rgb(data / "rain100l-train" / "rain" / "norain-10.png"),
              "heavy": read_rgb(data / "rain100h-train-sample" / "rain" / "norain-13.png")}
    ns = "/level"
    proc = NodeProcess({**_weights(), "input_topics": ["image_raw"]}, ns, tmp_path)
    try:
        node = graph.node("level_pub")
        pub = node.create_publisher(Image, f"{ns}/image_raw", 10)
        levels = Collector(graph.node("level_sub"), f"{ns}/image_raw/rain_level", Vector3Stamped)
        diag = Diagnostics(graph.node("level_diag"))
        _wait_matched(pub, levels)
        got = {}
        for k, (name, rgb) in enumerate(frames.items()):
            img = Image(**image_codec.encode(rgb, "rgb8"))
            img.header.stamp.sec = k + 1
            levels.clear()
            pub.publish(img)
            assert levels.wait_for(1, 60), proc.log()
            got[name] = levels.msgs()[0].vector
            assert levels.msgs()[0].header.stamp.sec == k + 1
        assert got["dry"].y < got["light"].y < got["heavy"].y
        assert got["dry"].z == 0.0 and got["heavy"].z == 2.0
        name = f"pcnet: {ns}/image_raw"
        assert wait_until(lambda: float(diag.values(name).get("rain_coverage", -1)) == pytest.approx(
            got["heavy"].y, abs=0.01), 10), diag.latest(name)
    finally:
        assert proc.stop()[0] == 0


def _lifecycle(node, fqn, timeout: float = 60):
    change = node.create_client(ChangeState, f"{fqn}/change_state")
    get = node.create_client(GetState, f"{fqn}/get_state")
    assert change.wait_for_service(60) and get.wait_for_service(10)

    def call(client, req):
        fut = client.call_async(req)
        assert wait_until(fut.done, timeout)
        return fut.result()

    def transition(tid) -> bool:
        return call(change, ChangeState.Request(transition=Transition(id=tid))).success

    def state() -> int:
        return call(get, GetState.Request()).current_state.id

    return transition, state


def test_lifecycle_transitions_over_dds(graph, tmp_path, rng):
    ns = "/managed"
    # a warm-up that takes about a second (eager, one thread, 640x480), to see that configure waits for it
    proc = NodeProcess({**_weights(), "input_topics": ["image_raw"], "input_qos": "reliable", "backend": "eager",
                        "warmup": True, "warmup_sizes": "640x480"}, ns, tmp_path,
                       module="pcnet_ros.ros.lifecycle_node")
    node = graph.node("lc_client")
    pub = node.create_publisher(Image, f"{ns}/image_raw", 10)
    out = Collector(graph.node("lc_out"), f"{ns}/image_raw/derained")
    transition, state = _lifecycle(node, f"{ns}/pcnet")
    frame = Image(**image_codec.encode(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "rgb8"))

    def serves() -> bool:
        out.clear()
        pub.publish(frame)
        return out.wait_for(1, 15)

    def subscribed() -> bool:
        return node.count_subscribers(f"{ns}/image_raw") > 0
    try:
        assert state() == State.PRIMARY_STATE_UNCONFIGURED and not subscribed()
        assert "PCNet on" not in proc.log()                              # nothing loaded yet
        assert transition(Transition.TRANSITION_CONFIGURE)
        assert "warmed up 640x480" in proc.log()                         # configure returned once warm
        assert state() == State.PRIMARY_STATE_INACTIVE
        assert "PCNet on cpu" in proc.log() and not subscribed()          # model loaded, no topics
        assert transition(Transition.TRANSITION_ACTIVATE) and state() == State.PRIMARY_STATE_ACTIVE
        assert wait_until(lambda: subscribed() and out.sub.get_publisher_count() > 0, 20)
        assert wait_until(lambda: pub.get_subscription_count() > 0, 20) and serves()
        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == State.PRIMARY_STATE_INACTIVE
        assert wait_until(lambda: not subscribed(), 10)
        out.clear()
        pub.publish(frame)
        time.sleep(1.5)
        assert out.msgs() == []                                           # stopped processing
        assert transition(Transition.TRANSITION_ACTIVATE)                 # without reloading the model
        assert proc.log().count("PCNet on cpu") == 1
        assert wait_until(lambda: pub.get_subscription_count() > 0 and out.sub.get_publisher_count() > 0, 20)
        assert serves()
        assert transition(Transition.TRANSITION_DEACTIVATE) and transition(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
        assert proc.log().count("PCNet on cpu") == 2                      # cleanup released it; loaded again
        assert wait_until(lambda: pub.get_subscription_count() > 0 and out.sub.get_publisher_count() > 0, 20)
        assert serves()
        assert transition(Transition.TRANSITION_ACTIVE_SHUTDOWN) and state() == State.PRIMARY_STATE_FINALIZED
        assert wait_until(lambda: not subscribed(), 10)
    finally:
        rc, _ = proc.stop()
    assert rc == 0, proc.log()
    assert "Traceback" not in proc.log()


def test_lifecycle_configure_fails_when_the_warm_up_raises_and_the_fix_needs_no_restart(graph, tmp_path, rng):
    """A warm-up that breaks fails configure: the node says why and stays unconfigured and alive, and the user
    sets what was wrong and configures again, without a restart. The failure is real, not injected: the one a
    robot meets when a warm-up size does not fit the device's memory. The node runs under ``prlimit --data``
    (4 GiB of private memory, as a launch file's ``prefix`` would set it), with the memory budget raised over
    it, and warms up 6144x6144, whose first feature map alone is 4.8 GB: that allocation fails at once,
    whatever the machine's RAM. While unconfigured, every parameter can be set, each checked when set; once
    configured, only the run-time ones."""
    ns = "/managed_broken"
    proc = NodeProcess({**_weights(), "input_topics": ["image_raw"], "backend": "eager", "device": "cpu",
                        "warmup": True, "warmup_sizes": "6144x6144", "max_input_size": 0,
                        "max_frame_memory_mb": 65536}, ns, tmp_path,
                       module="pcnet_ros.ros.lifecycle_node", prefix=["prlimit", f"--data={4 << 30}"])
    node = graph.node("lc_broken")
    transition, state = _lifecycle(node, f"{ns}/pcnet", timeout=120)
    pub = node.create_publisher(Image, f"{ns}/image_raw", 10)
    out = Collector(graph.node("lc_broken_out"), f"{ns}/image_raw/derained")
    frame = Image(**image_codec.encode(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "rgb8"))
    try:
        assert not transition(Transition.TRANSITION_CONFIGURE), proc.log()
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert "configure failed: warm-up" in proc.log() and "can't allocate memory" in proc.log(), proc.log()
        assert proc.proc.poll() is None
        # unconfigured: a static parameter and a run-time one are taken, a bad value is refused when set
        assert [r.successful for r in set_params(node, f"{ns}/pcnet", warmup_sizes="64x48", enabled=False)] == [
            True, True]
        [bad] = set_params(node, f"{ns}/pcnet", warmup_sizes="64 by 48")
        assert not bad.successful and "warmup_sizes must be WIDTHxHEIGHT" in bad.reason
        assert transition(Transition.TRANSITION_CONFIGURE), proc.log()
        assert "warmed up 64x48" in proc.log() and state() == State.PRIMARY_STATE_INACTIVE
        # configured: the static one is refused, with what to do instead
        [static] = set_params(node, f"{ns}/pcnet", warmup_sizes="640x480")
        assert not static.successful and "cleanup the node" in static.reason, static.reason
        assert transition(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: pub.get_subscription_count() > 0 and out.sub.get_publisher_count() > 0, 20)
        pub.publish(frame)
        assert out.wait_for(1, 15)
        assert bytes(out.msgs()[0].data) == bytes(frame.data)        # enabled=false, set while unconfigured
        assert proc.log().count("PCNet on cpu") == 2
    finally:
        rc, _ = proc.stop()
    assert rc == 0, proc.log()
    assert "Traceback" not in proc.log()


@pytest.mark.parametrize("stop_in", ["unconfigured", "active"])
def test_lifecycle_node_exits_cleanly_on_sigint_in_any_state(graph, tmp_path, stop_in):
    ns = f"/managed_{stop_in}"
    proc = NodeProcess({**_weights(), "input_topics": ["image_raw"]}, ns, tmp_path,
                       module="pcnet_ros.ros.lifecycle_node")
    transition, state = _lifecycle(graph.node(f"lc_sig_{stop_in}"), f"{ns}/pcnet")
    if stop_in == "active":
        assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
    t0 = time.monotonic()
    for _ in range(2):        # Ctrl-C under ros2 launch: the terminal's SIGINT, then launch's own
        proc.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    rc = proc.proc.wait(10)
    assert rc == 0 and time.monotonic() - t0 < 2.0, proc.log()
