"""Apache MXNet 1.9.1 end to end: the real suite in MXNet's own virtualenv (built from
frameworks/mxnet/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).

The assertions pin what was observed: which ops Gluon has, which conventions MXNet follows, that hybridize() is a
symbolic path that rejects Python control flow on values, and the ONNX round trips with their workarounds."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.catalog.ops import OPS
from harness.catalog.workloads import WORKLOADS
from harness.probes import SUITES
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("mxnet")

HYBRIDIZE = "gluon.HybridBlock.hybridize"
UNSUPPORTED = {"group_norm", "multi_head_attention", "adamw"}
COMPOSED = {"separable_conv2d", "hierarchical_softmax"}


@pytest.fixture(scope="module")
def mxnet_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mxnet-results")
    req = RunRequest(registry.get("mxnet"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/", 1)[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def test_document_is_complete_and_valid(mxnet_doc: dict[str, Any]) -> None:
    assert validate_document(mxnet_doc) == []
    assert mxnet_doc["complete"]
    assert mxnet_doc["environment"]["framework_version"] == "1.9.1"
    assert mxnet_doc["environment"]["versions"]["numpy"].startswith("1.23.")
    bad = {k: r["reason"] for k, r in mxnet_doc["records"].items() if r["status"] in ("error", "crashed", "timeout")}
    assert not bad


def test_every_op_is_ok_or_unsupported_with_a_reason(mxnet_doc: dict[str, Any]) -> None:
    layers = _layers(mxnet_doc)
    assert set(layers) == {op.id for op in OPS}
    for op_id, rec in layers.items():
        assert rec["status"] in ("ok", "unsupported"), (op_id, rec["reason"])
        if rec["status"] == "ok":
            assert rec["data"]["implementation"] in ("native", "composed", "variant")
        else:
            assert rec["reason"], op_id
    assert {k for k, r in layers.items() if r["status"] == "unsupported"} == UNSUPPORTED
    assert {k for k, r in layers.items() if r["status"] == "ok" and r["data"]["implementation"] == "composed"} == COMPOSED
    assert measured.ootb_ops(mxnet_doc).value == 28  # 27 native + 2 composed at half a point


def test_unsupported_reasons_name_what_is_missing(mxnet_doc: dict[str, Any]) -> None:
    layers = _layers(mxnet_doc)
    assert "per group" in layers["group_norm"]["reason"] and "(3,)" in layers["group_norm"]["reason"]
    assert "have no MultiHeadAttention" in layers["multi_head_attention"]["reason"]
    assert "mxnet.optimizer has no AdamW" in layers["adamw"]["reason"]


def test_conventions_are_recorded(mxnet_doc: dict[str, Any]) -> None:
    layers = _layers(mxnet_doc)
    conv = {k: r["data"].get("convention") for k, r in layers.items()}
    assert conv["gru"] == "reset_after" and "rzn" in layers["gru"]["data"]["note"]  # reset after the recurrent matmul
    assert layers["lstm"]["status"] == "ok" and "(i, f, c, o)" in layers["lstm"]["data"]["note"]
    assert conv["avg_pool2d"] == "count_include_pad"
    assert conv["adagrad"] == "eps_inside_sqrt" and conv["rmsprop"] == "eps_inside_sqrt"
    assert conv["adam"] == "eps_hat"  # the bias correction folded into the learning rate


def test_graph_value_is_dynamic_and_hybridize_is_symbolic(mxnet_doc: dict[str, Any]) -> None:
    assert measured.graph_value(mxnet_doc).value == 2
    compiled = mxnet_doc["records"]["graphs/compiled"]
    assert compiled["status"] == "ok"
    path = compiled["data"]["paths"][HYBRIDIZE]
    assert path["ok"] and path["compile_s"] > 0
    # one symbolic trace; a new input shape reuses it (the CachedOp re-infers shapes, Python is not traced again)
    assert path["new_shape"]["outcome"] == "reused" and path["new_shape"]["evidence"] == "trace count 1 -> 1"
    flow = mxnet_doc["records"]["graphs/compiled_control_flow"]
    assert flow["status"] == "failed"
    assert flow["data"]["paths"][HYBRIDIZE]["outcome"] == "rejected"
    assert "NotImplementedForSymbol" in flow["data"]["paths"][HYBRIDIZE]["error"]


def test_onnx_export(mxnet_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = mxnet_doc["records"][f"onnx/export/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["exporter"] == "mxnet.onnx.export_model" and data["builtin"]
        assert data["max_abs_err"] <= 1e-4 and data["checker"] == "passed"
        assert data["opsets"]["ai.onnx"] == data["requested_opset"]
        assert any("no opset argument" in n for n in data["notes"])


def test_onnx_import(mxnet_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = mxnet_doc["records"][f"onnx/import/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["importer"] == "mxnet.contrib.onnx.import_model" and data["builtin"]
        assert data["max_abs_err"] <= 1e-4 and data["opset"] == 17
        assert any("initializers also listed as graph inputs" in n for n in data["notes"])
    assert measured.onnx_direction(mxnet_doc, "export").value == 2
    assert measured.onnx_direction(mxnet_doc, "import").value == 2


def test_throughput_every_workload_eager_and_compiled(mxnet_doc: dict[str, Any]) -> None:
    for spec in WORKLOADS:
        for mode in ("eager", "compiled"):
            rec = mxnet_doc["records"][f"throughput/{spec.id}/{mode}"]
            assert rec["status"] == "ok", rec["reason"]
            data = rec["data"]
            assert len(data["timing"]["samples_s"]) >= 5 and data["timing"]["median_s"] > 0
            assert data["param_count_matches"], data
            assert data["compile_path"] == (None if mode == "eager" else f"{HYBRIDIZE}(static_alloc=True, static_shape=True)")
    lstm = mxnet_doc["records"]["throughput/lstm_train/eager"]["data"]
    assert any("frozen" in n for n in lstm["notes"])


def test_numerics_suite_ran(mxnet_doc: dict[str, Any]) -> None:
    cov = mxnet_doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"].startswith("mxnet.np")
    assert cov["data"]["agrees"] >= 44  # 47 of 47 agreed when this test was written
    assert mxnet_doc["records"]["numerics/interop"]["status"] == "ok"


def test_scale_allreduce_through_the_dist_kvstore(mxnet_doc: dict[str, Any]) -> None:
    rec = mxnet_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok", rec["reason"]
    assert rec["data"]["builtin"] is True
    assert rec["data"]["api"] == "mxnet.kvstore.create('dist_sync') init/push/pull (ps-lite)"
