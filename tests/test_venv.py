"""The venv runner's bookkeeping (no environment is built here)."""

from __future__ import annotations

import os
from pathlib import Path

from harness import registry
from harness.runners.venv import VenvRunner, pip_isolation, prune_siblings


def test_prune_keeps_the_current_build_and_other_frameworks(tmp_path: Path) -> None:
    for name in ("torch-cpu-aaa", "torch-cpu-bbb", "torch-cuda-ccc", "tensorflow-cpu-ddd"):
        (tmp_path / name).mkdir()
        (tmp_path / f"{name}.install.log").write_text("log")
    prune_siblings(tmp_path / "torch-cpu-bbb")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tensorflow-cpu-ddd", "tensorflow-cpu-ddd.install.log", "torch-cpu-bbb", "torch-cpu-bbb.install.log",
        "torch-cuda-ccc", "torch-cuda-ccc.install.log"]


def test_environment_folder_depends_on_pins_not_on_the_interpreter_path(tmp_path: Path) -> None:
    info = registry.get("torch")
    a = VenvRunner(root=tmp_path, python="/some/venv/bin/python").env_dir(info, "cpu")
    b = VenvRunner(root=tmp_path, python="/usr/bin/python3").env_dir(info, "cpu")
    assert a == b and a.name.startswith("torch-cpu-")
    assert VenvRunner(root=tmp_path).env_dir(info, "cuda").name.startswith("torch-cuda-")


def test_cuda_environments_ignore_local_pip_configuration() -> None:
    assert pip_isolation("cuda") == ["--isolated"] and pip_isolation("cpu") == []


def test_every_framework_has_a_lock_that_pins_what_its_requirements_pin() -> None:
    from harness.runners.locking import lock_path, parse

    for info in registry.frameworks().values():
        if not info.has_adapter or "venv" not in (info.runners or ("venv",)):
            continue  # a row recorded by its attempts, or one that runs from Debian's packages in an image
        for device in ("cpu", "cuda"):
            lock = lock_path(info, device)
            assert lock.exists(), f"{info.name}: no {lock.name} (showdown lock --framework {info.name} --device {device})"
            pins = parse(lock)
            direct = parse(info.requirements(device))
            assert direct and all(pins.get(name) == version.split("+")[0] for name, version in direct.items()), (info.name, device)
            assert len(pins) > len(direct)  # transitive dependencies are pinned too


def test_built_environments_hold_exactly_their_lock() -> None:
    """Every CPU environment the framework tests built (all six in CI) holds what its lock pins, nothing else."""
    from harness.runners.venv import LOCK_CHECK, READY

    checked = 0
    for info in registry.frameworks().values():
        if info.legacy:
            continue  # the legacy rows' environments are built by their own session (nox -s smoke-legacy)
        env = VenvRunner().env_dir(info, "cpu")
        if not (env / READY).exists():
            assert os.environ.get("CI") != "true", f"CI builds every environment, but {env.name} is missing"
            continue
        assert (env / LOCK_CHECK).read_text() == "", f"{info.name}: {(env / LOCK_CHECK).read_text()}"
        checked += 1
    assert checked or os.environ.get("CI") != "true"
