"""One run at a time per output folder.

Two `showdown run` into the same folder would resume the same document, run the same probes twice and overwrite
each other's saves. The first takes an exclusive lock (flock on `<out>/.showdown-run.lock`, released by the kernel
when the process dies, so a killed run never leaves a stale lock) and writes who holds it; a second refuses with one
line naming the holder, or waits when asked to. The lock is re-entrant within a process (`--framework all` takes it
once for every framework, each run inside takes it again).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".showdown-run.lock"
_held: dict[str, tuple[int, int]] = {}  # resolved folder -> (fd, depth)


class FolderBusy(Exception):
    """Another run holds the output folder; the message names it."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return "another showdown process"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')} "
            f"({info.get('command', 'showdown run')})")


@contextmanager
def folder_lock(out_dir: Path, wait: bool = False, say: Callable[[str], None] = lambda text: None,
                poll_s: float = 0.5) -> Iterator[None]:
    """Hold the run lock of `out_dir` for the block; FolderBusy when another process holds it (unless `wait`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = str(out_dir.resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    path = out_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not wait:
                    raise FolderBusy(f"{out_dir} is in use by another run ({holder}); wait for it to finish, "
                                     "choose another --out, or pass --wait to queue behind it") from None
                if not announced:
                    say(f"waiting for the run that holds {out_dir} ({holder})")
                    announced = True
                time.sleep(poll_s)
        stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": stamp,
                                 "command": " ".join(["showdown", *sys.argv[1:]])[:300]}).encode())
        _held[key] = (fd, 1)
        try:
            yield
        finally:
            _held.pop(key, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
