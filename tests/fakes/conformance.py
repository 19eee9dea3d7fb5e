"""A fake ONNX importer for the conformance tests: onnx's reference evaluator (from the harness's own onnx) behind the
adapter interface, which misbehaves on the cases whose folder name says so: 'crash' (SIGSEGV in the run),
'exit' (os._exit), 'hang' (sleeps), 'wrong' (adds 1 to the first output), 'convfail' (the conversion raises)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapter import Adapter, ImportResult, NotMapped


class FakeImporter(Adapter):
    name = "fake_importer"
    distribution = "onnx"

    def versions(self) -> dict[str, str]:
        return {"fake_importer": "0.1"}

    def graph_namespace(self) -> Any:
        raise NotMapped("an importer only")

    def value_and_grad(self, fn: Any, args: Any) -> Any:
        raise NotMapped("an importer only")

    def onnx_import(self, path: str) -> ImportResult:
        from onnx.reference import ReferenceEvaluator

        case = Path(path).parent.name
        if "convfail" in case:
            raise ValueError("this importer does not take the model")
        evaluator = ReferenceEvaluator(path)
        names = list(evaluator.input_names)

        def run_many(inputs: list[Any]) -> list[Any]:
            if "crash" in case:
                os.kill(os.getpid(), signal.SIGSEGV)
            if "exit" in case:
                os._exit(9)
            if "hang" in case:
                time.sleep(3600)
            out = [np.asarray(o) for o in evaluator.run(None, dict(zip(names, inputs)))]
            if "wrong" in case:
                out[0] = out[0] + np.ones((), out[0].dtype)
            return out

        return ImportResult("fake_importer", "0.1", lambda x: run_many([x])[0], run_many=run_many, max_opset=20,
                            max_opset_evidence="the fake says so")


class SingleInputImporter(FakeImporter):
    """An importer whose adapter gives only `run` (one input): what the suite's ONNX probe has always used."""

    def onnx_import(self, path: str) -> ImportResult:
        full = super().onnx_import(path)
        return ImportResult(full.importer, full.importer_version, full.run)
