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
