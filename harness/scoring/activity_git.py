"""Activity figures read from a framework's git history: a local clone or a bare mirror, read with `git` itself.

Everything is computed from `git log` and `git for-each-ref` output, so the figures can be re-read by anyone with a
copy of the repository and no network. The window is the 365 days ending on the as-of date, inclusive: a commit
dated 365 days before counts, one dated 366 days before does not (dates are taken in UTC, by the committer date).
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

WINDOW_DAYS = 365


class GitActivityError(Exception):
    """The path is not a git repository, its history is empty, or git could not be run; the message says which."""


def _git(path: Path, *args: str) -> str:
    exe = shutil.which("git")
    if exe is None:
        raise GitActivityError("git is not installed (needed to read a repository's history)")
    proc = subprocess.run([exe, "-C", str(path), *args], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", check=False)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["git failed"])[0]
        raise GitActivityError(f"{path}: git {args[0]}: {first}")
    return proc.stdout


def _utc_date(stamp: str) -> _dt.date:
    return _dt.datetime.fromisoformat(stamp).astimezone(_dt.UTC).date()


def origin_of(path: Path) -> str:
    """Where the repository came from, as "github:owner/name" when that can be told (the remote named origin, or a
    mirror folder named owner+name), else "local:PATH"."""
    try:
        url = _git(path, "config", "--get", "remote.origin.url").strip()
    except GitActivityError:
        url = ""
    m = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", url)
    if m:
        return f"github:{m.group(1)}/{m.group(2)}"
    for part in reversed(path.resolve().parts):
        m = re.fullmatch(r"([A-Za-z0-9][\w-]*)\+([\w.-]+)", part)
        if m:
            return f"github:{m.group(1)}/{m.group(2)}"
    return f"local:{path.resolve()}"


def in_window(day: _dt.date, as_of: _dt.date, days: int = WINDOW_DAYS) -> bool:
    return 0 <= (as_of - day).days <= days


def git_activity(path: Path, as_of: _dt.date | None = None, origin: str | None = None) -> dict[str, Any]:
    """Commits and distinct authors (by e-mail, lower-cased) on HEAD in the 365 days up to `as_of`, the last commit
    and the weeks since it, tags in the window (each dated by its tagger date, or its commit's date for a
    lightweight tag) and in all. `as_of` defaults to the date of the newest commit on HEAD (said in `as_of_rule`)."""
    path = Path(path)
    if not path.exists():
        raise GitActivityError(f"{path}: no such directory")
    try:
        git_dir = _git(path, "rev-parse", "--absolute-git-dir").strip()
        top = _git(path, "rev-parse", "--show-toplevel").strip() if _git(
            path, "rev-parse", "--is-bare-repository").strip() == "false" else git_dir
    except GitActivityError:
        raise GitActivityError(f"{path}: not a git repository") from None
    if path.resolve() not in (Path(git_dir).resolve(), Path(top).resolve()):  # a folder inside someone's work tree
        raise GitActivityError(f"{path}: not a git repository (it is a folder inside {top})")
    try:
        head = _git(path, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip()
    except GitActivityError:
        head = ""
    if not head:
        raise GitActivityError(f"{path}: empty history (HEAD has no commit)")
    commits = []
    for line in _git(path, "log", "--format=%H%x09%ae%x09%cI", "HEAD").splitlines():
        sha, email, stamp = line.split("\t")
        commits.append((sha, email.strip().lower(), _utc_date(stamp)))
    head_date = commits[0][2]
    rule = "given"
    if as_of is None:
        as_of, rule = max(c[2] for c in commits), "the date of the newest commit on HEAD"
    upto = [c for c in commits if c[2] <= as_of]
    window = [c for c in upto if in_window(c[2], as_of)]
    last = max((c[2] for c in upto), default=None)
    tags = []
    fmt = "%(refname:short)%09%(taggerdate:iso-strict)%09%(committerdate:iso-strict)%09%(*committerdate:iso-strict)"
    for line in _git(path, "for-each-ref", f"--format={fmt}", "refs/tags").splitlines():
        name, tagger, committer, peeled = (line.split("\t") + ["", "", ""])[:4]
        stamp = tagger or committer or peeled
        if stamp:
            tags.append((name, _utc_date(stamp)))
    tags_upto = [t for t in tags if t[1] <= as_of]
    latest_tag = max(tags_upto, key=lambda t: t[1], default=None)
    return {
        "origin": origin or origin_of(path),
        "head": head,
        "head_date": head_date.isoformat(),
        "as_of": as_of.isoformat(),
        "as_of_rule": rule,
        "window_days": WINDOW_DAYS,
        "commits_last_365d": len(window),
        "authors_last_365d": len({c[1] for c in window}),
        "last_commit": last.isoformat() if last else None,
        "weeks_since_last_commit": round((as_of - last).days / 7, 2) if last else None,
        "tags_last_365d": sum(1 for t in tags_upto if in_window(t[1], as_of)),
        "tags_total": len(tags),
        "latest_tag": latest_tag[0] if latest_tag else None,
        "latest_tag_date": latest_tag[1].isoformat() if latest_tag else None,
    }
