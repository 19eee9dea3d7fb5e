"""The files through which the host and a worker talk (see harness.worker): their names, the worker's exit codes,
and how a log's tail is read. Both sides import this small module; neither imports the other."""

from __future__ import annotations

import os
from pathlib import Path

EXIT_UNAVAILABLE = 3
EXIT_NO_DEVICE = 4
EXIT_ORPHANED = 70
LOG_TAIL_CHARS = 4000


def record_filename(probe_id: str) -> str:
    return probe_id.replace("/", "__") + ".json"


def log_filename(probe_id: str) -> str:
    return probe_id.replace("/", "__") + ".log"


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str | None:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    return text if text.strip() else None
