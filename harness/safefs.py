"""Reading and writing inside a folder that someone else could have tampered with.

A worker in a container writes its records and logs into the run's work folder, which the host then reads. The
container runs untrusted framework code: it may leave a symbolic link where the host expects a file (records/x.json
-> /etc/shadow), or replace a folder with a link (logs -> /root). The host runs these helpers instead of plain
open(): every path is walked one component at a time from a descriptor of the root, with O_NOFOLLOW, so no link
is ever followed and nothing outside the root is ever opened; only regular files are read, and only up to a size
limit. chown_tree changes owners without following links (os.fwalk + follow_symlinks=False).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DEFAULT_LIMIT = 64 * 1024 * 1024


class UnsafePath(OSError):
    """A path inside the folder is a link, not a regular file or folder, or leads outside it."""


def _parts(relative: str | Path) -> list[str]:
    parts = [p for p in Path(relative).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or Path(relative).is_absolute():
        raise UnsafePath(errno.EINVAL, f"not a path inside the folder: {relative}")
    return parts


@contextmanager
def _parent_fd(root: Path, parts: list[str]) -> Iterator[int]:
    """A descriptor of the folder holding the last part, reached without following any link."""
    fds = [os.open(root, _DIR_FLAGS)]
    try:
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(exc.errno, f"{part} is a link or not a folder") from None
                raise
        yield fds[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _open_file(root: Path, relative: str | Path, flags: int, mode: int = 0o644) -> int:
    parts = _parts(relative)
    with _parent_fd(root, parts) as parent:
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(exc.errno, f"{relative} is a symbolic link") from None
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(errno.EINVAL, f"{relative} is not a regular file")
    return fd


def read_bytes(root: Path, relative: str | Path, limit: int = DEFAULT_LIMIT) -> bytes:
    """The file's bytes (OSError when missing, UnsafePath when a link or not a regular file, or over `limit`)."""
    fd = _open_file(root, relative, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnsafePath(errno.EFBIG, f"{relative} is larger than {limit} bytes")
    return data


def read_json(root: Path, relative: str | Path, limit: int = DEFAULT_LIMIT) -> Any:
    """Parsed JSON, or ValueError/OSError: never follows a link, never reads outside `root`."""
    return json.loads(read_bytes(root, relative, limit).decode("utf-8"))


def tail(root: Path, relative: str | Path, chars: int) -> str | None:
    """The last `chars` characters of a log inside `root` (None when missing, unsafe or empty)."""
    try:
        fd = _open_file(root, relative, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - chars))
        text = fh.read(chars).decode("utf-8", "replace")
    return text if text.strip() else None


def open_append(root: Path, relative: str | Path) -> Any:
    """A binary file object appending to root/relative (created if missing; the folders must exist)."""
    fd = _open_file(root, relative, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "ab")


def append(root: Path, relative: str | Path, data: bytes) -> None:
    with open_append(root, relative) as fh:
        fh.write(data)


def list_files(root: Path, relative: str | Path, suffix: str = "") -> list[str]:
    """Names of the regular files (not links) in root/relative ending in `suffix`; [] when it is missing or unsafe."""
    try:
        parts = _parts(Path(relative) / "x")
        with _parent_fd(root, parts) as fd:
            names = []
            with os.scandir(fd) as it:
                for entry in it:
                    if entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                        names.append(entry.name)
    except OSError:
        return []
    return sorted(names)


def unlink(root: Path, relative: str | Path) -> None:
    """Remove root/relative (a link is removed itself, never its target); missing is fine."""
    parts = _parts(relative)
    try:
        with _parent_fd(root, parts) as parent:
            os.unlink(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        pass


def make_dirs(root: Path, relative: str | Path) -> None:
    """Create root/relative's folders; refuses when a component is a link."""
    parts = _parts(relative)
    fds = [os.open(root, _DIR_FLAGS)]
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fds[-1])
            except FileExistsError:
                pass
            try:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(exc.errno, f"{part} is a link or not a folder") from None
                raise
    finally:
        for fd in reversed(fds):
            os.close(fd)


def ensure_dir(root: Path, name: str) -> None:
    """root/name is a real folder afterwards: a link or a file left there (by a worker) is removed, not followed."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
    finally:
        os.close(fd)


def open_fresh_append(root: Path, relative: str | Path) -> Any:
    """Like open_append, but a link or other non-file left at that path is removed first (never followed)."""
    try:
        return open_append(root, relative)
    except UnsafePath:
        unlink(root, relative)
        return open_append(root, relative)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give root and everything under it to uid:gid without following any link (links themselves are skipped)."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in [*dirnames, *filenames]:
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    continue
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                pass
