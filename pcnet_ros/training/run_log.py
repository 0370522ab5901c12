"""A training run's log, ``OUT/log.jsonl``: one JSON record per line, each with its step.

pcnet-train appends to it; the weights card and the tests read it back. One
module owns the file's name and format so that writer and readers agree.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from pcnet_ros.paths import atomic_write

LOG_NAME = "log.jsonl"


def _complete_records(text: str) -> list[tuple[str, dict]]:
    """Each whole line with its record; a last line cut short by a killed writer is left out."""
    out = []
    for line in text.splitlines(keepends=True):
        if not line.strip():
            continue
        if not line.endswith("\n"):
            break                       # torn: the writer died mid-line, and flush() always ends a whole line
        out.append((line, json.loads(line)))
    return out


def open_run_log(out: Path, resume_step: int) -> TextIO:
    """The run's log, opened for appending at ``resume_step``.

    A run killed between checkpoints logged steps that its resume runs again; those lines,
    and a torn last line, are dropped first, so each step appears once and every line parses.
    """
    path = Path(out) / LOG_NAME
    if path.exists():
        text = path.read_text()
        kept = "".join(line for line, rec in _complete_records(text) if rec.get("step", 0) <= resume_step)
        if kept != text:
            atomic_write(path, lambda tmp: tmp.write_text(kept))
    return open(path, "a")


def append_record(log: TextIO, record: dict) -> None:
    """Write one record and flush it, so that a killed run keeps every line it logged."""
    log.write(json.dumps(record) + "\n")
    log.flush()


def read_run_log(out: Path) -> list[dict]:
    """Every whole record of the run in OUT, oldest first (a torn last line is left out)."""
    return [rec for _, rec in _complete_records((Path(out) / LOG_NAME).read_text())]


def validations(out: Path) -> list[dict]:
    """The records of the run's validations (those that carry a val_psnr)."""
    return [r for r in read_run_log(out) if "val_psnr" in r]
