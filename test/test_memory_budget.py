"""The one host-memory rule behind the node's max_frame_memory_mb and the tools' --max-frame-memory-mb."""
import pytest

from pcnet_ros.core.engine import DerainEngine
from pcnet_ros.core.memory_budget import estimate_frame_bytes, FRAME_BYTES_PER_PIXEL, FrameBudget


def test_a_cpu_engine_counts_each_of_its_model_passes(tiny_model):
    """Flip averaging runs the model once per view (2, or 4 on both axes), and budgets that many passes; the host
    copies are counted once."""
    one = FrameBudget.for_engine(4096, 0, DerainEngine(tiny_model, device="cpu"))
    two = FrameBudget.for_engine(4096, 0, DerainEngine(tiny_model, device="cpu", flip_average=True))
    four = FrameBudget.for_engine(4096, 0, DerainEngine(tiny_model, device="cpu", flip_average=True,
                                                        flip_axes="both"))
    assert (one.model_passes, two.model_passes, four.model_passes) == (1, 2, 4)
    host = FrameBudget(4096, 0, model_passes=0).need_mb(480, 640, 3)
    assert host == pytest.approx(480 * 640 * FRAME_BYTES_PER_PIXEL / 2**20)
    assert two.need_mb(480, 640, 3) - host == pytest.approx(2 * (one.need_mb(480, 640, 3) - host))


@pytest.mark.parametrize("mb", [50, 100, 130, 1000])
def test_a_batch_is_the_most_frames_that_fit_together_up_to_the_limit(mb):
    budget = FrameBudget(mb, max_side=1920)
    need = estimate_frame_bytes(320, 480, 3, 1920) / 2**20          # about 45 MB
    n = budget.batch_size(320, 480, 3, limit=4)
    assert n == max(1, min(4, int(mb // need)))
    assert n == 1 or budget.fits(320, 480, 3, n)
    assert n == 4 or not budget.fits(320, 480, 3, n + 1)


def test_max_side_bounds_the_model_pass_but_not_the_full_size_copies():
    full, capped = FrameBudget(1e9), FrameBudget(1e9, max_side=1000)
    assert capped.need_mb(4000, 6000, 3) < full.need_mb(4000, 6000, 3) / 10
    host = FrameBudget(1e9, max_side=1000, model_passes=0).need_mb(4000, 6000, 3)
    assert host == pytest.approx(4000 * 6000 * FRAME_BYTES_PER_PIXEL / 2**20) and capped.need_mb(4000, 6000, 3) > host
