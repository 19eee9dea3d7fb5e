"""Result documents: an atomic save (temporary file, fsync, rename) and a load with the schema validation every
reader does, on the largest committed run document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from harness.results import load_document, save_document, validate_document


def test_save_document(benchmark: Any, realistic_document: dict[str, Any], tmp_path: Path) -> None:
    doc = copy.deepcopy(realistic_document)
    path = tmp_path / "doc.json"
    benchmark(save_document, doc, path)
    assert json.loads(path.read_text(encoding="utf-8"))["records"] == realistic_document["records"]
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"], "a temporary file was left behind"
    benchmark.extra_info["bytes"] = path.stat().st_size
    benchmark.extra_info["records"] = len(doc["records"])


def test_load_and_validate(benchmark: Any, realistic_document: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    save_document(copy.deepcopy(realistic_document), path)

    def load_and_validate() -> tuple[dict[str, Any], list[str]]:
        doc = load_document(path)
        return doc, validate_document(doc)

    doc, errors = benchmark(load_and_validate)
    assert errors == []
    assert doc["records"] == realistic_document["records"]
    benchmark.extra_info["bytes"] = path.stat().st_size
