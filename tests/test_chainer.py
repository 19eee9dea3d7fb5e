"""Chainer end to end: the real suite in chainer's own virtualenv (built from frameworks/chainer/requirements-build.txt
then requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).

The facts asserted are the ones the suite observed for chainer 7.8.1, so a change in any of them shows up here."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.catalog import ops
from harness.probes import SUITES
from harness.probes.layers import GRAD_RTOL
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("chainer")

COMPOSED = {"separable_conv2d", "global_avg_pool2d"}
TRAINING = ("mlp_train", "cnn_train", "lstm_train")
SINGLE_OPS = ("gemm", "conv2d")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("chainer-results")
    req = RunRequest(registry.get("chainer"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/", 1)[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def test_document_is_complete_and_valid(doc: dict[str, Any]) -> None:
    assert validate_document(doc) == []
    assert doc["complete"]
    assert doc["environment"]["framework_version"] == "7.8.1"
    assert not [k for k, r in doc["records"].items() if r["status"] in ("error", "crashed", "timeout", "unmapped")]


def test_ops_are_ok_or_explained(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    assert len(layers) == 32
    for op, rec in layers.items():
        assert rec["status"] in ("ok", "unsupported", "failed"), op
        if rec["status"] != "ok":
            assert rec["reason"], op
    not_ok = {op: r["status"] for op, r in layers.items() if r["status"] != "ok"}
    assert not_ok == {"multi_head_attention": "unsupported", "nesterov": "failed"}
    kinds = {op: r["data"]["implementation"] for op, r in layers.items() if r["status"] == "ok"}
    assert {op for op, k in kinds.items() if k == "composed"} == COMPOSED
    assert measured.ootb_ops(doc).value == 28.5  # 27 native + 2 composed + 1 variant, halves for the last three


def test_every_parameter_gradient_is_checked_in_every_case(doc: dict[str, Any]) -> None:
    """Every ok op returned, for each case it ran, the gradient of the input and of every catalog parameter, each
    within the probe's tolerance in the 8 directions."""
    checked = 0
    for op, rec in _layers(doc).items():
        if rec["status"] != "ok":
            continue
        spec = ops.get(op)
        for label, case_rec in rec["data"]["cases"].items():
            if case_rec["status"] == "unsupported":
                continue
            assert case_rec["status"] == "ok", (op, label)
            case = spec.case(rec["data"]["variant"], label)
            if case.grad_wrt is None or spec.check is not None:
                continue
            backward = case_rec["backward"]
            assert backward["checked"] and backward["ok"], (op, label, backward.get("problem"))
            assert backward["wrt"] == list(case.wrt) and set(backward["gradients"]) == set(case.wrt), (op, label)
            assert backward["worst_rel_err"] <= GRAD_RTOL / 100, (op, label, backward["worst_rel_err"])  # float32 exact
            checked += len(case.wrt)
    assert checked == 64  # inputs and parameters over the 22 ok ops with a gradient (dropout: below), padded cases too
    # dropout is judged by its contract, which includes the gradient mask
    assert _layers(doc)["dropout"]["data"]["cases"]["default"]["forward"]["check"]["gradient_matches_mask"] is True


def test_recurrent_gradients_come_back_in_catalog_gate_order(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    assert set(layers["lstm"]["data"]["backward"]["gradients"]) == {"x", "wx", "wh", "b"}
    assert set(layers["gru"]["data"]["backward"]["gradients"]) == {"x", "wx", "wh", "bx", "bh"}
    assert set(layers["hierarchical_softmax"]["data"]["backward"]["gradients"]) == {"x", "w_nodes", "b_nodes"}


def test_padded_cases_pass(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    for op in ("conv2d", "max_pool2d"):
        assert set(layers[op]["data"]["cases"]) == {"default", "padded"}
        assert layers[op]["data"]["cases"]["padded"]["status"] == "ok", op


def test_optimizer_settings_chainer_lacks_are_unsupported_with_evidence(doc: dict[str, Any]) -> None:
    """AdaGrad takes no initial accumulator and AdaDelta no learning rate: those cases are unsupported (with the
    signature as evidence) and the ops pass on their default cases."""
    layers = _layers(doc)
    expected = {"adagrad": ("accumulator", "chainer.optimizers.AdaGrad(initial_accumulator=...)"),
                "adadelta": ("learning_rate", "chainer.optimizers.AdaDelta(lr=...)")}
    for op, (label, looked_up) in expected.items():
        rec = layers[op]
        assert rec["status"] == "ok" and rec["data"]["cases"]["default"]["status"] == "ok", op
        case = rec["data"]["cases"][label]
        assert case["status"] == "unsupported", op
        assert case["evidence"]["looked_up"] == [looked_up]
    assert "(its parameters: lr, eps)" in layers["adagrad"]["data"]["cases"]["accumulator"]["reason"]
    assert "(its parameters: rho, eps)" in layers["adadelta"]["data"]["cases"]["learning_rate"]["reason"]


def test_multi_head_attention_is_missing_with_evidence(doc: dict[str, Any]) -> None:
    rec = _layers(doc)["multi_head_attention"]
    assert "chainer.links has no MultiHeadAttention" in rec["reason"] and "chainer.functions has no multihead_attention" in rec["reason"]
    assert rec["data"]["evidence"]["looked_up"] == ["chainer.links.MultiHeadAttention", "chainer.functions.multihead_attention"]


def test_nesterov_disagrees_as_chainer_codes_it(doc: dict[str, Any]) -> None:
    """Chainer's NesterovAG uses the updated velocity where its cited paper uses the previous one (issue #4274)."""
    rec = _layers(doc)["nesterov"]
    assert rec["data"]["implementation"] == "native" and rec["data"]["api"] == "chainer.optimizers.NesterovAG"
    assert "#4274" in rec["data"]["note"]
    assert rec["data"]["forward"]["outputs"]["w"]["max_abs_err"] > 0.1  # a different algorithm, not rounding


def test_hierarchical_softmax_is_the_binary_tree_variant(doc: dict[str, Any]) -> None:
    rec = _layers(doc)["hierarchical_softmax"]
    assert rec["status"] == "ok"
    assert rec["data"]["implementation"] == "variant" and rec["data"]["variant"] == "hierarchical_sigmoid"
    assert rec["data"]["api"] == "chainer.links.BinaryHierarchicalSoftmax" and rec["data"]["points"] == 0.5


def test_conventions_and_gate_orders(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    conv = {op: r["data"].get("convention") for op, r in layers.items()}
    assert conv["gru"] == "reset_after" and conv["avg_pool2d"] == "count_include_pad"
    assert conv["adam"] == conv["adamw"] == "eps_hat"  # chainer's alpha_t form
    assert conv["adagrad"] == conv["rmsprop"] == "eps_outside_sqrt"
    assert conv["adadelta"] == "lr_scales_step"  # lr 1 only: both conventions agree, the first is recorded
    # NStepLSTM runs gates i, f, g, o (w0..w3), although its docstring says i, f, o, g (issue #8579)
    assert layers["lstm"]["status"] == "ok" and "#8579" in layers["lstm"]["data"]["note"]
    assert "no learning rate" in layers["adadelta"]["data"]["note"]


def test_graph_value_is_dynamic_proven_by_a_concrete_read(doc: dict[str, Any]) -> None:
    rec = doc["records"]["graphs/define_by_run"]
    assert rec["status"] == "ok", rec["reason"]
    assert measured.graph_value(doc).value == 2
    assert rec["data"]["program"] == "concrete_read"
    for inp in rec["data"]["inputs"]:
        assert inp["ok"] and inp["executions_per_call"] == [1, 1], inp
        assert all(isinstance(r, float) and abs(r - inp["expected_read"]) <= 1e-5 * max(1.0, abs(r)) for r in inp["reads"]), inp
    assert {i["expected_read"] > 0 for i in rec["data"]["inputs"]} == {True, False}  # both branches taken


def test_static_graph_compiles_but_replays_its_first_trace(doc: dict[str, Any]) -> None:
    compiled = doc["records"]["graphs/compiled"]
    assert compiled["status"] == "ok" and compiled["data"]["working_paths"] == ["chainer.static_graph"]
    path = compiled["data"]["paths"]["chainer.static_graph"]
    assert path["new_shape"]["outcome"] == "recompiled" and path["new_shape"]["evidence"] == "trace count 1 -> 2"
    flow = doc["records"]["graphs/compiled_control_flow"]
    assert flow["status"] == "failed"
    inputs = flow["data"]["paths"]["chainer.static_graph"]["inputs"]
    # the first input's trace is right; the second input, which takes the other branch, silently reruns it
    assert [i["ok"] for i in inputs] == [True, False] and "error" not in inputs[1]


def test_onnx_export_builtin_as_the_harness_decides_and_no_importer(doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        exp = doc["records"][f"onnx/export/{model}"]
        assert exp["status"] == "ok", exp["reason"]
        assert exp["data"]["exporter"] == "onnx_chainer.export"
        assert exp["data"]["max_abs_err"] <= 1e-4 and exp["data"]["opsets"] == {"ai.onnx": 11}
        # onnx_chainer is inside the chainer distribution: only chainer, what it requires, and onnx ran
        provenance = exp["data"]["provenance"]
        assert exp["data"]["builtin"] is True and provenance["outside_the_framework"] == []
        assert "chainer" in provenance["code_ran_from"] and "onnx" in provenance["code_ran_from"]
        imp = doc["records"][f"onnx/import/{model}"]
        assert imp["status"] == "unsupported" and "no ONNX importer" in imp["reason"]
        assert imp["data"]["evidence"]["looked_up"]
    assert measured.onnx_direction(doc, "export").value == 2.0


def test_throughput_first_step_checked_and_timed(doc: dict[str, Any]) -> None:
    for workload in (*SINGLE_OPS, *TRAINING):
        for mode in ("eager", "compiled"):
            rec = doc["records"][f"throughput/{workload}/{mode}"]
            assert rec["status"] == "ok", rec["reason"]
            data = rec["data"]
            checked = data["first_step"]
            assert checked["checked"] and checked["ok"] and len(checked["steps"]) == 2, checked
            for step in checked["steps"]:  # the first step and the second, where static_graph replays its trace
                if workload in TRAINING:
                    assert step["loss"]["rel_err"] <= 1e-6, step["loss"]
                    assert all(p["within"] for p in step["parameters"].values())
                else:
                    assert step["output"]["rel_err"] <= 1e-6
            t = data["timing"]
            assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
            assert data["param_count_matches"], data


def test_compiled_throughput_states_its_scope_and_captured_a_graph(doc: dict[str, Any]) -> None:
    for workload in (*SINGLE_OPS, *TRAINING):
        eager = doc["records"][f"throughput/{workload}/eager"]["data"]
        assert eager["compile_path"] is None and eager["compile_scope"] is None
        data = doc["records"][f"throughput/{workload}/compiled"]["data"]
        assert data["compile_path"] == "chainer.static_graph"
        # static_graph replays the model's forward and backward schedules; the loss head and SGD update run eagerly
        assert data["compile_scope"] == ("op" if workload in SINGLE_OPS else "forward_backward")
        assert data["graphs_captured"] == 1  # the decorated body ran once, while tracing
    notes = " ".join(doc["records"]["throughput/mlp_train/compiled"]["data"]["notes"])
    assert "SGD update" in notes and "run eagerly" in notes


def test_numerics_is_numpy_itself_without_chainerx(doc: dict[str, Any]) -> None:
    """This chainer is built without ChainerX, so its CPU arrays are NumPy's: not credited to chainer."""
    for probe in ("coverage", "interop"):
        rec = doc["records"][f"numerics/{probe}"]
        assert rec["status"] == "unsupported" and "NumPy itself" in rec["reason"], rec["reason"]
        assert "chainerx.is_available() is False" in rec["reason"]
        assert rec["data"]["evidence"]["looked_up"]
    assert measured.numerics_ease(doc).value is None


def test_scale_allreduce_through_chainermn_over_pip_mpich(doc: dict[str, Any]) -> None:
    rec = doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok", (rec["reason"], rec["data"].get("ranks"))
    assert rec["data"]["builtin"] is True
    assert rec["data"]["api"] == "chainermn.create_communicator('naive').allreduce (MPI via mpi4py)"
