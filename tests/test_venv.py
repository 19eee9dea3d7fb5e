"""The venv runner's bookkeeping (no environment is built here)."""

from __future__ import annotations

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
