"""Where the package's files live, and writing files so that readers never see half of one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

#: The source checkout (holds config/, weights/, launch/) when running from one.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
#: The shared data beside the checkout (training pairs, real rain video); absent on a robot.
SHARED_DATA = SOURCE_ROOT.parent / "shared" / "data"


def data_dirs(sub: str) -> list[Path]:
    """Where the package's ``sub`` folder (weights, config) may live: ament share dir, then source tree."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("pcnet_ros")) / sub)
    except Exception:  # not installed through colcon, or no ament index at all
        pass
    dirs.append(SOURCE_ROOT / sub)
    return dirs


def find_data_file(sub: str, name: str) -> Path | None:
    """The first ``sub/name`` in :func:`data_dirs`, or None."""
    for d in data_dirs(sub):
        if (d / name).is_file():
            return d / name
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` and rename tmp onto ``path``: a crash never leaves a half file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
