"""The host never follows a link a worker planted in its work folder: it changes, appends to and reads nothing outside
that folder (tests/test_docker.py runs the same attack from inside a real container)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import registry, safefs
from harness.runners.local import LocalRunner
from harness.runners.run import RunRequest, execute
from tests.fakes.adapters import VICTIM

SECRET = "top secret: the host must never read this back"


@pytest.fixture
def victim() -> Iterator[Path]:
    """Host files outside any run folder: one to read, one to append to, one to own."""
    root = Path(VICTIM)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(mode=0o755)
    (root / "secret").write_text(SECRET)
    (root / "appended").write_text("original\n")
    (root / "owned").write_text("mine\n")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def state(root: Path) -> dict[str, tuple[str, int, int, int]]:
    return {p.name: (p.read_text(), p.stat().st_uid, p.stat().st_gid, p.stat().st_mode) for p in sorted(root.iterdir())}


def test_planted_links_are_never_followed_by_the_host(victim: Path, tmp_path: Path, fakes: None) -> None:
    before = state(victim)
    req = RunRequest(registry.get("fake_symlink_planter"), "cpu", ["layers"], tmp_path / "results", LocalRunner(),
                     quick=True, probes=["layers/dense", "layers/sgd"])
    doc = execute(req).document
    crash = doc["records"]["layers/dense"]
    assert crash["status"] == "crashed"
    assert SECRET not in (crash["log_tail"] or "") and SECRET not in str(doc)
    assert doc["records"]["layers/sgd"]["status"] == "ok"  # the planted "record" was not taken; the probe ran
    assert state(victim) == before


def test_safe_reads_refuse_links_and_escapes(victim: Path, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").symlink_to(victim / "secret")
    (tmp_path / "records").symlink_to(victim)
    assert safefs.tail(tmp_path, "logs/a.log", 100) is None
    with pytest.raises(safefs.UnsafePath):
        safefs.read_bytes(tmp_path, "logs/a.log")
    with pytest.raises(safefs.UnsafePath):
        safefs.read_json(tmp_path, "records/secret")
    assert safefs.list_files(tmp_path, "records", "") == []
    with pytest.raises(safefs.UnsafePath):
        safefs.read_bytes(tmp_path, "../x")
    with pytest.raises(safefs.UnsafePath):
        safefs.append(tmp_path, "logs/a.log", b"x")
    with safefs.open_fresh_append(tmp_path, "logs/a.log") as fh:  # the link is replaced by a file of our own
        fh.write(b"ours")
    assert (tmp_path / "logs" / "a.log").read_bytes() == b"ours" and not (tmp_path / "logs" / "a.log").is_symlink()
    safefs.ensure_dir(tmp_path, "records")
    assert (tmp_path / "records").is_dir() and not (tmp_path / "records").is_symlink()
    assert (victim / "secret").read_text() == SECRET


def test_chown_tree_changes_nothing_through_links(victim: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip(reason="changing owners needs root (the docker runner chowns only when the host runs as root)")
    work = tmp_path / "work"
    (work / "records").mkdir(parents=True)
    (work / "records" / "mine.json").write_text("{}")
    (work / "records" / "owned.json").symlink_to(victim / "owned")
    (work / "evil").symlink_to(victim)
    before = state(victim)
    safefs.chown_tree(work, 10001, 10001)
    assert (work / "records" / "mine.json").stat().st_uid == 10001
    assert state(victim) == before
