"""Apache TVM as an ONNX importer (the conformance run's `--importer tvm`; benchmarks/tvm_cnn.py times a model).

The route, TVM 0.27's: `tvm.relax.frontend.onnx.from_onnx(model)` turns the ONNX graph into a Relax IRModule (its
initializers folded in as constants), `tvm.compile(module, target="llvm")` compiles it for this CPU, and
`tvm.relax.VirtualMachine(executable, tvm.cpu())["main"](*inputs)` runs it. Every call is looked up at run time
(harness.adapter.require), so an older or newer TVM that lacks one says so instead of failing obscurely. Conversion
and compilation both happen in `onnx_import`, so in the conformance run a model that from_onnx or tvm.compile refuses
is a convert_error; a run_error is the compiled VM refusing the case's inputs or failing on them.

TVM is a compiler, not a scored framework: this adapter maps the ONNX importer and nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.adapter import Adapter, ImportResult, NotMapped, distribution_versions, require
from harness.results import error_line

TARGET = "llvm"
#: the opsets the max-opset check tries an Identity model at (ONNX's default domain is at 23-24 in 2026)
OPSET_PROBE = range(13, 41)


def _identity_model(opset: int) -> Any:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


class TvmImporter(Adapter):
    """ONNX -> Relax (from_onnx) -> tvm.compile(target llvm) -> relax.VirtualMachine on tvm.cpu()."""

    name = "tvm"
    distribution = "apache-tvm"
    _max_opset: tuple[int | None, str] | None = None

    def versions(self) -> dict[str, str]:
        return distribution_versions("apache-tvm", "apache-tvm-ffi", "onnx", "numpy")

    def graph_namespace(self) -> Any:
        raise NotMapped("tvm is an importer here, not a framework")

    def value_and_grad(self, fn: Any, args: Any) -> Any:
        raise NotMapped("tvm is an importer here, not a framework")

    # ------------------------------------------------------------------------------------------ the route
    def api(self) -> dict[str, Any]:
        """The functions the route calls, found at run time."""
        import tvm
        import tvm.relax
        import tvm.relax.frontend.onnx

        return {
            "from_onnx": require(tvm.relax.frontend.onnx, "from_onnx"),
            "compile": require(tvm, "compile"),
            "VirtualMachine": require(tvm.relax, "VirtualMachine"),
            "cpu": require(tvm, "cpu"),
            "tensor": require(tvm.runtime, "tensor"),
        }

    def convert(self, model: Any) -> Any:
        """The Relax module of an ONNX ModelProto (initializers as constants)."""
        return self.api()["from_onnx"](model, keep_params_in_input=False)

    def build(self, module: Any) -> Any:
        """The compiled module's VM on the CPU."""
        api = self.api()
        executable = api["compile"](module, target=TARGET)
        return api["VirtualMachine"](executable, api["cpu"]())

    def max_opset(self) -> tuple[int | None, str]:
        """TVM's frontend states no highest opset: each operator's converter takes the highest `_impl_vN` at or below
        the model's opset. Asked the way onnxruntime is (an Identity model at opsets 13, 14, ... until the frontend
        refuses one); when none is refused, the answer is None, with the highest `_impl_vN` over the frontend's
        converters as the evidence."""
        if TvmImporter._max_opset is None:
            from_onnx = self.api()["from_onnx"]
            best: int | None = None
            refused = ""
            for opset in OPSET_PROBE:
                try:
                    from_onnx(_identity_model(opset))
                    best = opset
                except Exception as exc:
                    refused = f"from_onnx converts an Identity model at opset {best}; at {opset}: {error_line(exc, 300)}"
                    break
            if refused:
                TvmImporter._max_opset = (best, refused)
            else:
                TvmImporter._max_opset = (None, f"from_onnx converts an Identity model at every opset from {OPSET_PROBE[0]} "
                                                f"to {OPSET_PROBE[-1]} (it never refuses one); {self._impl_versions()}")
        return TvmImporter._max_opset

    @staticmethod
    def _impl_versions() -> str:
        try:
            from tvm.relax.frontend.onnx import onnx_frontend

            table = onnx_frontend._get_convert_map()
            top = max((int(a.removeprefix("_impl_v")), op) for op, conv in table.items()
                      for a in dir(conv) if a.startswith("_impl_v") and a.removeprefix("_impl_v").isdigit())
            return (f"its converters pick the highest _impl_vN at or below the model's opset; the highest N among the "
                    f"{len(table)} operators of onnx_frontend._get_convert_map() is {top[0]} ({top[1]})")
        except Exception as exc:
            return f"its converter table could not be read: {error_line(exc, 200)}"

    def onnx_import(self, path: str) -> ImportResult:
        import onnx

        model = onnx.load(path)
        vm = self.build(self.convert(model))
        main = vm["main"]
        to_tensor = self.api()["tensor"]
        initializers = {i.name for i in model.graph.initializer}
        graph_inputs = [i for i in model.graph.input if i.name not in initializers]
        sequence_out = [o.type.HasField("sequence_type") for o in model.graph.output]

        def arg(value: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return tuple(to_tensor(np.asarray(v, order="C")) for v in value)
            return to_tensor(np.asarray(value, order="C"))  # ascontiguousarray would make a 0-d value 1-d

        def value(out: Any, sequence: bool) -> Any:
            if sequence:
                return [np.asarray(v.numpy()) for v in out]
            return np.asarray(out.numpy()) if hasattr(out, "numpy") else np.asarray(out)

        def run_many(inputs: list[Any]) -> list[Any]:
            if len(inputs) != len(graph_inputs):
                raise ValueError(f"{len(inputs)} inputs for a graph of {len(graph_inputs)}")
            result = main(*[arg(v) for v in inputs if v is not None])
            if len(sequence_out) == 1:
                return [value(result, sequence_out[0])]
            return [value(r, s) for r, s in zip(result, sequence_out)]

        def run(x: Any) -> Any:
            return run_many([x])[0]

        top, why = self.max_opset()
        return ImportResult("tvm.relax.frontend.onnx",
                            distribution_versions("apache-tvm")["apache-tvm"], run,
                            run_many=run_many, max_opset=top, max_opset_evidence=why)
