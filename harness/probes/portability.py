"""Worker side of the ONNX portability matrix (host side: harness.portability): the export step.

Probe ids are 'portability/<model>' (a catalog ONNX model, harness.catalog.onnx_models). The framework builds the
model from the catalog's weights and exports it with its own exporter (`Adapter.onnx_export`, as the ONNX suite's
export probe does); the probe writes a case in the conformance cache's layout into its scratch folder
(<workdir>/scratch/portability/<model>/: model.onnx, and data.npz with in_0 = the catalog's sample input and out_0 =
the framework's own output on it), and its record says what the host needs for the manifest: the file's
default-domain opset and operators, the graph's inputs, the exporter and its version. The host copies the files out
of the work folder (the only thing shared with the worker's environment, a virtualenv or a container).
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np

from harness.adapter import Adapter
from harness.catalog.onnx_models import EXPORT_MODELS_BY_ID
from harness.probes import Context, Outcome
from harness.results import Status

SCRATCH = "portability"
REFERENCE_TOLERANCE = 1e-3  # float32 against float64 through up to 50 layers; a wrong layer is off by O(1)


def run(adapter: Adapter, entry: str, ctx: Context) -> Outcome:
    import onnx

    model = EXPORT_MODELS_BY_ID[entry]
    folder = ctx.scratch / SCRATCH / model.id
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "model.onnx"
    x = model.sample_input()
    result = adapter.onnx_export(model, str(path), None)  # NotMapped / Unsupported: recorded by the worker as such
    data: dict[str, Any] = {"model": model.id, "exporter": result.exporter, "exporter_version": result.exporter_version,
                            "requested_opset": result.opset, "notes": list(result.notes)}
    if not path.is_file():
        return Outcome(Status.FAILED, f"{result.exporter} wrote no file", data)
    proto = onnx.load(str(path))
    initializers = {t.name for t in proto.graph.initializer}
    data.update(
        opset=next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        opsets={(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import},
        ops=sorted({(f"{n.domain}." if n.domain not in ("", "ai.onnx") else "") + n.op_type for n in proto.graph.node}),
        graph_inputs=[i.name for i in proto.graph.input if i.name not in initializers],
        initializers_as_inputs=sum(i.name in initializers for i in proto.graph.input),
        graph_outputs=[o.name for o in proto.graph.output],
        ir_version=int(proto.ir_version), producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        file_bytes=path.stat().st_size)
    expected = np.asarray(result.framework_output)
    data["framework_output_dtype"] = str(expected.dtype)
    # the exporter's own output against the catalog's float64 reference (inference mode): a model built wrongly
    # (e.g. batch normalisation left in training mode) would otherwise be the judge of every importer
    reference = model.reference(x)
    if expected.shape != reference.shape:
        return Outcome(Status.FAILED, f"the framework's output has shape {list(expected.shape)}, the catalog's "
                       f"reference {list(reference.shape)}", data)
    ref_err = float(np.max(np.abs(expected.astype(np.float64) - reference))) if reference.size else 0.0
    ref_scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    data["reference_max_error"] = ref_err
    if not ref_err <= REFERENCE_TOLERANCE * max(1.0, ref_scale):
        return Outcome(Status.FAILED, f"the framework's own output differs from the catalog's float64 reference by "
                       f"{ref_err:.3g} (allowed {REFERENCE_TOLERANCE:g} x max(1, max |reference|))", data)
    # the model is float32 end to end: the expected output is held as float32 (an adapter that hands back float64
    # is noted above), since the conformance comparison asks the importer for the model's own output dtype
    np.savez(folder / "data.npz", in_0=x, out_0=expected.astype(np.float32))
    if len(data["graph_inputs"]) != 1 or len(data["graph_outputs"]) != 1:
        return Outcome(Status.FAILED, f"the exported graph has {len(data['graph_inputs'])} inputs and "
                       f"{len(data['graph_outputs'])} outputs; the catalog model has one of each", data)
    try:
        onnx.checker.check_model(str(path))
        data["checker"] = "passed"
    except Exception as exc:
        data["checker"] = f"failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
    return Outcome(Status.OK, "", data)
