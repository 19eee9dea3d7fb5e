"""JAX (Flax Linen + Optax) end to end: the real suite in jax's own virtualenv (built from
frameworks/jax/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).

The assertions are what the suite observed with the pinned releases, so a change in any of them fails here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.catalog import ops
from harness.catalog.workloads import CHECKED_STEPS, LOSS_RTOL, OUTPUT_RTOL, WORKLOADS, WORKLOADS_BY_ID
from harness.probes import SUITES
from harness.probes.layers import GRAD_RTOL
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("jax")
REPO = Path(__file__).resolve().parent.parent

COMPOSED = {"separable_conv2d", "global_avg_pool2d", "local_response_norm", "prelu", "hierarchical_softmax"}
OP_WORKLOADS = ("gemm", "conv2d")
TRAINING = tuple(w.id for w in WORKLOADS if w.kind == "train")


@pytest.fixture(scope="module")
def jax_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("jax-results")
    req = RunRequest(registry.get("jax"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/")[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def test_document_is_complete_and_valid(jax_doc: dict[str, Any]) -> None:
    assert validate_document(jax_doc) == []
    assert jax_doc["complete"]
    versions = jax_doc["environment"]["versions"]
    assert jax_doc["environment"]["framework_version"] == versions["jax"] == versions["jaxlib"]
    for package in ("flax", "optax", "jax2onnx", "jaxonnxruntime", "onnx", "onnxruntime", "numpy"):
        assert versions[package] != "not installed", package
    bad = {k: r["status"] for k, r in jax_doc["records"].items() if r["status"] in ("error", "crashed", "timeout", "unmapped")}
    assert not bad


def test_all_32_ops_verified_with_five_composed(jax_doc: dict[str, Any]) -> None:
    layers = _layers(jax_doc)
    assert len(layers) == 32
    assert {op: r["reason"] for op, r in layers.items() if r["status"] != "ok"} == {}
    composed = {op for op, r in layers.items() if r["data"]["implementation"] == "composed"}
    assert composed == COMPOSED
    assert measured.ootb_ops(jax_doc).value == 32 - 0.5 * len(COMPOSED)
    assert "scalar slope" in layers["prelu"]["data"]["note"]  # flax.linen.PReLU has one slope, not one per channel
    assert layers["hierarchical_softmax"]["data"]["variant"] is None  # the op itself, composed, not adaptive softmax
    assert layers["lstm"]["data"]["api"] == "flax.linen.RNN(OptimizedLSTMCell)"
    assert layers["ctc_loss"]["data"]["api"] == "optax.ctc_loss"


def test_every_case_of_every_op_ran_and_passed(jax_doc: dict[str, Any]) -> None:
    """Extra cases included: conv2d and max_pool2d padded, Adagrad's initial accumulator, Adadelta's learning rate;
    none of them is unsupported."""
    for op, rec in _layers(jax_doc).items():
        cases = rec["data"]["cases"]
        assert set(cases) == set(ops.get(op).case_labels()), op
        assert {label: c["status"] for label, c in cases.items() if c["status"] != "ok"} == {}, op
    layers = _layers(jax_doc)
    assert layers["conv2d"]["data"]["cases"]["padded"]["status"] == "ok"
    assert layers["max_pool2d"]["data"]["cases"]["padded"]["status"] == "ok"
    assert layers["adagrad"]["data"]["cases"]["accumulator"]["status"] == "ok"
    assert layers["adadelta"]["data"]["cases"]["learning_rate"]["status"] == "ok"


def test_every_parameter_gradient_checked_in_the_catalog_layout(jax_doc: dict[str, Any]) -> None:
    """The input and every trainable parameter (conv kernels transposed to HWIO, LSTM/GRU gate blocks split per
    gate, GRU biases folded, attention projections reshaped per head) come back in the catalog's layout and agree
    with float64 central differences within the probe's tolerance."""
    for op, rec in _layers(jax_doc).items():
        spec = ops.get(op)
        for label, case_rec in rec["data"]["cases"].items():
            case = spec.case(None, label)
            if case.grad_wrt is None or spec.check is not None:
                continue
            backward = case_rec["backward"]
            assert backward["checked"] and backward["ok"], (op, label, backward.get("problem"))
            assert backward["wrt"] == list(case.wrt), (op, label)
            assert set(backward["gradients"]) == set(case.wrt), (op, label)
            assert all(g["ok"] for g in backward["gradients"].values()), (op, label)
    # attention's key bias has a truly zero gradient (softmax is shift-invariant): judged against the floor
    mha = _layers(jax_doc)["multi_head_attention"]["data"]["cases"]["default"]["backward"]["gradients"]
    assert mha["bk"]["zero_gradient"] is True and mha["bk"]["ok"]
    assert all(g["rel_err"] <= GRAD_RTOL for name, g in mha.items() if name != "bk")
    gru = _layers(jax_doc)["gru"]["data"]["cases"]["default"]["backward"]["wrt"]
    assert gru == ["x", "wx", "wh", "bx", "bh"]
    dropout = _layers(jax_doc)["dropout"]["data"]["forward"]["check"]
    assert dropout["gradient_matches_mask"] is True


def test_conventions_are_recorded(jax_doc: dict[str, Any]) -> None:
    conv = {op: r["data"].get("convention") for op, r in _layers(jax_doc).items()}
    assert conv["gru"] == "reset_after"
    assert conv["avg_pool2d"] == "count_include_pad"
    assert conv["adagrad"] == "eps_inside_sqrt" and conv["rmsprop"] == "eps_inside_sqrt"
    assert conv["adadelta"] == "lr_scales_step"  # optax scales the step by the rate after scale_by_adadelta
    assert conv["adam"] == "eps_outside_sqrt" and conv["adamw"] == "eps_outside_sqrt"


def test_define_by_run_reads_a_concrete_number_inside_the_eager_gradient(jax_doc: dict[str, Any]) -> None:
    """jax.value_and_grad (no jit) runs the Python on every call; F.item is jax.Array.item(), which returns the
    concrete primal of the JVP tracer as a Python float, so the program branches on it and JAX scores dynamic."""
    rec = jax_doc["records"]["graphs/define_by_run"]
    assert rec["status"] == "ok", rec["reason"]
    assert measured.graph_value(jax_doc).value == 2
    for entry in rec["data"]["inputs"]:
        assert entry["ok"], entry
        assert entry["executions_per_call"] == [1, 1]
        assert all(isinstance(r, float) and abs(r - entry["expected_read"]) <= 1e-5 * abs(entry["expected_read"])
                   for r in entry["reads"]), entry["reads"]
    notes = " ".join(rec["data"]["notes"])
    assert "jax.Array.item()" in notes and "ConcretizationTypeError" in notes


def test_jit_compiles_static_program_and_rejects_python_control_flow(jax_doc: dict[str, Any]) -> None:
    recs = jax_doc["records"]
    jit = recs["graphs/compiled"]["data"]["paths"]["jax.jit"]
    assert jit["ok"] and jit["compile_s"] > 0
    assert jit["new_shape"]["outcome"] == "recompiled" and jit["new_shape"]["evidence"] == "trace count 1 -> 2"
    cf = recs["graphs/compiled_control_flow"]
    assert cf["status"] == "failed"
    path = cf["data"]["paths"]["jax.jit"]
    assert path["outcome"] == "rejected" and "TracerBoolConversionError" in path["error"]


def test_onnx_export_and_import_are_separate_packages_by_the_provenance_rule(jax_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        exp = jax_doc["records"][f"onnx/export/{model}"]
        assert exp["status"] == "ok", exp["reason"]
        assert exp["data"]["exporter"] == "jax2onnx.to_onnx"
        assert exp["data"]["builtin"] is False and exp["data"]["provenance"]["builtin"] is False
        assert "jax2onnx" in exp["data"]["provenance"]["outside_the_framework"]
        assert exp["data"]["max_abs_err"] <= 1e-4 and exp["data"]["checker"] == "passed"
        imp = jax_doc["records"][f"onnx/import/{model}"]
        assert imp["status"] == "ok", imp["reason"]
        assert imp["data"]["importer"] == "jaxonnxruntime"
        assert imp["data"]["builtin"] is False and imp["data"]["provenance"]["builtin"] is False
        assert "jaxonnxruntime" in imp["data"]["provenance"]["outside_the_framework"]
        assert imp["data"]["opset"] == 17
    assert measured.onnx_direction(jax_doc, "export").value == 1.0
    assert measured.onnx_direction(jax_doc, "import").value == 1.0


def test_throughput_first_steps_checked_and_timed(jax_doc: dict[str, Any]) -> None:
    """Every single-op and training workload, eager and compiled: both checked steps agree with the float64
    reference (training: the loss and every parameter after its update), the parameter count is the catalog's, and
    the steady steps were timed."""
    for workload in (*OP_WORKLOADS, *TRAINING):
        spec = WORKLOADS_BY_ID[workload]
        for mode in ("eager", "compiled"):
            rec = jax_doc["records"][f"throughput/{workload}/{mode}"]
            data = rec["data"]
            assert data["compile_path"] == ("jax.jit" if mode == "compiled" else None)
            assert data["precision"] == "fp32"
            assert rec["status"] == "ok", rec["reason"]
            t = data["timing"]
            assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
            assert data["param_count_matches"], data
            assert data["param_count"] == spec.param_count("cpu")
            checked = data["first_step"]
            assert checked["ok"], checked
            assert [s["step"] for s in checked["steps"]] == list(range(1, CHECKED_STEPS + 1))
            for step in checked["steps"]:  # the first (traced) step and the second (replayed) one
                assert step["ok"], step.get("problem")
                if spec.kind == "train":
                    assert step["loss"]["rel_err"] <= LOSS_RTOL
                    assert set(step["parameters"]) == set(spec.parameters("cpu"))
                    assert all(p["within"] for p in step["parameters"].values())
                else:
                    assert step["output"]["rel_err"] <= OUTPUT_RTOL


def test_compiled_workloads_jit_the_whole_step_and_trace_once(jax_doc: dict[str, Any]) -> None:
    for workload in (*OP_WORKLOADS, *TRAINING):
        spec = WORKLOADS_BY_ID[workload]
        rec = jax_doc["records"][f"throughput/{workload}/compiled"]
        compiled = rec["data"]
        assert compiled["compile_scope"] == ("step" if spec.kind == "train" else "op")
        eager = jax_doc["records"][f"throughput/{workload}/eager"]["data"]
        assert eager["compile_scope"] is None and "graphs_captured" not in eager
        assert compiled["graphs_captured"] == 1  # the counter in the jitted body ran once: one trace
        assert "XLA compilations during the second step: 0" in compiled["notes"], compiled["notes"]
        if spec.kind == "train":
            assert any("one jax.jit" in n for n in compiled["notes"])


def test_device_info_states_strict_float32_and_no_preallocation(jax_doc: dict[str, Any]) -> None:
    info = jax_doc["environment"]["framework_device"]
    assert info["available"] is True and info["platform"] == "cpu"
    assert info["precision"]["jax_default_matmul_precision"] == "highest"
    assert "reduced-precision reductions" in info["precision"]
    assert info["memory"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    notes = jax_doc["records"]["throughput/mlp_train/compiled"]["data"]["notes"]
    assert any("jax.default_matmul_precision('highest')" in n for n in notes)


def test_numerics_suite_ran_on_jax_numpy(jax_doc: dict[str, Any]) -> None:
    cov = jax_doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"].startswith("jax.numpy")
    assert cov["data"]["agrees"] >= 44  # 47 of 47 agreed when this test was written
    assert jax_doc["records"]["numerics/interop"]["status"] == "ok"


def test_two_process_allreduce_through_jax_distributed(jax_doc: dict[str, Any]) -> None:
    rec = jax_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok" and rec["data"]["builtin"] is True, rec["reason"]
    assert rec["data"]["api"] == "jax.distributed + jax.shard_map(jax.lax.psum), gloo"
    assert measured.scalability(jax_doc).value == 2.0


# ---------------------------------------------------------------------------------------------- helpers (host)
def test_device_strings_map_to_jax_devices() -> None:
    """cuda:N is jax.devices('gpu')[N]; the adapter module imports no jax, so this runs on the host."""
    from frameworks.jax.adapter import cuda_version, cudnn_version, device_index, jax_platform

    assert [jax_platform(d) for d in ("cpu", "cuda", "cuda:0", "cuda:3", "cuda:x", "tpu", "gpu:0")] == [
        "cpu", "gpu", "gpu", "gpu", None, None, None]
    assert [device_index(d) for d in ("cpu", "cuda", "cuda:0", "cuda:1", "cuda:7")] == [0, 0, 0, 1, 7]
    assert cuda_version(12080) == "12.8" and cuda_version(12040) == "12.4"
    assert cudnn_version(91000) == "9.10.0" and cudnn_version(90501) == "9.5.1" and cudnn_version(8907) == "8.9.7"


# ---------------------------------------------------------------------------------------------- in jax's venv
@pytest.fixture(scope="module")
def venv() -> Any:
    return VenvRunner().prepare(registry.get("jax"), "cpu", lambda _msg: None)


def _in_venv(venv: Any, code: str, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run `code` with jax's interpreter (from the repository root); it prints its result as JSON on its last line."""
    proc = subprocess.run([*venv.argv, "-c", code], env={**os.environ, **venv.env, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Catalog models that are no workload, together of every node kind, at sizes float32 resolves: batch norm over
# 8 x 64 values per channel; layer norm on a 4-D value (the catalog's last axis, W, while Flax holds images NHWC);
# an add of a catalog-layout and a channels-last value; padded max pooling; flatten after channels-last layers. No
# parameter but attention's key bias has an exactly zero gradient (no bias right before a normalisation).
EXTRA_MODELS = r"""
from harness.catalog import models as M

def model(mid, input_kind, shape, target, classes, layers, vocab=0):
    b = M.Builder()
    for kind, inputs, attrs in layers:
        b.add(kind, *inputs, **attrs)
    return M.Model(mid, input_kind, shape, target, classes, tuple(b.nodes), vocab=vocab)

EXTRA = [
    model("image_kinds", "image", (8, 3, 8, 8), "class", 5, [
        ("conv2d", (), dict(out=6, kernel=3, stride=1, padding=1, name="c1")), ("batch_norm", (), dict(name="bn1")),
        ("relu", (), dict(name="r1")), ("layer_norm", (), dict(name="ln_w")), ("gelu", (), dict(name="g")),
        ("conv2d", (), dict(out=6, kernel=3, stride=1, padding=1, bias=True, name="c2")),
        ("add", ("g", "c2"), dict(name="res")), ("max_pool", (), dict(kernel=3, stride=2, padding=1, name="mp")),
        ("global_avg_pool", ("mp",), dict(name="gap")), ("flatten", ("mp",), dict(name="fl")),
        ("dense", (), dict(out=6, bias=False, name="proj")), ("add", ("gap", "proj"), dict(name="mix")),
        ("dense", (), dict(out=5, name="fc"))]),
    model("token_kinds", "tokens", (4, 6), "class", 4, [
        ("embedding", (), dict(vocab=30, dim=8, name="emb")), ("positional", (), dict(name="pos")),
        ("self_attention", ("pos",), dict(heads=2, name="att")), ("add", ("pos", "att"), dict(name="res")),
        ("layer_norm", (), dict(name="ln")), ("gru", (), dict(hidden=8, name="gru")),
        ("mean_tokens", ("gru",), dict(name="mean")), ("lstm_last", ("gru",), dict(hidden=8, name="lstm")),
        ("add", ("mean", "lstm"), dict(name="both")), ("dense", (), dict(out=8, name="d")), ("gelu", (), {}),
        ("dense", (), dict(out=4, name="out"))], vocab=30),
    model("token_targets", "tokens", (3, 5), "token", 20, [
        ("embedding", (), dict(vocab=20, dim=6, name="emb")), ("gru", (), dict(hidden=6, name="gru")),
        ("dense", (), dict(out=20, name="head"))], vocab=20),
]
"""

CATALOG_MODELS = EXTRA_MODELS + r"""
import json
import numpy as np
from harness.catalog import reference_models as R
from harness.catalog.workloads import LEARNING_RATE, PARAM_ROUNDING, UPDATE_RTOL
from frameworks.jax.adapter import JaxAdapter

adapter = JaxAdapter("cpu")
out = {"kinds": sorted({n.kind for m in EXTRA for n in m.nodes}), "models": {}}
for m in EXTRA:
    arrays = M.model_params(m)
    params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
    refs = R.training_steps(m, params, arrays, LEARNING_RATE, 3)
    for mode in ("eager", "compiled"):
        w = adapter.model_workload(m, arrays, mode)
        steps = []
        for ref in refs:
            got = w.observe(w.step())
            outside, zero_gradient = [], []
            for name in params:
                update = np.linalg.norm(ref[name] - params[name])
                err = np.linalg.norm(got[name] - ref[name])
                if err <= UPDATE_RTOL * update + PARAM_ROUNDING * np.linalg.norm(ref[name]):
                    continue
                # an exactly zero gradient (attention's key bias) keeps float32 rounding noise of lr x ~1e-8
                (zero_gradient if update < 1e-12 and err < 1e-9 else outside).append(name)
            steps.append({"loss_rel": abs(float(got["loss"]) - ref["loss"]) / ref["loss"], "outside": outside,
                          "zero_gradient": zero_gradient})
        out["models"][f"{m.id}/{mode}"] = {"steps": steps, "param_count": w.param_count, "expected": m.param_count(),
                                           "traces": w.traces(), "scope": w.compile_scope, "precision": w.precision,
                                           "unchanged": all(np.array_equal(arrays[k], v) for k, v in M.model_params(m).items())}
print(json.dumps(out))
"""


def test_catalog_models_of_every_kind(venv: Any) -> None:
    """model_workload runs catalog models that are no workload, made of every node kind, unchanged: three steps
    eager and compiled agree with the float64 reference (loss and every parameter), with the catalog's parameter
    count; the caller's arrays are never trained in place."""
    from harness.catalog.models import NODE_KINDS

    out = _in_venv(venv, CATALOG_MODELS)
    assert out["kinds"] == sorted(NODE_KINDS)
    assert len(out["models"]) == 6
    for key, rec in out["models"].items():
        model_id, mode = key.split("/")
        assert rec["param_count"] == rec["expected"], key
        assert rec["unchanged"], key
        assert rec["precision"] == "fp32"
        assert (rec["traces"], rec["scope"]) == ((1, "step") if mode == "compiled" else (None, None)), key
        for index, step in enumerate(rec["steps"]):
            assert step["loss_rel"] <= 1e-5, (key, index, step)
            assert step["outside"] == [], (key, index, step)
            assert step["zero_gradient"] == (["att.bk"] if model_id == "token_kinds" else []), (key, index, step)


FLOAT64 = EXTRA_MODELS + r"""
import json
import numpy as np
import jax
import optax
from harness.catalog import reference_models as R
from harness.catalog.workloads import WORKLOADS
from frameworks.jax.adapter import CatalogLayers, JaxAdapter

adapter = JaxAdapter("cpu")
jax.config.update("jax_enable_x64", True)
f64 = jax.numpy.float64
out = {}
for m in [w.check_model("cpu") for w in WORKLOADS if w.kind == "train"] + EXTRA:
    arrays = M.model_params(m)
    params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
    ref_loss, ref_grads = R.loss_and_grads(m, params, arrays)
    layers = CatalogLayers(adapter, m, f64, f64)
    module = layers.module()
    trainable, frozen = layers.load(arrays)
    x = layers.input_array(arrays["x"])
    x = x if x.dtype.kind == "i" else x.astype(np.float64)
    stats = layers.check_tree(module, trainable, frozen, x)
    as64 = lambda t: jax.tree_util.tree_map(lambda v: jax.numpy.asarray(v, f64), t)
    trainable, frozen, stats = as64(trainable), as64(frozen), as64(stats)

    def loss(p):
        variables = {"params": layers.flax_params(p, frozen)}
        if stats:
            logits, _ = module.apply({**variables, "batch_stats": stats}, x, mutable=["batch_stats"])
        else:
            logits = module.apply(variables, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, arrays["labels"]).mean()

    value, grads = jax.value_and_grad(loss)(trainable)
    grads = layers.catalog_params(grads, np.float64)
    scale = max(np.linalg.norm(g) for g in ref_grads.values())
    errors = {k: float(np.linalg.norm(grads[k] - g) / max(np.linalg.norm(g), 1e-9 * scale)) for k, g in ref_grads.items()}
    out[m.id] = {"loss_rel": abs(float(value) - ref_loss) / ref_loss, "worst": max(errors.values()),
                 "worst_param": max(errors, key=errors.get), "same_names": sorted(grads) == sorted(ref_grads)}
print(json.dumps(out))
"""


def test_flax_module_is_the_reference_in_float64(venv: Any) -> None:
    """The Flax module and the parameter maps, run in float64 (jax_enable_x64), give the float64 reference's loss and
    every gradient, for every training workload's CPU model and the models above: the layers, their wiring and the
    layouts are exactly the catalog's. This holds where the float32 check cannot look closely: ResNet-50's CPU
    check (batch 2, 64x64) is judged at a few percent, because one ReLU at the output of block s4b1 sits at +5e-5
    in float64, under float32's accumulated forward error there, and flips. A zero gradient (attention's key bias)
    is judged against 1e-9 of the largest gradient."""
    out = _in_venv(venv, FLOAT64)
    assert len(out) == len(TRAINING) + 3
    for model_id, rec in out.items():
        assert rec["same_names"], model_id
        assert rec["loss_rel"] <= 1e-12, (model_id, rec)
        assert rec["worst"] <= 1e-8, (model_id, rec)


PRECISIONS_ON_CPU = r"""
import json
import numpy as np
from harness.adapter import Unsupported
from harness.catalog.workloads import WORKLOADS_BY_ID
from harness.probes.throughput import step_check
from frameworks.jax.adapter import JaxAdapter

adapter = JaxAdapter("cpu")
out = {}
for wid in ("mlp_train", "cnn_train", "gemm"):
    spec = WORKLOADS_BY_ID[wid]
    arrays = spec.arrays("cpu")
    ref = spec.reference_steps("cpu")[0]
    for precision in ("tf32", "bf16"):
        if spec.kind == "train":
            w = adapter.model_workload(spec.model("cpu"), arrays, "compiled", precision)
        else:
            w = adapter.workload(spec, arrays, "compiled", precision)
        result = w.step()
        check = step_check(spec, "cpu", arrays, w.observe(result), ref, precision)
        err = check["loss"]["rel_err"] if spec.kind == "train" else check["output"]["rel_err"]
        out[f"{wid}/{precision}"] = {"built": w.precision, "ok": check["ok"], "rel_err": err,
                                     "dtype": str(np.asarray(result).dtype), "notes": w.notes}
try:
    adapter.model_workload(WORKLOADS_BY_ID["mlp_train"].model("cpu"), WORKLOADS_BY_ID["mlp_train"].arrays("cpu"),
                           "eager", "fp8")
    out["fp8"] = None
except Unsupported as exc:
    out["fp8"] = {"reason": str(exc), "looked_up": exc.looked_up}
print(json.dumps(out))
"""


def test_tf32_and_bf16_paths_build_and_agree_within_their_tolerances(venv: Any) -> None:
    """On CUDA the plan times tf32 and bf16 too; their code runs here on the CPU: bf16 computes in bfloat16 (its
    error is far above float32's, within the bf16 tolerance), tf32 sets JAX's TF32 precision for its step only
    (XLA's CPU backend has no TF32: the result stays float32-exact here)."""
    out = _in_venv(venv, PRECISIONS_ON_CPU)
    for key in ("mlp_train/bf16", "cnn_train/bf16", "gemm/bf16"):
        rec = out[key]
        assert rec["built"] == "bf16" and rec["ok"], (key, rec)
        assert 1e-6 < rec["rel_err"] <= 5e-2, (key, rec)  # rounded in bfloat16, not float32
        assert any("bfloat16" in n for n in rec["notes"]), key
    assert out["gemm/bf16"]["dtype"] == "bfloat16"
    assert out["mlp_train/bf16"]["dtype"] == "float32"  # the loss is computed in float32
    for key in ("mlp_train/tf32", "cnn_train/tf32", "gemm/tf32"):
        rec = out[key]
        assert rec["built"] == "tf32" and rec["ok"] and rec["rel_err"] <= 1e-4, (key, rec)
        assert any("'tensorfloat32'" in n for n in rec["notes"]), key
    assert out["fp8"] is not None and out["fp8"]["looked_up"]


WITHOUT_GPU = r"""
import json, os
import numpy as np
import jax
import jaxlib.xla_client as xla_client
from frameworks.jax import adapter as A

out = {}
gpu = A.JaxAdapter("cuda:1")
out["env"] = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
# the options jax's CUDA plugin creates its client with (jax_plugins/xla_cuda12 calls this when the backend starts)
out["plugin_preallocate"] = xla_client.generate_pjrt_gpu_plugin_options().get("preallocate")
out["available"] = list(gpu.device_available())
out["info"] = gpu.device_info()
out["gpu_count"] = gpu.gpu_count()
try:
    gpu.dev
    out["dev"] = None
except RuntimeError as exc:
    out["dev"] = str(exc)

# all-reduce on cuda:1: the rank owns GPU 1 alone (local_device_ids), whatever happens next
seen = {}
def initialize(**kwargs):
    seen.update(kwargs)
    raise RuntimeError("stop after initialize")
jax.distributed.initialize, jax.distributed.shutdown = initialize, lambda: None
try:
    gpu.allreduce(1, 2, "127.0.0.1", 1234, np.ones(3, np.float32))
except RuntimeError:
    pass
out["initialize"] = {k: v for k, v in seen.items() if k in ("local_device_ids", "process_id", "num_processes")}

# peak memory on a CUDA device, with a stand-in for the jax.Device: known only when the workload raised the peak
class Device:
    device_kind, peak = "stand-in GPU", 100
    def memory_stats(self):
        return {"peak_bytes_in_use": Device.peak, "bytes_limit": 1000}
stand_in = A.JaxAdapter("cuda:0")
stand_in._dev = Device()
peak, notes = stand_in._peak_memory()
first = peak()
Device.peak = 250
out["peak"] = [first, peak(), bool(notes)]

# the CUDA/cuDNN versions as the plugin's _versions module reports them (a stand-in module here)
class Versions:
    __name__ = "stand_in._versions"
    cuda_runtime_get_version = staticmethod(lambda: 12080)
    cuda_driver_get_version = staticmethod(lambda: 12090)
    cudnn_get_version = staticmethod(lambda: 91000)
    cuda_runtime_build_version = staticmethod(lambda: 12080)
    def cudnn_build_version():
        raise RuntimeError("no cudnn")
    cudnn_build_version = staticmethod(cudnn_build_version)
    cuda_compute_capability = staticmethod(lambda i: 90 + i)
import jax._src.lib as lib
lib.cuda_versions = Versions
class GpuDevice:
    local_hardware_id = 0
out["cuda_info"] = stand_in._cuda_info(GpuDevice())
print(json.dumps(out))
"""


def test_cuda_logic_without_a_gpu(venv: Any, tmp_path: Any) -> None:
    """Asking for cuda:1 on this machine (no GPU): a one-line reason from device_available(), which device_info()
    respects (it reports no device, and raises nothing); preallocation is off in the options the CUDA plugin would
    start with; the all-reduce gives rank r's process its own GPU only; peak memory and the CUDA versions as the
    code reads them from stand-ins. The worker then stops with 'no device' and the reason, not a raw error."""
    out = _in_venv(venv, WITHOUT_GPU)
    assert out["env"] == "false" and out["plugin_preallocate"] is False
    available, reason = out["available"]
    assert available is False and "no gpu backend" in reason and "\n" not in reason
    info = out["info"]
    assert info["available"] is False and info["reason"] == reason and "name" not in info
    assert info["precision"]["jax_default_matmul_precision"] == "highest"
    assert info["memory"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert out["gpu_count"] == 0 and out["dev"] == reason
    assert out["initialize"] == {"local_device_ids": [1], "process_id": 1, "num_processes": 2}
    assert out["peak"] == [None, 250, True]
    cuda = out["cuda_info"]
    assert cuda["cuda_runtime"] == "12.8 (12080)" and cuda["cuda_driver"] == "12.9 (12090)"
    assert cuda["cudnn"] == "9.10.0 (91000)" and cuda["compute_capability"] == "9.0"
    assert cuda["cudnn_built_against"].startswith("unavailable (RuntimeError")

    (tmp_path / "plan.json").write_text(json.dumps({"probes": ["layers/dense"]}))
    proc = subprocess.run([*venv.argv, "-m", "harness.worker", "--adapter", "frameworks.jax.adapter:JaxAdapter",
                           "--device", "cuda:1", "--workdir", str(tmp_path), "--no-parent-watch"],
                          env={**os.environ, **venv.env}, cwd=str(REPO), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=300)
    from harness.protocol import EXIT_NO_DEVICE

    assert proc.returncode == EXIT_NO_DEVICE, proc.stderr[-2000:]
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["available"] is True and env["device_ok"] is False and env["device_error"] == reason
    assert env["environment"]["framework_device"]["available"] is False
