"""Verdicts a wrong implementation cannot earn: fake adapters (no framework) that are wrong in one precise way each,
and the probe must record them `failed` (or not credit them); a fake that is right everywhere must pass everywhere,
so the checks are not simply strict."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.adapter import ExportResult, NotMapped, OpImpl, Unsupported, require_parameter
from harness.catalog import ops
from harness.catalog.ops import Case
from harness.probes import Context, layers, numerics, onnx, throughput
from harness.probes import graphs as graph_probe
from harness.results import Status
from harness.scoring import measured
from harness.timing import TimingConfig
from harness.worker import run_probe
from tests.fakes.adapters import (
    DropoutWithoutGradient,
    NoGraphCompiled,
    NumpyAdapter,
    OffByOnePercent,
    ReferenceAdapter,
    TracingGradient,
    WrongLossWorkload,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(device="cpu", scratch=tmp_path, timing=TimingConfig.quick())


# ---------------------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("op", [op.id for op in ops.OPS])
def test_a_right_implementation_passes_every_op_and_case(op: str, ctx: Context) -> None:
    out = layers.run(ReferenceAdapter("cpu"), op, ctx)
    assert out.status is Status.OK, out.reason
    spec = ops.get(op)
    assert set(out.data["cases"]) == set(spec.case_labels())
    for label, case_result in out.data["cases"].items():
        case = spec.case(None, label)
        if case.grad_wrt is not None and spec.check is None:
            assert set(case_result["backward"]["gradients"]) == set(case.wrt), (op, label)


@pytest.mark.parametrize("target", ["dense:w", "dense:b", "conv3d:x", "conv3d:w", "layer_norm:x", "layer_norm:gamma",
                                    "lstm:wh", "multi_head_attention:wk", "batch_norm:x", "embedding:weight",
                                    "conv2d:x", "prelu:alpha", "ctc_loss:logits"])
def test_a_one_percent_gradient_error_fails(target: str, ctx: Context) -> None:
    op, _, array = target.partition(":")
    out = layers.run(OffByOnePercent("cpu", target), op, ctx)
    assert out.status is Status.FAILED, target
    assert f"w.r.t. {array}" in out.reason and out.data["points"] == 0.0


def test_a_missing_parameter_gradient_fails(ctx: Context) -> None:
    class NoBiasGradient(ReferenceAdapter):
        def op(self, op_id: str) -> OpImpl:
            impl = super().op(op_id)

            def run(c: Case) -> dict[str, Any]:
                out = impl.run(c)
                out["grads"].pop("b", None)
                return out

            return OpImpl(impl.kind, impl.api, run)

    out = layers.run(NoBiasGradient("cpu"), "dense", ctx)
    assert out.status is Status.FAILED and "w.r.t. b: not returned" in out.reason


def test_dropout_without_a_gradient_fails(ctx: Context) -> None:
    out = layers.run(DropoutWithoutGradient("cpu"), "dropout", ctx)
    assert out.status is Status.FAILED and "'gradient': 'missing'" in out.reason


def test_padding_cases_catch_an_implementation_that_ignores_padding(ctx: Context) -> None:
    class ZeroPaddedMaxPool(ReferenceAdapter):
        """Pads with zeros instead of letting padded cells never win."""

        def op(self, op_id: str) -> OpImpl:
            if op_id != "max_pool2d":
                return super().op(op_id)

            def run(c: Case) -> dict[str, Any]:
                cfg = c.config
                x = np.pad(c.arrays["x"].astype(np.float64), [(0, 0), (0, 0)] + [(cfg.get("padding", 0),) * 2] * 2)
                y = ops.nn.max_pool2d(x, cfg["kernel"], cfg["stride"])
                return {"y": y, "grads": {"x": np.zeros_like(c.arrays["x"])}}

            return OpImpl("native", "zero padded", run)

    out = layers.run(ZeroPaddedMaxPool("cpu"), "max_pool2d", ctx)
    assert out.status is Status.FAILED and "case padded" in out.reason


def _optimizer(fn: Any, **fixed: Any) -> OpImpl:
    def run(c: Case) -> dict[str, Any]:
        hyper = {k: v for k, v in c.config.items() if k in ("lr", "eps", "rho")}
        return {"w": fn(c.arrays["w"], c.arrays["grads"], **hyper, **fixed)}

    return OpImpl("native", "fake optimizer", run)


def test_adagrad_cannot_pass_by_putting_epsilon_into_the_accumulator(ctx: Context) -> None:
    """'eps inside the square root' faked as an initial accumulator equal to eps (and eps 0) matches a case whose
    accumulator starts at 0, never one whose accumulator and eps differ."""

    class Faked(ReferenceAdapter):
        def op(self, op_id: str) -> OpImpl:
            def adagrad(w: Any, grads: Any, lr: float, eps: float) -> Any:
                return ops.opt.adagrad(w, grads, lr, 0.0, eps_inside_sqrt=False, initial_accumulator=eps)

            return _optimizer(adagrad)

    out = layers.run(Faked("cpu"), "adagrad", ctx)
    assert out.status is Status.FAILED and "case accumulator" in out.reason


def test_adadelta_that_ignores_the_learning_rate_fails_the_lr_case(ctx: Context) -> None:
    class IgnoresLr(ReferenceAdapter):
        def op(self, op_id: str) -> OpImpl:
            return _optimizer(lambda w, grads, lr, rho, eps: ops.opt.adadelta(w, grads, 1.0, rho, eps))

    out = layers.run(IgnoresLr("cpu"), "adadelta", ctx)
    assert out.status is Status.FAILED and "case learning_rate" in out.reason


def test_a_case_the_framework_cannot_express_is_unsupported_with_evidence_and_the_op_judged_on_the_rest(ctx: Context) -> None:
    def make(w: np.ndarray, lr: float, eps: float) -> Any:  # no initial accumulator parameter
        return None

    class NoAccumulator(ReferenceAdapter):
        def op(self, op_id: str) -> OpImpl:
            def run(c: Case) -> dict[str, Any]:
                if c.config.get("initial_accumulator"):
                    require_parameter(make, "initial_accumulator", "fake.AdaGrad")
                return {"w": ops.opt.adagrad(c.arrays["w"], c.arrays["grads"], c.config["lr"], c.config["eps"], False)}

            return OpImpl("native", "fake.AdaGrad", run)

    out = layers.run(NoAccumulator("cpu"), "adagrad", ctx)
    assert out.status is Status.OK
    case = out.data["cases"]["accumulator"]
    assert case["status"] == "unsupported" and case["evidence"]["looked_up"] == ["fake.AdaGrad(initial_accumulator=...)"]


def test_unsupported_needs_evidence_else_it_is_the_adapters_gap(tmp_path: Path) -> None:
    class Claims(NumpyAdapter):
        def op_conv2d(self) -> OpImpl:
            raise Unsupported("no conv2d here, trust me")

        def op_conv1d(self) -> OpImpl:
            raise Unsupported("torch.nn has no Conv1d", looked_up=["torch.nn.Conv1d"])

    c = Context("cpu", tmp_path)
    assert run_probe(Claims("cpu"), "layers/conv2d", c)["status"] == "unmapped"
    rec = run_probe(Claims("cpu"), "layers/conv1d", c)
    assert rec["status"] == "unsupported" and rec["data"]["evidence"]["looked_up"] == ["torch.nn.Conv1d"]
    assert run_probe(Claims("cpu"), "layers/conv3d", c)["status"] == "unmapped"  # no op_conv3d at all


def test_unmapped_ops_are_never_scored_as_missing() -> None:
    recs = {f"layers/{op.id}": {"suite": "layers", "status": "ok", "data": {"points": 1.0, "implementation": "native"}}
            for op in ops.OPS}
    full = measured.ootb_ops({"records": recs})
    assert full.value == 32.0
    recs["layers/ctc_loss"] = {"suite": "layers", "status": "unmapped", "data": {}}
    partial = measured.ootb_ops({"records": recs})
    assert partial.value is None and "ctc_loss" in partial.explanation
    recs["layers/ctc_loss"] = {"suite": "layers", "status": "unsupported", "data": {"evidence": {"looked_up": ["x"]}}}
    assert measured.ootb_ops({"records": recs}).value == 31.0


def _adapter_classes() -> dict[str, tuple[set[str], set[str]]]:
    """Per framework adapter (read from its source, without importing the framework): its op_ methods and the op
    ids its UNMAPPED names."""
    out = {}
    for path in sorted((REPO / "frameworks").glob("*/adapter.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "Adapter" for b in node.bases):
                methods = {n.name[3:] for n in node.body if isinstance(n, ast.FunctionDef) and n.name.startswith("op_")}
                unmapped: set[str] = set()
                for n in node.body:
                    if isinstance(n, (ast.Assign, ast.AnnAssign)):
                        targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                        if any(getattr(t, "id", "") == "UNMAPPED" for t in targets) and isinstance(n.value, ast.Dict):
                            unmapped = {k.value for k, v in zip(n.value.keys, n.value.values)
                                        if isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and str(v.value).strip()}
                out[path.parent.name] = (methods, unmapped)
    return out


def test_every_adapter_maps_every_op_or_says_why() -> None:
    classes = _adapter_classes()
    assert len(classes) >= 6
    for name, (methods, unmapped) in classes.items():
        silent = [op.id for op in ops.OPS if op.id not in methods and op.id not in unmapped]
        assert not silent, f"the {name} adapter leaves {silent} unmapped without saying why (UNMAPPED)"


def test_not_mapped_is_its_own_outcome(tmp_path: Path) -> None:
    with pytest.raises(NotMapped, match="does not map conv2d"):
        NumpyAdapter("cpu").op("conv2d")


# ---------------------------------------------------------------------------------------------- graphs
def test_an_eager_gradient_that_was_traced_is_not_dynamic(ctx: Context) -> None:
    right = graph_probe.run(NumpyAdapter("cpu"), "define_by_run", ctx)
    assert right.status is Status.OK and all(r["executions_per_call"] == [13, 13] for r in right.data["inputs"])
    traced = graph_probe.run(TracingGradient("cpu"), "define_by_run", ctx)
    assert traced.status is Status.FAILED and "replays a trace" in traced.reason
    doc = {"records": {"graphs/define_by_run": {"status": traced.status.value}, "graphs/compiled": {"status": "ok"}}}
    assert measured.graph_value(doc).value == 1


def test_a_gradient_that_cannot_read_a_concrete_value_is_not_dynamic(ctx: Context) -> None:
    class Tracer:
        def __float__(self) -> float:
            raise TypeError("abstract value: cannot be converted to a Python float while tracing")

    class Abstract(NumpyAdapter):
        def graph_namespace(self) -> Any:
            class F:
                sum = staticmethod(np.sum)
                tanh = staticmethod(np.tanh)
                matmul = staticmethod(np.matmul)

                @staticmethod
                def item(_: Any) -> Any:
                    return Tracer()

            return F

        def value_and_grad(self, fn: Any, args: Any) -> Any:
            return fn(self.graph_namespace(), *args), np.zeros_like(args[0])

    out = graph_probe.run(Abstract("cpu"), "define_by_run", ctx)
    assert out.status is Status.FAILED and "cannot run eagerly" in out.reason


# ---------------------------------------------------------------------------------------------- throughput
def test_a_workload_whose_loss_is_one_percent_off_is_failed_and_not_timed(ctx: Context) -> None:
    out = throughput.run(WrongLossWorkload("cpu"), "mlp_train/eager", ctx)
    assert out.status is Status.FAILED and "loss" in out.reason and "timing" not in out.data
    right = throughput.run(NumpyAdapter("cpu"), "mlp_train/eager", ctx)
    assert right.status is Status.OK and right.data["first_step"]["ok"] and len(right.data["first_step"]["steps"]) == 2


def test_a_wrong_update_is_failed(ctx: Context) -> None:
    class WrongUpdate(NumpyAdapter):
        def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Any:
            built = self._train(model, arrays, mode)
            real = built.observe
            assert real is not None
            built.observe = lambda loss: {**real(loss), "fc2.w": real(loss)["fc2.w"] * 1.001}  # 0.1% off: many updates' worth
            return built

    out = throughput.run(WrongUpdate("cpu"), "mlp_train/eager", ctx)
    assert out.status is Status.FAILED and "parameter fc2.w" in out.reason


def test_a_model_with_a_parameter_the_catalog_lacks_is_failed(ctx: Context) -> None:
    class ExtraParameter(NumpyAdapter):  # e.g. a bias the catalog model has not: zero-initialised, the loss agrees
        def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Any:
            built = self._train(model, arrays, mode)
            built.param_count += 10
            return built

    out = throughput.run(ExtraParameter("cpu"), "mlp_train/eager", ctx)
    assert out.status is Status.FAILED and "parameters" in out.reason and "timing" not in out.data
    assert out.data["first_step"]["ok"]  # the step checks alone would have let it through


def test_a_compiled_step_that_goes_wrong_on_replay_is_failed(ctx: Context) -> None:
    class ReplayBug(NumpyAdapter):
        def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Any:
            built = self._train(model, arrays, mode)
            step, calls = built.step, [0]

            def replayed() -> Any:
                calls[0] += 1
                loss = step()
                return loss if calls[0] == 1 else loss * 1.05

            built.step = replayed
            return built

    out = throughput.run(ReplayBug("cpu"), "mlp_train/compiled", ctx)
    assert out.status is Status.FAILED and "step 2" in out.reason


def test_a_compile_path_that_captured_no_graph_is_flagged(ctx: Context) -> None:
    out = throughput.run(NoGraphCompiled("cpu"), "mlp_train/compiled", ctx)
    assert out.status is Status.FAILED and "captured no graph" in out.reason and out.data["graphs_captured"] == 0
    right = throughput.run(NumpyAdapter("cpu"), "mlp_train/compiled", ctx)
    assert right.status is Status.OK and right.data["compile_scope"] == "step" and right.data["graphs_captured"] == 1
    assert right.data["compile_s"] is not None


def test_a_compiled_workload_must_state_its_scope(ctx: Context) -> None:
    class NoScope(NumpyAdapter):
        def model_workload(self, model: Any, arrays: dict[str, np.ndarray], mode: str, precision: str = "fp32") -> Any:
            built = self._train(model, arrays, mode)
            built.compile_scope = None
            return built

    out = throughput.run(NoScope("cpu"), "mlp_train/compiled", ctx)
    assert out.status is Status.ERROR and "compile scope" in out.reason


# ---------------------------------------------------------------------------------------------- onnx
class HelperExporter(NumpyAdapter):
    """Exports with onnx.helper alone: only the format's own library (and numpy, the 'framework') runs."""

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        import onnx as onnx_lib

        from harness.catalog.onnx_models import DEFAULT_OPSET, build_onnx

        onnx_lib.save(build_onnx(model, opset or DEFAULT_OPSET), path)
        return ExportResult("onnx.helper", onnx_lib.__version__, opset or DEFAULT_OPSET, model.reference(model.sample_input()))


class DelegatingExporter(HelperExporter):
    """The same, but the work passes through a package outside the framework and the format (jsonschema here)."""

    def onnx_export(self, model: Any, path: str, opset: int | None) -> ExportResult:
        import jsonschema

        jsonschema.validate({"model": model.id}, {"type": "object"})
        return super().onnx_export(model, path, opset)


def test_built_in_is_decided_by_what_code_ran_not_by_the_adapter(ctx: Context) -> None:
    own = onnx.run(HelperExporter("cpu"), "export/mlp", ctx)
    assert own.status is Status.OK, own.reason
    assert own.data["builtin"] is True and own.data["provenance"]["outside_the_framework"] == []
    assert "onnx" in own.data["provenance"]["code_ran_from"]
    delegated = onnx.run(DelegatingExporter("cpu"), "export/mlp", ctx)
    assert delegated.status is Status.OK
    assert delegated.data["builtin"] is False and "jsonschema" in delegated.data["provenance"]["outside_the_framework"]
    doc = {"records": {"onnx/export/mlp": {"suite": "onnx", **_rec(delegated)}, "onnx/export/cnn": {"suite": "onnx", **_rec(delegated)}}}
    crit = measured.onnx_direction(doc, "export")
    assert crit.value == 1.0 and "jsonschema" in crit.explanation


def _rec(out: Any) -> dict[str, Any]:
    return {"status": out.status.value, "reason": out.reason, "data": out.data}


# ---------------------------------------------------------------------------------------------- numerics
def test_numpy_itself_is_not_credited_to_the_framework(ctx: Context) -> None:
    class HandsNumpy(NumpyAdapter):
        def array_api(self) -> Any:
            from harness.adapter import ArrayAPI

            return ArrayAPI("chainer-like", np, np.asarray, np.asarray, np.from_dlpack)

    with pytest.raises(Unsupported, match="NumPy itself") as info:
        numerics.run(HandsNumpy("cpu"), "coverage", ctx)
    assert info.value.looked_up
    own = numerics.run(NumpyAdapter("cpu"), "coverage", ctx)
    assert own.status is Status.OK and own.data["agrees"] == own.data["total"]
    doc = {"records": {"numerics/coverage": {"status": "unsupported", "reason": "NumPy itself", "data": {}}}}
    assert measured.numerics_ease(doc).value is None


def test_no_adapter_names_a_training_workload_or_a_model() -> None:
    """Training workloads are catalog models every adapter builds from its node-kind mappings: a new one must need
    no adapter change, so no adapter may name one (or keep per-workload builders)."""
    from harness.catalog.models import Model
    from harness.catalog.workloads import WORKLOADS

    names = {w.id for w in WORKLOADS if w.kind == "train"}
    names |= {w.model("cpu").id for w in WORKLOADS if w.kind == "train"}
    names |= {w.model(dev).id for w in WORKLOADS if w.kind == "train" for dev in ("cpu", "cuda")}
    assert all(isinstance(w.model("cpu"), Model) for w in WORKLOADS if w.kind == "train")
    for path in sorted((REPO / "frameworks").glob("*/adapter.py")):
        source = path.read_text()
        named = sorted(n for n in names if f'"{n}"' in source or f"'{n}'" in source)
        assert not named, f"{path.parent.name}'s adapter names {named}"
        assert "_train_model" not in source, f"{path.parent.name}'s adapter keeps a per-workload builder"
