"""Chainer end to end: the real suite in chainer's own virtualenv (built from frameworks/chainer/requirements-build.txt
then requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).

The facts asserted are the ones the suite observed for chainer 7.8.1, so a change in any of them shows up here."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.probes import SUITES
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("chainer")

COMPOSED = {"separable_conv2d", "global_avg_pool2d"}


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
    assert not [k for k, r in doc["records"].items() if r["status"] in ("error", "crashed", "timeout")]


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


def test_multi_head_attention_is_missing(doc: dict[str, Any]) -> None:
    reason = _layers(doc)["multi_head_attention"]["reason"]
    assert "chainer.links has no MultiHeadAttention" in reason and "chainer.functions has no multihead_attention" in reason


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
    # NStepLSTM runs gates i, f, g, o (w0..w3), although its docstring says i, f, o, g (issue #8579)
    assert layers["lstm"]["status"] == "ok" and "#8579" in layers["lstm"]["data"]["note"]
    assert layers["adadelta"]["status"] == "ok" and "no learning rate" in layers["adadelta"]["data"]["note"]
    for op in ("lstm", "gru", "simple_rnn", "bidirectional_rnn", "ctc_loss", "embedding"):
        assert layers[op]["data"]["backward"]["ok"], op


def test_graph_value_is_dynamic(doc: dict[str, Any]) -> None:
    assert measured.graph_value(doc).value == 2
    assert doc["records"]["graphs/define_by_run"]["status"] == "ok"


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


def test_onnx_export_builtin_and_no_importer(doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        exp = doc["records"][f"onnx/export/{model}"]
        assert exp["status"] == "ok", exp["reason"]
        assert exp["data"]["exporter"] == "onnx_chainer.export" and exp["data"]["builtin"]
        assert exp["data"]["max_abs_err"] <= 1e-4 and exp["data"]["opsets"] == {"ai.onnx": 11}
        imp = doc["records"][f"onnx/import/{model}"]
        assert imp["status"] == "unsupported" and "no ONNX importer" in imp["reason"]


def test_throughput_every_workload_eager_and_compiled(doc: dict[str, Any]) -> None:
    for workload in ("gemm", "conv2d", "mlp_train", "cnn_train", "lstm_train"):
        for mode in ("eager", "compiled"):
            rec = doc["records"][f"throughput/{workload}/{mode}"]
            assert rec["status"] == "ok", rec["reason"]
            t = rec["data"]["timing"]
            assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
            assert rec["data"]["param_count_matches"], rec["data"]
            assert rec["data"]["compile_path"] == ("chainer.static_graph" if mode == "compiled" else None)


def test_numerics_suite_ran(doc: dict[str, Any]) -> None:
    cov = doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"].startswith("numpy")
    assert cov["data"]["agrees"] >= 44  # 47 of 47 agreed when this test was written
    assert doc["records"]["numerics/interop"]["status"] == "ok"


def test_scale_allreduce_through_chainermn_over_pip_mpich(doc: dict[str, Any]) -> None:
    rec = doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok", (rec["reason"], rec["data"].get("ranks"))
    assert rec["data"]["builtin"] is True
    assert rec["data"]["api"] == "chainermn.create_communicator('naive').allreduce (MPI via mpi4py)"
