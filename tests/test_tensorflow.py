"""TensorFlow (Keras 3) end to end: the real suite in TensorFlow's own virtualenv (built from
frameworks/tensorflow/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).
The assertions are the facts observed for TensorFlow 2.21 / Keras 3.15, so a regression in the adapter or a change of
behaviour in the pinned packages fails here."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.catalog.ops import OPS, OPS_BY_ID
from harness.catalog.workloads import CHECKED_STEPS, LOSS_RTOL, OUTPUT_RTOL, WORKLOADS, WORKLOADS_BY_ID
from harness.probes import SUITES
from harness.probes.layers import GRAD_DIRECTIONS, GRAD_RTOL
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
    bad = {k: (r["status"], r["reason"]) for k, r in tf_doc["records"].items()
           if r["status"] in ("error", "crashed", "timeout", "unmapped")}
    assert not bad


def test_every_op_verified(tf_doc: dict[str, Any]) -> None:
    layers = _layers(tf_doc)
    assert set(layers) == {op.id for op in OPS}
    # observed: all 32 run and agree in every case; 31 are Keras/TF's own, hierarchical softmax is composed
    assert {k: (r["status"], r["reason"]) for k, r in layers.items() if r["status"] != "ok"} == {}
    for rec in layers.values():
        assert rec["data"]["implementation"] in ("native", "composed")
    assert measured.ootb_ops(tf_doc).value == 31.5


def test_every_case_of_every_op_ran(tf_doc: dict[str, Any]) -> None:
    for op_id, rec in _layers(tf_doc).items():
        cases = rec["data"]["cases"]
        assert list(cases) == OPS_BY_ID[op_id].case_labels(), op_id
        assert all(c["status"] == "ok" for c in cases.values()), (op_id, cases)
    layers = _layers(tf_doc)
    # the extra cases: zero padding 1 at stride 2 (as padding='same', which pads a 7x7 input by 1 on each side),
    # and the optimizer settings that tell conventions apart
    assert set(layers["conv2d"]["data"]["cases"]) == {"default", "padded"}
    assert set(layers["max_pool2d"]["data"]["cases"]) == {"default", "padded"}
    assert set(layers["adagrad"]["data"]["cases"]) == {"default", "accumulator"}
    assert set(layers["adadelta"]["data"]["cases"]) == {"default", "learning_rate"}


def test_every_parameter_gradient_checked(tf_doc: dict[str, Any]) -> None:
    """The gradient of the input and of every trainable parameter, in every case, within the probe's tolerance over
    its random directions (dropout is judged by its mask; optimizers by their updates)."""
    checked = 0
    for op_id, rec in _layers(tf_doc).items():
        spec = OPS_BY_ID[op_id]
        assert rec["data"]["grad_rtol"] == GRAD_RTOL and rec["data"]["grad_directions"] == GRAD_DIRECTIONS
        for label, case_rec in rec["data"]["cases"].items():
            case = spec.case(None, label)
            if not case.wrt:
                continue
            if spec.check is not None:  # dropout: the gradient is the kept mask scaled by 1 / (1 - p)
                assert case_rec["forward"]["check"]["gradient_matches_mask"] is True
                continue
            backward = case_rec["backward"]
            assert backward["checked"] and backward["ok"], (op_id, label, backward.get("problem"))
            assert backward["wrt"] == list(case.wrt), (op_id, label)
            assert set(backward["gradients"]) == set(case.wrt)
            assert all(g["ok"] and len(g["framework"]) == GRAD_DIRECTIONS for g in backward["gradients"].values())
            assert backward["worst_rel_err"] <= GRAD_RTOL, (op_id, label)
            checked += len(case.wrt)
    layers = _layers(tf_doc)
    # parameters held in another layout than the catalog's, mapped back: conv kernels transposed, MHA's per-head
    # (E, heads, d) kernels, GRU's (2, 3H) bias split into bx / bh with the gate order z, r, n -> r, z, n
    assert set(layers["multi_head_attention"]["data"]["backward"]["gradients"]) == {
        "q", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"}
    assert set(layers["gru"]["data"]["backward"]["gradients"]) == {"x", "wx", "wh", "bx", "bh"}
    assert set(layers["conv2d"]["data"]["cases"]["padded"]["backward"]["gradients"]) == {"x", "w", "b"}
    assert checked >= 75  # 75 arrays in the catalog's cases when this test was written


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
    assert conv["adadelta"] == "lr_scales_step"  # Keras accumulates the unscaled delta and applies lr * delta
    assert conv["adam"] == "eps_hat" and conv["adamw"] == "eps_hat"


def test_graph_value_is_dynamic(tf_doc: dict[str, Any]) -> None:
    rec = tf_doc["records"]["graphs/define_by_run"]
    assert rec["status"] == "ok", rec["reason"]
    assert measured.graph_value(tf_doc).value == 2
    for inp in rec["data"]["inputs"]:
        # eager GradientTape runs the Python on every call and float(tensor) reads a concrete number mid-way
        assert inp["ok"] and inp["executions_per_call"] == [1, 1], inp
        assert all(isinstance(r, float) and abs(r - inp["expected_read"]) <= 1e-5 * max(1.0, abs(inp["expected_read"]))
                   for r in inp["reads"]), inp
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


def test_onnx_export_through_keras_runs_tf2onnx(tf_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = tf_doc["records"][f"onnx/export/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["max_abs_err"] <= 1e-4 and data["checker"] == "passed"
        assert data["exporter"] == "keras.Model.export(format='onnx')"
        # the harness's verdict: Keras' exporter calls tf2onnx, which neither keras nor tensorflow requires
        assert data["builtin"] is False
        assert data["provenance"]["outside_the_framework"] == ["tf2onnx"]
        assert {"keras", "tensorflow", "tf2onnx"} <= set(data["provenance"]["code_ran_from"])


def test_onnx_import_through_onnx2tf_offline(tf_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = tf_doc["records"][f"onnx/import/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["importer"] == "onnx2tf"
        assert data["opset"] == 17 and data["max_abs_err"] <= 1e-4
        assert any("calibration" in n for n in data["notes"])
        assert any("child process" in n for n in data["notes"])
        # onnx2tf converts in a child process (its import changes process-wide TensorFlow settings); the harness
        # counts a child by the module it runs, so onnx2tf, which tensorflow does not require, makes it separate
        assert data["builtin"] is False and "onnx2tf" in data["provenance"]["outside_the_framework"]


@pytest.mark.parametrize("workload", [w.id for w in WORKLOADS])
def test_throughput_first_step_checked_and_timed(tf_doc: dict[str, Any], workload: str) -> None:
    spec = WORKLOADS_BY_ID[workload]
    for mode in ("eager", "compiled"):
        rec = tf_doc["records"][f"throughput/{workload}/{mode}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        t = data["timing"]
        assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
        assert data["param_count_matches"], data
        # the first steps from the catalog's initial parameters, checked against the float64 reference
        checked = data["first_step"]
        assert checked["checked"] and checked["ok"]
        assert [s["step"] for s in checked["steps"]] == list(range(1, CHECKED_STEPS + 1))
        for step in checked["steps"]:
            assert step["ok"], step.get("problem")
            if spec.kind == "train":
                assert step["loss"]["rel_err"] <= LOSS_RTOL
                assert set(step["parameters"]) == set(spec.parameters("cpu"))  # every parameter, in the catalog's layout
                assert all(p["within"] for p in step["parameters"].values())
            else:
                assert step["output"]["rel_err"] <= OUTPUT_RTOL
        if mode == "compiled":
            assert data["compile_path"].startswith(XLA)
            assert data["compile_scope"] == ("step" if spec.kind == "train" else "op")
            assert data["graphs_captured"] == 1  # tf.function.experimental_get_tracing_count(): traced once
        else:
            assert data["compile_path"] is None and data["compile_scope"] is None


def test_numerics_suite_ran(tf_doc: dict[str, Any]) -> None:
    cov = tf_doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"] == "tf.experimental.numpy"  # TensorFlow's, not NumPy
    assert cov["data"]["agrees"] >= 40  # 43 of 47 agreed when this test was written
    interop = tf_doc["records"]["numerics/interop"]
    assert interop["status"] == "ok" and interop["data"]["zero_copy_both_ways"] is True


def test_scale_allreduce_through_tf_distribute(tf_doc: dict[str, Any]) -> None:
    rec = tf_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok", (rec["reason"], rec["data"].get("ranks"))
    assert rec["data"]["builtin"] is True
    assert rec["data"]["api"].startswith("tf.distribute.MultiWorkerMirroredStrategy")
    assert measured.scalability(tf_doc).value == 2.0
