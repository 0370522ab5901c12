"""Progress bars that stay readable in a terminal and small in a log file."""
from __future__ import annotations

import sys

from tqdm import tqdm

#: Seconds between redraws when stderr is a file (nohup, CI): a bar redrawn ten times a second made
#: training logs of a megabyte, every redraw on one line.
LOG_INTERVAL_S = 30.0


def progress_bar(*args, **kwargs) -> tqdm:
    """``tqdm`` as usual on a terminal; redrawn every ``LOG_INTERVAL_S`` when writing to a log."""
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
    return tqdm(*args, **kwargs)
