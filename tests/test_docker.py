"""Docker: the suite inside per-framework images agrees with the virtualenv runs, and the container is locked down.

Needs a Docker engine. In CI (`.ci/run` sets SHOWDOWN_REQUIRE_DOCKER=1 and starts dockerd) a missing engine FAILS
these tests; on a machine without Docker they are skipped with the reason shown by `pytest -ra`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.results import validate_document
from harness.runners import images
from harness.runners.docker import DockerRunner
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner

REQUIRED = os.environ.get("SHOWDOWN_REQUIRE_DOCKER") == "1"
FRAMEWORKS = [f for f in os.environ.get("SHOWDOWN_DOCKER_FRAMEWORKS", "torch").split(",") if f]
SUITES = ["layers", "onnx"]


def engine() -> Any:
    try:
        return images.client()
    except images.DockerUnavailable as exc:
        if REQUIRED:
            pytest.fail(f"a Docker engine is required here (SHOWDOWN_REQUIRE_DOCKER=1): {exc}")
        pytest.skip(reason=f"no Docker engine on this machine ({exc}); CI runs these with SHOWDOWN_REQUIRE_DOCKER=1")


@pytest.fixture(scope="module")
def base_image() -> str:
    """The base image: $SHOWDOWN_BASE_IMAGE or python:3.11-slim if present, else a local Debian one built now."""
    c = engine()
    wanted = os.environ.get("SHOWDOWN_BASE_IMAGE", images.DEFAULT_BASE)
    for tag in (wanted, images.LOCAL_BASE):
        try:
            c.images.get(tag)
            return tag
        except Exception:
            continue
    return images.base_image(images.LOCAL_BASE, say=lambda text: None)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def pair(request: pytest.FixtureRequest, base_image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    info = registry.get(request.param)
    docs = []
    for runner in (VenvRunner(), DockerRunner(base=base_image)):
        out = tmp_path_factory.mktemp(f"{info.name}-{runner.name}")
        docs.append(execute(RunRequest(info, "cpu", SUITES, out, runner, quick=True)).document)
    return docs[0], docs[1]


def verdicts(doc: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    out = {}
    for probe, rec in doc["records"].items():
        if probe.startswith("layers/"):
            out[probe] = (rec["status"], rec["data"].get("implementation"), rec["data"].get("variant"))
        elif probe.startswith("onnx/"):
            out[probe] = (rec["status"],)
    return out


def test_image_run_is_valid_and_from_the_image(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, in_image = pair
    assert validate_document(in_image) == []
    assert in_image["complete"] and in_image["runner"]["name"] == "docker"
    image = in_image["runner"]["image"]
    assert image["id"].startswith("sha256:") and image["size_bytes"] > 0
    assert in_image["environment"]["in_container"] is True


def test_image_and_virtualenv_agree(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    venv_doc, image_doc = pair
    assert venv_doc["environment"]["framework_version"] == image_doc["environment"]["framework_version"]
    assert verdicts(venv_doc) == verdicts(image_doc)


def test_container_is_locked_down(base_image: str, tmp_path: Path) -> None:
    interp = DockerRunner(base=base_image).prepare(registry.get(FRAMEWORKS[0]), "cpu", lambda text: None)
    proc = interp.spawn(["--help"], tmp_path)
    try:
        proc.wait(timeout=120)
        attrs = proc.container.attrs
        host = attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        user = attrs["Config"]["User"]
        assert user and not user.startswith("0") and user.split(":")[0] != "root"
        assert host["NanoCpus"] > 0 and host["Memory"] > 0
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        assert set(mounts) == {"/work"} and mounts["/work"]["RW"] is True
        assert "/tmp" in host["Tmpfs"]
    finally:
        proc.close()


def test_cuda_is_refused_without_a_gpu_runtime(base_image: str) -> None:
    c = engine()
    if "nvidia" in (c.info().get("Runtimes") or {}):
        pytest.skip(reason="this engine has the NVIDIA runtime; the refusal cannot be shown here")
    from harness.runners.base import EnvironmentBuildError

    with pytest.raises(EnvironmentBuildError, match="NVIDIA runtime"):
        DockerRunner(base=base_image).prepare(registry.get("torch"), "cuda", lambda text: None)
