"""TensorFlow (Keras 3) end to end: the real suite in TensorFlow's own virtualenv (built from
frameworks/tensorflow/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).
The assertions are the facts observed for TensorFlow 2.21 / Keras 3.15, so a regression in the adapter or a change of
behaviour in the pinned packages fails here."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.catalog.ops import OPS
from harness.probes import SUITES
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("tensorflow")

GRAPH, XLA = "tf.function", "tf.function(jit_compile=True)"


@pytest.fixture(scope="module")
def tf_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("tensorflow-results")
    req = RunRequest(registry.get("tensorflow"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/")[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def test_document_is_complete_and_valid(tf_doc: dict[str, Any]) -> None:
    assert validate_document(tf_doc) == []
    assert tf_doc["complete"]
    env = tf_doc["environment"]
    assert env["framework_version"] == "2.21.0"
    assert env["versions"]["keras"].startswith("3.")
    bad = {k: (r["status"], r["reason"]) for k, r in tf_doc["records"].items() if r["status"] in ("error", "crashed", "timeout")}
    assert not bad


def test_every_op_verified(tf_doc: dict[str, Any]) -> None:
    layers = _layers(tf_doc)
    assert set(layers) == {op.id for op in OPS}
    for op_id, rec in layers.items():
        assert rec["status"] in ("ok", "unsupported"), (op_id, rec["reason"])
        if rec["status"] == "unsupported":
            assert rec["reason"], op_id
        else:
            assert rec["data"]["implementation"] in ("native", "composed", "variant")
    # observed: all 32 run and agree; 31 are Keras/TF's own, hierarchical softmax is composed
    assert all(r["status"] == "ok" for r in layers.values())
    assert measured.ootb_ops(tf_doc).value == 31.5


def test_composed_and_tf_nn_ops(tf_doc: dict[str, Any]) -> None:
    layers = _layers(tf_doc)
    hsm = layers["hierarchical_softmax"]["data"]
    assert hsm["implementation"] == "composed" and hsm["points"] == 0.5 and hsm["variant"] is None
    assert [k for k, r in layers.items() if r["data"]["implementation"] != "native"] == ["hierarchical_softmax"]
    assert layers["local_response_norm"]["data"]["api"] == "tf.nn.local_response_normalization"
    assert layers["ctc_loss"]["data"]["api"] == "tf.nn.ctc_loss"
    assert layers["separable_conv2d"]["data"]["api"] == "keras.layers.SeparableConv2D"


def test_conventions_are_recorded(tf_doc: dict[str, Any]) -> None:
    conv = {k: r["data"].get("convention") for k, r in _layers(tf_doc).items()}
    assert conv["gru"] == "reset_after"
    assert conv["avg_pool2d"] == "count_exclude_pad"  # padding='same' averages over the real cells only
    assert conv["adagrad"] == "eps_inside_sqrt" and conv["rmsprop"] == "eps_inside_sqrt"
    assert conv["adam"] == "eps_hat" and conv["adamw"] == "eps_hat"


def test_graph_value_is_dynamic(tf_doc: dict[str, Any]) -> None:
    assert measured.graph_value(tf_doc).value == 2
    paths = tf_doc["records"]["graphs/compiled"]["data"]["paths"]
    for path in (GRAPH, XLA):
        assert paths[path]["ok"] and paths[path]["compile_s"] > 0
        assert paths[path]["new_shape"]["outcome"] == "recompiled"  # a new shape retraces (trace count 1 -> 2)
        assert paths[path]["new_shape"]["evidence"] == "trace count 1 -> 2"


def test_autograph_takes_control_flow_but_xla_does_not(tf_doc: dict[str, Any]) -> None:
    rec = tf_doc["records"]["graphs/compiled_control_flow"]
    assert rec["status"] == "ok"
    paths = rec["data"]["paths"]
    assert paths[GRAPH]["outcome"] == "handled"
    # XLA cannot differentiate an unbounded while loop: the value-dependent `while` is rejected
    assert paths[XLA]["outcome"] == "rejected" and "XLA compilation requires" in paths[XLA]["error"]


def test_onnx_export_through_keras(tf_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = tf_doc["records"][f"onnx/export/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["max_abs_err"] <= 1e-4 and data["checker"] == "passed"
        assert data["exporter"] == "keras.Model.export(format='onnx')" and data["builtin"]
        assert any("tf2onnx" in n for n in data["notes"])


def test_onnx_import_through_onnx2tf_offline(tf_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = tf_doc["records"][f"onnx/import/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["importer"] == "onnx2tf" and not data["builtin"]
        assert data["opset"] == 17 and data["max_abs_err"] <= 1e-4
        assert any("calibration" in n for n in data["notes"])


def test_throughput_every_workload_eager_and_compiled(tf_doc: dict[str, Any]) -> None:
    for workload in ("gemm", "conv2d", "mlp_train", "cnn_train", "lstm_train"):
        for mode in ("eager", "compiled"):
            rec = tf_doc["records"][f"throughput/{workload}/{mode}"]
            assert rec["status"] == "ok", rec["reason"]
            t = rec["data"]["timing"]
            assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
            assert rec["data"]["param_count_matches"], rec["data"]
            if mode == "compiled":
                assert rec["data"]["compile_path"].startswith(XLA)
            else:
                assert rec["data"]["compile_path"] is None


def test_numerics_suite_ran(tf_doc: dict[str, Any]) -> None:
    cov = tf_doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"].startswith("tf.experimental.numpy")
    assert cov["data"]["agrees"] >= 40  # 43 of 47 agreed when this test was written
    assert tf_doc["records"]["numerics/interop"]["status"] == "ok"


def test_scale_allreduce_through_tf_distribute(tf_doc: dict[str, Any]) -> None:
    rec = tf_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok", (rec["reason"], rec["data"].get("ranks"))
    assert rec["data"]["builtin"] is True
    assert rec["data"]["api"].startswith("tf.distribute.MultiWorkerMirroredStrategy")
    assert measured.scalability(tf_doc).value == 2.0
