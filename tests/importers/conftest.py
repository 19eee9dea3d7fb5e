"""Tests of the importers that are not scored frameworks (importers/: Apache TVM). They run real compilers in their own
virtualenvs, so they carry the `importer` marker and run in a session of their own,
`pytest -m importer tests/importers` (the venv runner builds the environment on first use); the default run leaves
them out unless a -m expression is given. Selected, a missing or broken importer FAILS them, never skips them."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "importer(name): runs a real ONNX importer of importers/ in its own virtualenv")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("-m"):
        return
    left = [item for item in items if item.get_closest_marker("importer") and HERE in Path(str(item.path)).parents]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if item not in left]
