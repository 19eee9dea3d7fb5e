from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import registry
from tests.fakes.adapters import register_all


@pytest.fixture
def fakes() -> Iterator[None]:
    """Fake adapters in the registry for the test; the registry is reset afterwards."""
    register_all()
    yield
    registry.reset()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def framework_image(name: str, device: str = "cpu") -> str:
    """The framework's image on the local engine, built now if it is missing (on the base image the Docker tests use:
    $SHOWDOWN_BASE_IMAGE or python:3.11-slim if present, else the local Debian one, made if need be). No engine, or a
    build that fails, FAILS the calling test: these tests never skip."""
    from harness.runners import images

    try:
        c = images.client()
    except images.DockerUnavailable as exc:
        pytest.fail(f"this test needs a Docker engine: {exc}")
    info = registry.get(name)
    tag = images.image_tag(info, device)
    try:
        c.images.get(tag)
        return tag
    except Exception:
        pass
    base = None
    for candidate in (os.environ.get("SHOWDOWN_BASE_IMAGE", images.DEFAULT_BASE), images.LOCAL_BASE):
        try:
            c.images.get(candidate)
            base = candidate
            break
        except Exception:
            continue
    base = base or images.base_image(images.LOCAL_BASE, say=lambda text: None)
    images.build(info, device, base, lambda text: None)
    return tag


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the legacy rows (the 2018 post's other frameworks: old images, JVMs, big wheels) carry the `legacy`
    marker and run in their own session, `nox -s tests-legacy` (pytest -m legacy); the default run leaves them out
    unless a -m expression is given. CI runs the default session and a sample of the legacy one."""
    explicit = bool(config.getoption("-m"))
    kept, left = [], []
    for item in items:
        mark = item.get_closest_marker("framework")
        name = mark.args[0] if mark and mark.args else None
        legacy = bool(name) and name in registry.frameworks() and registry.get(name).legacy
        if legacy:
            item.add_marker(pytest.mark.legacy)
        (left if legacy and not explicit else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
