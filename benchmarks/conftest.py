"""Shared pieces of the project's own benchmarks (pytest-benchmark), run by `nox -s bench`.

The benchmark files are named bench_*.py so that a plain `pytest` (testpaths = tests) never runs them; this
conftest collects them when pytest is pointed at benchmarks/. The fake adapters of tests/fakes are the framework of
the suite benchmark (no real framework is needed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
if str(REPO) not in sys.path:  # tests.fakes is imported by module path, as the worker does
    sys.path.insert(0, str(REPO))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """bench_*.py under benchmarks/ are test modules (a file named on the command line is collected by pytest itself)."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def run_documents() -> list[Path]:
    """The committed CPU run documents in results/ (kind "run"); none is a failure, not a skip."""
    from harness.results import is_run, load_document

    found = [p for p in sorted(RESULTS.glob("*.json")) if is_run(load_document(p))]
    if not found:
        pytest.fail(f"no run documents in {RESULTS}: the benchmarks read the committed results")
    return found


@pytest.fixture(scope="session")
def results_dir() -> Path:
    run_documents()
    return RESULTS


@pytest.fixture(scope="session")
def realistic_document() -> dict[str, Any]:
    """The largest committed run document (every suite, raw timing samples): what a real run writes."""
    from harness.results import load_document

    return load_document(max(run_documents(), key=lambda p: p.stat().st_size))


@pytest.fixture
def fakes() -> Iterator[None]:
    """The fake adapters in the registry for one benchmark; the registry is reset afterwards."""
    from harness import registry
    from tests.fakes.adapters import register_all

    register_all()
    yield
    registry.reset()
