import threading
import time

from pcnet_ros.ros.frame_slots import FrameSlots
from pcnet_ros.ros.stats import CameraStats


def test_newest_wins_and_drops_are_counted():
    s = FrameSlots(1)
    assert s.put(0, "a") is False
    assert s.put(0, "b") is True
    assert s.put(0, "c") is True
    assert s.take(0) == (0, "c")
    assert s.dropped == [2]
    assert s.take(0.01) is None


def test_round_robin_between_cameras():
    s = FrameSlots(3)
    order = []
    for _ in range(3):
        for cam in range(3):
            s.put(cam, cam)
        for _ in range(3):
            order.append(s.take(0)[0])
    assert order == [0, 1, 2] * 3
    s.put(2, "x")
    s.put(0, "y")
    assert [s.take(0)[0], s.take(0)[0]] == [0, 2]  # continues after the last served camera


def test_close_wakes_a_waiting_consumer():
    s = FrameSlots(2)
    got = []
    t = threading.Thread(target=lambda: got.append(s.take(timeout=10)))
    t.start()
    time.sleep(0.05)
    s.close()
    t.join(1)
    assert not t.is_alive() and got == [None]
    assert s.take(0) is None


def test_stats_rates_and_percentiles():
    st = CameraStats(window_s=10)
    for i in range(11):
        st.on_input(t=100 + i * 0.1)          # 10 Hz
    for i in range(5):
        st.on_output(infer_s=0.01 * (i + 1), e2e_s=0.02 * (i + 1), t=100 + i * 0.2)
    st.on_reject("short_data")
    st.on_reject("short_data")
    snap = st.snapshot(now=101.0)
    assert abs(snap["input_rate_hz"] - 10) < 1e-6
    assert abs(snap["output_rate_hz"] - 5) < 1e-6
    assert snap["inference_ms_p50"] == 30.0 and snap["end_to_end_ms_p50"] == 60.0
    assert snap["rejected"] == 2 and st.rejected["short_data"] == 2
