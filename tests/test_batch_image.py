"""The AWS Batch layer: the harness's host side in /opt/host on top of a framework image, the framework untouched.

The layer tests need a Docker engine and the framework image `showdown/torch:cpu` (built first if missing); no
engine FAILS them (no skip): the layer cannot be checked without them. The pin and
lock checks at the top need no engine (host_wheels downloads the pinned wheels once, then reuses them).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.runners import batch_image, images
from harness.runners.base import EnvironmentBuildError
from tests.conftest import framework_image as ensure_framework_image

FRAMEWORK = "torch"
HOST_PYTHON = "/opt/host/bin/python"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!]+)$")


def pins() -> dict[str, str]:
    out = {}
    for raw in batch_image.HOST_REQUIREMENTS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"batch-host.txt: not an exact pin: {raw!r}"
        out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def test_batch_host_pins_every_line_exactly_and_covers_the_host_side() -> None:
    pinned = pins()
    assert {"numpy", "jsonschema", "rich", "boto3", "botocore", "referencing", "rpds-py", "urllib3"} <= set(pinned)
    # every host dependency of the project, but matplotlib: only `showdown report --out-dir` draws charts
    project = (batch_image.SOURCE_ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)\]", project, re.S | re.M)
    assert deps
    for dep in re.findall(r'"([A-Za-z0-9_.-]+)', deps.group(1)):
        assert dep.lower() in pinned or dep == "matplotlib", dep


def test_host_lock_hashes_every_pinned_wheel_for_the_image() -> None:
    wheels = batch_image.host_wheels(lambda text: None)
    lock = (wheels.parent / "host.lock").read_text().splitlines()
    files = {w.name: w for w in wheels.glob("*.whl")}
    locked = {}
    for line in lock:
        m = re.fullmatch(r"([a-z0-9-]+)==(\S+) --hash=sha256:([0-9a-f]{64})", line)
        assert m, line
        locked[m.group(1)] = m.group(2)
        assert any(hashlib.sha256(f.read_bytes()).hexdigest() == m.group(3) for f in files.values()), line
    assert locked == pins()  # exactly what batch-host.txt pins, nothing resolved on the side
    for name in files:  # wheels for the image's CPython 3.11 on glibc x86_64, whatever the host is
        assert name.endswith("-none-any.whl") or ("-cp311-" in name and "manylinux" in name and "x86_64" in name), name
    assert batch_image.host_wheels(lambda text: pytest.fail("a ready folder is downloaded again")) == wheels


def engine() -> Any:
    try:
        return images.client()
    except images.DockerUnavailable as exc:
        pytest.fail(f"the batch layer tests need a Docker engine: {exc}")


@pytest.fixture(scope="module")
def framework_image() -> Any:
    """showdown/torch:cpu, built now if this engine lacks it (as test_docker would)."""
    return engine().images.get(ensure_framework_image(FRAMEWORK))


@pytest.fixture(scope="module")
def built(framework_image: Any) -> Iterator[tuple[images.BuildResult, list[dict[str, Any]]]]:
    """A real build of the layer (nocache, so every step runs now), with the arguments it gave the engine."""
    import docker.models.images

    calls: list[dict[str, Any]] = []
    real = docker.models.images.ImageCollection.build

    def spy(self: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(self, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(docker.models.images.ImageCollection, "build", spy)
        result = batch_image.build_batch_image(registry.get(FRAMEWORK), "cpu", lambda text: None, nocache=True)
    yield result, calls


def run(image: str, command: list[str], entrypoint: list[str] | None = None) -> str:
    """Run a container of the image with no network; a non-zero exit raises (docker's ContainerError)."""
    out = engine().containers.run(image, command, entrypoint=entrypoint, network_mode="none", remove=True,
                                  stdout=True, stderr=True)
    return bytes(out).decode()


def test_the_layer_is_built_with_no_network_and_leaves_no_install_stage(built: tuple[images.BuildResult, list[dict[str, Any]]],
                                                                        framework_image: Any) -> None:
    result, calls = built
    assert not result.up_to_date and result.tag == "showdown/torch:cpu-batch"
    assert len(calls) == 1 and calls[0]["network_mode"] == "none" and calls[0]["pull"] is False
    args = calls[0]["buildargs"]
    assert args["FRAMEWORK_IMAGE"] == framework_image.id
    assert args["BASE_IMAGE"] == framework_image.labels["org.showdown.base"]
    assert engine().images.list(all=True, filters={"label": f"{images.BUILD_LABEL}={args['BUILD_ID']}"}) == []
    image = engine().images.get(result.tag)
    assert image.labels["org.showdown.batch"] == "1" and image.labels[batch_image.BATCH_CONTENT_LABEL] == args["CONTENT"]
    assert image.attrs["Config"]["Entrypoint"] == [HOST_PYTHON, "-m", "harness"]
    assert image.attrs["Config"]["Cmd"] == ["batch", "job"]
    assert "SHOWDOWN_FRAMEWORK_PYTHON=/opt/venv/bin/python" in image.attrs["Config"]["Env"]


def test_the_batch_dockerfile_refuses_to_build_with_network(framework_image: Any) -> None:
    """Dockerfile.batch's host stage starts with the no-network check, before the wheels are even copied in."""
    c = engine()
    dockerfile = batch_image.BATCH_DOCKERFILE.read_text()
    check = dockerfile[dockerfile.index("RUN python3 -c \"import os, sys;"):dockerfile.index("COPY wheels/")]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(f"FROM {framework_image.labels['org.showdown.base']}\n{check}")
        image, _ = c.images.build(path=tmp, network_mode="none", pull=False, nocache=True, rm=True, forcerm=True)
        c.images.remove(image.id)  # an untagged image nothing else uses: not left behind
        with pytest.raises(Exception, match="must have no network"):
            c.images.build(path=tmp, network_mode="host", pull=False, nocache=True, rm=True, forcerm=True)


def test_the_host_side_imports_in_its_own_venv(built: tuple[images.BuildResult, list[dict[str, Any]]]) -> None:
    out = run(built[0].tag, ["-c", "import boto3, jsonschema, numpy, rich; print('imported', numpy.__version__)"],
              entrypoint=[HOST_PYTHON])
    assert f"imported {pins()['numpy']}" in out


def test_the_entrypoint_is_the_harness(built: tuple[images.BuildResult, list[dict[str, Any]]]) -> None:
    out = run(built[0].tag, ["--help"])
    assert "usage: showdown" in out and "run" in out


def test_the_framework_environment_is_untouched(built: tuple[images.BuildResult, list[dict[str, Any]]],
                                                framework_image: Any) -> None:
    tag = built[0].tag
    layers = engine().images.get(tag).attrs["RootFS"]["Layers"]
    assert layers[:-1] == framework_image.attrs["RootFS"]["Layers"]  # the framework image's layers, plus one: /opt/host
    out = run(tag, ["-c", "import importlib.util as u, torch; print('torch', torch.__version__, "
                          "[m for m in ('boto3', 'botocore', 's3transfer') if u.find_spec(m)])"],
              entrypoint=["/opt/venv/bin/python"])
    assert "torch 2." in out and out.strip().endswith("[]")


def test_a_second_build_is_up_to_date_and_builds_nothing(built: tuple[images.BuildResult, list[dict[str, Any]]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import docker.models.images

    monkeypatch.setattr(docker.models.images.ImageCollection, "build",
                        lambda self, **kwargs: pytest.fail("an up-to-date layer was built again"))
    again = batch_image.build_batch_image(registry.get(FRAMEWORK), "cpu", lambda text: None)
    assert again.up_to_date and again.image_id == built[0].image_id and again.context_reused


def test_a_missing_framework_image_is_refused_with_the_command_that_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    engine()
    monkeypatch.setattr(batch_image, "image_tag", lambda info, device: "showdown/no-such-framework:cpu")
    with pytest.raises(EnvironmentBuildError, match="showdown images build --framework torch --device cpu"):
        batch_image.build_batch_image(registry.get(FRAMEWORK), "cpu", lambda text: None)
