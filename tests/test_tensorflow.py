"""TensorFlow (Keras 3) end to end: the real suite in TensorFlow's own virtualenv (built from
frameworks/tensorflow/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).
The assertions are the facts observed for TensorFlow 2.21 / Keras 3.15, so a regression in the adapter or a change of
behaviour in the pinned packages fails here."""

from __future__ import annotations

import json
import subprocess
import textwrap
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


OPS_WORKLOADS = [w.id for w in WORKLOADS if w.kind == "op"]
TRAIN_WORKLOADS = [w.id for w in WORKLOADS if w.kind == "train"]
@pytest.mark.parametrize("workload", OPS_WORKLOADS)
def test_single_op_workloads_checked_and_timed(tf_doc: dict[str, Any], workload: str) -> None:
    for mode in ("eager", "compiled"):
        rec = tf_doc["records"][f"throughput/{workload}/{mode}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert len(data["timing"]["samples_s"]) >= 5 and data["timing"]["median_s"] > 0
        assert data["precision"] == "fp32"
        checked = data["first_step"]
        assert checked["ok"] and [s["step"] for s in checked["steps"]] == list(range(1, CHECKED_STEPS + 1))
        assert all(s["output"]["rel_err"] <= OUTPUT_RTOL for s in checked["steps"])
        if mode == "compiled":
            assert data["compile_path"].startswith(XLA) and data["compile_scope"] == "op"
            assert data["graphs_captured"] == 1
        else:
            assert data["compile_path"] is None and data["compile_scope"] is None


def _outside(step: dict[str, Any]) -> list[str]:
    """The parameters of a checked step outside the tolerance."""
    return sorted(name for name, p in step["parameters"].items() if not p["within"])


@pytest.mark.parametrize("workload", TRAIN_WORKLOADS)
def test_training_workloads_checked_and_timed(tf_doc: dict[str, Any], workload: str) -> None:
    """Every training workload is a catalog model the adapter builds from its node kinds: both checked steps within
    tolerance of the float64 reference, every parameter returned in the catalog's layout, the model's parameter
    count, and for the compiled mode the whole step compiled by XLA, traced once."""
    spec = WORKLOADS_BY_ID[workload]
    for mode in ("eager", "compiled"):
        rec = tf_doc["records"][f"throughput/{workload}/{mode}"]
        data = rec["data"]
        assert data["precision"] == "fp32"
        assert data["param_count"] == data["expected_param_count"] == spec.param_count("cpu")
        steps = data["first_step"]["steps"]
        for step in steps:
            assert set(step["parameters"]) == set(spec.parameters("cpu"))  # every parameter, in the catalog's layout
        if mode == "compiled":
            assert data["compile_path"].startswith(XLA) and data["compile_scope"] == "step"
        else:
            assert data["compile_path"] is None and data["compile_scope"] is None
        assert rec["status"] == "ok", rec["reason"]
        assert len(data["timing"]["samples_s"]) >= 5 and data["timing"]["median_s"] > 0
        assert data["first_step"]["checked"] and data["first_step"]["ok"]
        assert [s["step"] for s in steps] == list(range(1, CHECKED_STEPS + 1))
        for step in steps:
            assert step["loss"]["rel_err"] <= max(LOSS_RTOL, step["loss"].get("tolerance", 0.0)), step["loss"]
            assert step["ok"] and not _outside(step), step.get("problem")
        if mode == "compiled":
            assert data["graphs_captured"] == 1  # tf.function.experimental_get_tracing_count(): traced once


def test_adapter_has_no_model_specific_code() -> None:
    from pathlib import Path

    from harness.catalog.workloads import MODELS

    source = (Path(__file__).parent.parent / "frameworks" / "tensorflow" / "adapter.py").read_text()
    model_ids = {factory().id for sizes in MODELS.values() for factory in sizes.values()}
    named = [w for w in [*TRAIN_WORKLOADS, *model_ids, "_train_model"] if w in source]
    assert not named, named


def test_strict_float32_switches_reported(tf_doc: dict[str, Any]) -> None:
    info = tf_doc["environment"]["framework_device"]
    assert info["precision"] == {
        "tf.config.experimental.enable_tensor_float_32_execution": False,  # read back after turning it off
        "TF_SET_ONEDNN_FPMATH_MODE": "unset",
        "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
        "keras.config.dtype_policy": "float32",
    }
    assert info["device"] == "cpu" and info["gpus_seen"] == 0
    assert info["cuda_build"] and info["cudnn_build"]  # tf.sysconfig.get_build_info(): the CUDA TF was built with


# Runs inside TensorFlow's environment: what can be checked of the CUDA and precision logic without a GPU, and a
# catalog model the suite does not have (new kinds combinations, paddings that padding='same' cannot express),
# checked two steps against the float64 reference in both modes.
VENV_CHECKS = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    import numpy as np
    from frameworks.tensorflow import adapter as m
    from harness.adapter import Unsupported
    from harness.catalog import models, reference_models
    from harness.catalog.workloads import LEARNING_RATE, PARAM_ROUNDING, WORKLOADS_BY_ID
    from harness.probes import Context, throughput
    from harness.timing import TimingConfig

    out = {"index": {d: m.cuda_index(d) for d in ("cpu", "cuda", "cuda:0", "cuda:1", "cuda:7")}}
    try:
        m.cuda_index("cuda:x")
    except ValueError as exc:
        out["bad_index"] = str(exc)
    names = ("TF_FORCE_GPU_ALLOW_GROWTH", "ONEDNN_DEFAULT_FPMATH_MODE", "TF_SET_ONEDNN_FPMATH_MODE", "KERAS_BACKEND")
    out["env"] = {k: os.environ.get(k) for k in names}
    child = "import os; print(os.environ.get('TF_FORCE_GPU_ALLOW_GROWTH'))"
    out["child_env"] = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout.strip()

    gpu = m.TensorflowAdapter("cuda:1")  # no GPU here: unavailable with a reason, nothing raised
    info = gpu.device_info()
    out["cuda1"] = {"available": list(gpu.device_available()), "gpu_count": gpu.gpu_count(), "index": gpu.gpu_index,
                    "logical": gpu._logical_device(), "precision": info["precision"], "has_name": "name" in info}
    odd = m.TensorflowAdapter("cuda:x")
    out["odd"] = list(odd.device_available())

    a = m.TensorflowAdapter("cpu")
    tf = a.tf
    seen = []
    a._with_precision("tf32", lambda: seen.append(tf.config.experimental.tensor_float_32_execution_enabled()))()
    out["tf32_switch"] = {"inside": seen, "after": tf.config.experimental.tensor_float_32_execution_enabled()}
    spec = WORKLOADS_BY_ID["mlp_train"]
    try:
        a.model_workload(spec.model("cpu"), spec.arrays("cpu"), "eager", "tf32")
    except Unsupported as exc:
        out["tf32_cpu"] = exc.looked_up

    ctx = Context(device="cpu", scratch=Path("scratch"), timing=TimingConfig.quick())
    out["bf16"] = {}
    for entry in ("mlp_train/compiled/bf16", "cnn_train/eager/bf16", "gru_lm_train/compiled/bf16"):
        res = throughput.run(a, entry, ctx)
        steps = res.data["first_step"]["steps"]
        out["bf16"][entry] = {"status": res.status.value, "reason": res.reason, "precision": res.data["precision"],
                              "count_ok": res.data.get("param_count_matches"),
                              "worst": max(p["update_rel_err"] for s in steps for p in s["parameters"].values())}

    def novel_image():
        b = models.Builder()
        # SAME would pad 0/1 on 8x8, not 1/1 (no bias: batch norm follows, which would leave it a zero gradient)
        b.add("conv2d", out=6, kernel=3, stride=2, padding=1, name="c1")
        b.add("batch_norm", name="bn")
        b.add("max_pool", kernel=3, stride=2, padding=1)  # 4x4 -> 2x2 over normalised values: some windows' real
        p = b.add("gelu")  # cells are all negative, where a zero pad would win
        b.add("conv2d", p, out=6, kernel=1, stride=1, padding=0, bias=True, name="c2")
        r = b.add("relu")
        b.add("add", p, r)
        b.add("flatten")
        b.add("layer_norm", name="ln")
        b.add("dense", out=5, name="fc")
        return models.Model("novel_image", "image", (4, 3, 8, 8), "class", 5, tuple(b.nodes))

    def novel_tokens():
        b = models.Builder()
        b.add("embedding", vocab=13, dim=6, name="emb")
        x = b.add("positional", name="pos")
        b.add("dense", out=6, bias=False, name="proj")
        y = b.add("gelu")
        b.add("add", x, y)
        b.add("gru", hidden=7, name="rnn")
        b.add("layer_norm", name="ln")
        b.add("dense", out=13, name="head")
        return models.Model("novel_tokens", "tokens", (2, 5), "token", 13, tuple(b.nodes), vocab=13)

    out["novel"] = {}
    for model in (novel_image(), novel_tokens()):
        arrays = models.model_params(model)
        params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
        ref = reference_models.training_steps(model, params, arrays, LEARNING_RATE, 2)
        for mode in ("eager", "compiled"):
            w = a.model_workload(model, arrays, mode)
            rows = []
            for want in ref:
                got = w.observe(w.step())
                worst, which = 0.0, ""
                for name in params:
                    update = np.linalg.norm(want[name] - params[name])  # since the start, as the probe measures
                    err = np.linalg.norm(got[name].astype(np.float64) - want[name])
                    allowed = update * 1e-3 + PARAM_ROUNDING * np.linalg.norm(want[name])
                    if err / allowed > worst:
                        worst, which = err / allowed, name
                rows.append({"loss_rel": abs(float(got["loss"]) - want["loss"]) / want["loss"], "worst": worst, "which": which})
            out["novel"][f"{model.id}/{mode}"] = {"steps": rows, "count": w.param_count, "expected": model.param_count(),
                                                  "traces": w.traces(), "scope": w.compile_scope, "notes": w.notes}
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def venv_checks(tf_doc: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import os

    interp = VenvRunner().prepare(registry.get("tensorflow"), "cpu", lambda _: None)
    work = tmp_path_factory.mktemp("tensorflow-venv-checks")
    proc = subprocess.run([*interp.argv, "-c", VENV_CHECKS], cwd=work, env={**os.environ, **interp.env},
                          capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def test_cuda_device_logic_without_a_gpu(venv_checks: dict[str, Any]) -> None:
    assert venv_checks["index"] == {"cpu": None, "cuda": 0, "cuda:0": 0, "cuda:1": 1, "cuda:7": 7}
    assert "must be a number" in venv_checks["bad_index"]
    # set when the adapter module is imported, before TensorFlow: no preallocation here or in any child process
    # that imports TensorFlow (the onnx2tf converter); oneDNN's float32 math strict
    assert venv_checks["env"] == {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
                                  "TF_SET_ONEDNN_FPMATH_MODE": None, "KERAS_BACKEND": "tensorflow"}
    assert venv_checks["child_env"] == "true"
    cuda1 = venv_checks["cuda1"]
    assert cuda1["available"][0] is False and "sees 0 GPU(s)" in cuda1["available"][1] and "cuda:1" in cuda1["available"][1]
    assert cuda1["gpu_count"] == 0 and cuda1["index"] == 1
    assert cuda1["logical"] == "GPU:0"  # physical GPU N is the only visible one: logical GPU:0
    assert cuda1["precision"]["tf.config.experimental.enable_tensor_float_32_execution"] is False
    assert cuda1["has_name"] is False  # no device details for a device that is not there
    assert venv_checks["odd"][0] is False and "must be a number" in venv_checks["odd"][1]


def test_tf32_switch_only_inside_the_step(venv_checks: dict[str, Any]) -> None:
    assert venv_checks["tf32_switch"] == {"inside": [True], "after": False}
    # TF32 is a GPU format: asked on the CPU, Unsupported with what was looked up
    assert any("enable_tensor_float_32_execution" in x for x in venv_checks["tf32_cpu"])


def test_bf16_mixed_precision_runs_checked(venv_checks: dict[str, Any]) -> None:
    for entry, res in venv_checks["bf16"].items():
        assert res["status"] == "ok" and res["precision"] == "bf16" and res["count_ok"], (entry, res["reason"])
        # bfloat16 compute really happened: updates differ from the float64 ones far beyond float32 rounding
        assert res["worst"] > 1e-3, (entry, res["worst"])


def test_a_new_catalog_model_runs_unchanged(venv_checks: dict[str, Any]) -> None:
    """Models the catalog does not have, made of its node kinds, checked two steps against the float64 reference:
    conv and max-pool padding that padding='same' cannot express, a residual add of channels-last values, flatten
    in NCHW order, layer norm, gelu, embeddings with learned positions, and a per-token GRU head."""
    for key, res in venv_checks["novel"].items():
        assert res["count"] == res["expected"], key
        for step in res["steps"]:
            assert step["loss_rel"] <= LOSS_RTOL and step["worst"] <= 1.0, (key, step)
        if key.endswith("/compiled"):
            assert res["traces"] == 1 and res["scope"] == "step"
    image_notes = " ".join(venv_checks["novel"]["novel_image/eager"]["notes"])
    assert "ZeroPadding2D" in image_notes and "-inf" in image_notes and "NCHW order" in image_notes


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
