"""Fake exporters and importers for the portability matrix tests (tests/test_portability.py).

Exporters write the catalog model with onnx.helper (harness.catalog.onnx_models.build_onnx) and hand back the
catalog's NumPy output as "the framework's own": FakeExporter at opset 17; OldOpsetExporter at opset 13, with its
own output off by NOISE (inside the ONNX export tolerance, outside the node tests' default one); CnnlessExporter
does not map the cnn. Importers run the file with onnx's reference evaluator: RefImporter right; WrongOnCnnImporter
adds 1e-3 to the cnn's output; CrashOnMlpImporter kills its worker with SIGSEGV on the mlp; RunOnlyImporter gives
`ImportResult.run` only (no run_many)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapter import Adapter, ExportResult, ImportResult, NotMapped

NOISE = 5e-5


class _Fake(Adapter):
    name = "fake_portability"
    distribution = "onnx"

    def versions(self) -> dict[str, str]:
        return {"onnx": "fake"}

    def graph_namespace(self) -> Any:
        raise NotMapped("a fake exporter or importer only")

    def value_and_grad(self, fn: Any, args: Any) -> Any:
        raise NotMapped("a fake exporter or importer only")


class FakeExporter(_Fake):
    opset = 17
    noise = 0.0

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        import onnx

        from harness.catalog.onnx_models import build_onnx

        onnx.save(build_onnx(model, self.opset), path)
        out = model.reference(model.sample_input()).astype(np.float32) + np.float32(self.noise)
        return ExportResult("fake.exporter", "1.0", self.opset, out)


class OldOpsetExporter(FakeExporter):
    opset = 13
    noise = NOISE


class CnnlessExporter(FakeExporter):
    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        if model.id == "cnn":
            raise NotMapped("this fake exporter maps no cnn")
        return super().onnx_export(model, path, opset)


class RefImporter(_Fake):
    def misbehave(self, case: str, out: list[Any]) -> list[Any]:
        return out

    def onnx_import(self, path: str) -> ImportResult:
        from onnx.reference import ReferenceEvaluator

        case = Path(path).parent.name
        evaluator = ReferenceEvaluator(path)
        names = list(evaluator.input_names)

        def run_many(inputs: list[Any]) -> list[Any]:
            out = [np.asarray(o) for o in evaluator.run(None, dict(zip(names, inputs)))]
            return self.misbehave(case, out)

        return ImportResult("fake.importer", "2.0", lambda x: run_many([x])[0], run_many=run_many, max_opset=21,
                            max_opset_evidence="the fake says so")


class WrongOnCnnImporter(RefImporter):
    def misbehave(self, case: str, out: list[Any]) -> list[Any]:
        return [out[0] + np.float32(1e-3)] if case.endswith("__cnn") else out


class CrashOnMlpImporter(RefImporter):
    def misbehave(self, case: str, out: list[Any]) -> list[Any]:
        if case.endswith("__mlp"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return out


class RunOnlyImporter(RefImporter):
    def onnx_import(self, path: str) -> ImportResult:
        full = super().onnx_import(path)
        return ImportResult(full.importer, full.importer_version, full.run)


class MisbuiltExporter(FakeExporter):
    """Writes a correct file but reports an own output off by 0.05: its model was built wrongly (as a framework
    whose batch norm stayed in training mode would be), so it must not judge the importers."""

    noise = 0.05
