"""Theano end to end: the real suite in theano's own virtualenv (built from frameworks/theano/requirements-cpu.txt on
first use; a failure to build it fails these tests, it never skips them).

The facts asserted are the ones the suite observed for Theano 1.0.5 on Python 3.11, so a change in any of them shows
up here."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import numpy as np
import pytest

from harness import registry
from harness.catalog import ops
from harness.probes import SUITES
from harness.probes.layers import GRAD_RTOL
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("theano")

NATIVE = {"conv2d", "conv3d", "conv_transpose2d", "separable_conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "prelu",
          "hierarchical_softmax"}
OPTIMIZERS = {"sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw"}
SINGLE_OPS = ("gemm", "conv2d")
TRAINING = ("mlp_train", "cnn_train", "lstm_train", "resnet50_train", "transformer_train", "gru_lm_train", "vgg_mini_train")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("theano-results")
    req = RunRequest(registry.get("theano"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/", 1)[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def test_document_is_complete_and_valid(doc: dict[str, Any]) -> None:
    assert validate_document(doc) == []
    assert doc["complete"]
    assert doc["environment"]["framework_version"] == "1.0.5"
    assert not [k for k, r in doc["records"].items() if r["status"] in ("error", "crashed", "timeout", "unmapped")]


def test_theano_config_is_float32_with_a_private_compile_directory(doc: dict[str, Any]) -> None:
    device = doc["environment"]["framework_device"]
    config = device["theano_config"]
    assert config["floatX"] == "float32" and config["blas.ldflags"] == "" and config["cxx"].endswith("g++")
    assert device["compiledir_per_process"] is True and os.path.basename(config["base_compiledir"]).startswith("showdown-theano-")
    assert config["compiledir"].startswith(config["base_compiledir"])
    assert not os.path.exists(config["base_compiledir"])  # removed when the worker exited


def test_ops_are_ok_or_explained(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    assert len(layers) == 32
    not_ok = {op: r["status"] for op, r in layers.items() if r["status"] != "ok"}
    assert not_ok == {"ctc_loss": "unsupported"}
    kinds = {op: r["data"]["implementation"] for op, r in layers.items() if r["status"] == "ok"}
    assert {op for op, k in kinds.items() if k == "native"} == NATIVE
    assert {op for op, k in kinds.items() if k == "composed"} == set(kinds) - NATIVE
    assert OPTIMIZERS <= {op for op, k in kinds.items() if k == "composed"}  # theano ships no optimizers
    assert measured.ootb_ops(doc).value == 20.0  # 9 native + 22 composed at half a point


def test_every_parameter_gradient_is_checked_in_every_case(doc: dict[str, Any]) -> None:
    checked = 0
    for op, rec in _layers(doc).items():
        if rec["status"] != "ok":
            continue
        spec = ops.get(op)
        for label, case_rec in rec["data"]["cases"].items():
            assert case_rec["status"] == "ok", (op, label)
            case = spec.case(rec["data"]["variant"], label)
            if case.grad_wrt is None or spec.check is not None:
                continue
            backward = case_rec["backward"]
            assert backward["checked"] and backward["ok"], (op, label, backward.get("problem"))
            assert backward["wrt"] == list(case.wrt) and set(backward["gradients"]) == set(case.wrt), (op, label)
            assert backward["worst_rel_err"] <= GRAD_RTOL / 100, (op, label, backward["worst_rel_err"])
            checked += len(case.wrt)
    assert checked == 74  # the input and every parameter over the 22 ok ops with a gradient, padded cases too
    assert _layers(doc)["dropout"]["data"]["cases"]["default"]["forward"]["check"]["gradient_matches_mask"] is True


def test_theano_functions_and_conventions(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    assert layers["hierarchical_softmax"]["data"]["api"] == "theano.tensor.nnet.h_softmax"
    assert layers["hierarchical_softmax"]["data"]["variant"] is None  # the two-level softmax itself, not a variant
    assert layers["prelu"]["data"]["api"] == "theano.tensor.nnet.relu(x, alpha)"
    assert layers["avg_pool2d"]["data"]["convention"] == "count_include_pad"
    assert layers["gru"]["data"]["convention"] == "reset_after"
    for op in ("conv2d", "max_pool2d"):
        assert layers[op]["data"]["cases"]["padded"]["status"] == "ok", op
    assert "filter_flip=False" in layers["conv2d"]["data"]["note"]
    # theano casts batch norm's epsilon to float32 and refuses float32(1e-5) < 1e-5: the next float32 up is used
    assert "epsilon must be at least 1e-5" in layers["batch_norm"]["data"]["note"]


def test_scan_runs_its_python_loop_on_python_311(doc: dict[str, Any]) -> None:
    """theano.scan's compiled loop is Cython output that does not build on Python 3.11; the recurrences run
    Theano's own Python loop and still agree with the reference."""
    for op in ("simple_rnn", "lstm", "gru", "bidirectional_rnn"):
        rec = _layers(doc)[op]
        assert rec["status"] == "ok" and rec["data"]["api"].startswith("theano.scan"), op
        assert "Python loop" in rec["data"]["note"] and "longintrepr.h" in rec["data"]["note"], op


def test_ctc_needs_warp_ctc(doc: dict[str, Any]) -> None:
    rec = _layers(doc)["ctc_loss"]
    assert "warp-ctc" in rec["reason"] and "ctc.h: No such file or directory" in rec["reason"]
    assert rec["data"]["evidence"]["looked_up"][0].startswith("theano.tensor.nnet.ctc.ctc_available()")


def test_graphs_are_symbolic_as_theano_answers(doc: dict[str, Any]) -> None:
    """The Python `while` asks a symbolic comparison for its truth value, and Theano refuses: not define-by-run.
    theano.function compiles the static program once and reuses it for a new shape."""
    rec = doc["records"]["graphs/define_by_run"]
    assert rec["status"] == "failed"
    for inp in rec["data"]["inputs"]:
        assert "TypeError: Variables do not support boolean operations." in inp["problem"] and inp["reads"] == []
    compiled = doc["records"]["graphs/compiled"]
    assert compiled["status"] == "ok"
    assert compiled["data"]["working_paths"] == ["theano.function", "theano.function(mode='FAST_COMPILE')"]
    for path in compiled["data"]["paths"].values():
        assert path["new_shape"]["outcome"] == "reused" and path["new_shape"]["evidence"] == "trace count 1 -> 1"
    flow = doc["records"]["graphs/compiled_control_flow"]
    assert flow["status"] == "failed"
    assert {p["outcome"] for p in flow["data"]["paths"].values()} == {"rejected"}
    assert measured.graph_value(doc).value == 1


def test_no_eager_throughput_and_every_compiled_step_checked(doc: dict[str, Any]) -> None:
    for workload in (*SINGLE_OPS, *TRAINING):
        eager = doc["records"][f"throughput/{workload}/eager"]
        assert eager["status"] == "unsupported" and "no eager execution" in eager["reason"], workload
        assert eager["data"]["evidence"]["looked_up"]
        rec = doc["records"][f"throughput/{workload}/compiled"]
        assert rec["status"] == "ok", (workload, rec["reason"])
        data = rec["data"]
        assert data["compile_path"] == "theano.function" and data["graphs_captured"] == 1
        assert data["compile_scope"] == ("op" if workload in SINGLE_OPS else "step")
        assert data["param_count_matches"] and data["compile_s"] >= 0
        for step in data["first_step"]["steps"]:
            if workload in TRAINING:
                assert step["loss"]["rel_err"] <= 1e-5, (workload, step["loss"])
                assert all(p["within"] for p in step["parameters"].values()), workload
            else:
                assert step["output"]["rel_err"] <= 1e-5
    assert doc["records"]["throughput/resnet50_train/compiled"]["data"]["param_count"] == 25_557_032
    notes = " ".join(doc["records"]["throughput/transformer_train/compiled"]["data"]["notes"])
    assert "self_attention" in notes and "theano.scan" not in notes and "one theano.function" in notes


def test_numerics_is_theano_tensor_read_through_eval(doc: dict[str, Any]) -> None:
    cov = doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"].startswith("theano.tensor 1.0.5")
    functions = cov["data"]["functions"]
    assert cov["data"]["agrees"] == 33 and cov["data"]["total"] == 47
    # NumPy's names theano.tensor lacks (it has mul, sub, matrix_inverse... under other names)
    assert {k for k, v in functions.items() if v["outcome"] != "agrees"} >= {"elementwise/multiply", "linalg/linalg.inv"}
    interop = doc["records"]["numerics/interop"]["data"]
    assert interop["zero_copy_both_ways"] is False and interop["numpy_to_framework"]["detail"] == "no DLPack importer"


def test_onnx_and_scale_are_unsupported_with_evidence(doc: dict[str, Any]) -> None:
    for direction in ("export", "import"):
        for model in ("mlp", "cnn"):
            rec = doc["records"][f"onnx/{direction}/{model}"]
            assert rec["status"] == "unsupported" and f"no ONNX {direction}er" in rec["reason"]
            assert "theano.onnx" in rec["data"]["evidence"]["looked_up"]
    scale = doc["records"]["scale/allreduce"]
    assert scale["status"] == "unsupported" and "pygpu" in scale["reason"] and "no theano.distributed" in scale["reason"]
    assert any(x.startswith("pygpu.collectives") for x in scale["data"]["evidence"]["looked_up"])
    assert measured.scalability(doc).value == 0.0


# ---------------------------------------------------------------------------------------------- in theano's venv
@pytest.fixture(scope="module")
def venv() -> Any:
    return VenvRunner().prepare(registry.get("theano"), "cpu", lambda _msg: None)


def _in_venv(venv: Any, code: str, timeout: float = 600) -> Any:
    proc = subprocess.run([*venv.argv, "-c", code], env={**os.environ, **venv.env}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


FILTER_FLIP = r'''
import json
import numpy as np
from harness.catalog import ops
from harness.catalog import reference_nn as nn
from frameworks.theano.adapter import TheanoAdapter
ad = TheanoAdapter("cpu")
T, conv2d = ad.T, ad.nnet.conv2d
case = ops.get("conv2d").case()
x, w = case.arrays["x"], case.arrays["w"]
ref = nn.conv_nd(x, w, None, [2, 2], [0, 0], [1, 1])
xs, ws = T.tensor4("x"), T.tensor4("w")
out = {}
for flip in (True, False):
    y = ad.function([xs, ws], conv2d(xs, ws, subsample=(2, 2), filter_flip=flip))(x, w)
    out[str(flip)] = float(np.abs(y - ref).max())
print(json.dumps(out))
'''


def test_theano_convolves_unless_told_not_to_flip(venv: Any) -> None:
    """theano.tensor.nnet.conv2d flips its filters by default (a true convolution): against the catalog's
    cross-correlation it is off by O(1) unless filter_flip=False, which the adapter sets."""
    out = _in_venv(venv, FILTER_FLIP)
    assert out["True"] > 0.1 and out["False"] < 1e-5


ALL_KINDS = r'''
import json
import numpy as np
from harness.catalog import models as M, reference_models as R
from harness.catalog.workloads import LEARNING_RATE, PARAM_ROUNDING
from frameworks.theano.adapter import TheanoAdapter

def model(mid, input_kind, shape, target, classes, layers, vocab=0):
    b = M.Builder()
    for kind, inputs, attrs in layers:
        b.add(kind, *inputs, **attrs)
    return M.Model(mid, input_kind, shape, target, classes, tuple(b.nodes), vocab=vocab)

MODELS = [
    model("residual_bn", "image", (2, 3, 8, 8), "class", 4, [
        ("conv2d", (), dict(out=4, kernel=3, stride=1, padding=1, bias=True, name="c1")), ("batch_norm", (), dict(name="bn1")),
        ("relu", (), {}), ("conv2d", (), dict(out=4, kernel=3, stride=1, padding=1, name="c2")),
        ("add", ("relu1", "c2"), dict(name="res")), ("max_pool", (), dict(kernel=2, stride=2, padding=0)),
        ("global_avg_pool", (), {}), ("dense", (), dict(out=4, name="fc"))]),
    model("flat", "image", (2, 3, 6, 6), "class", 3, [
        ("conv2d", (), dict(out=2, kernel=3, stride=2, padding=1, name="c")), ("flatten", (), {}),
        ("dense", (), dict(out=3, bias=False, name="fc"))]),
    model("token_mix", "tokens", (3, 6), "class", 7, [
        ("embedding", (), dict(vocab=40, dim=8, name="emb")), ("positional", (), dict(name="pos")),
        ("self_attention", ("pos",), dict(heads=2, name="att")), ("add", ("pos", "att"), dict(name="res")),
        ("layer_norm", (), dict(name="ln")), ("gru", (), dict(hidden=6, name="g")),
        ("dense", (), dict(out=8, name="d")), ("gelu", (), {}), ("lstm_last", (), dict(hidden=5, name="l")),
        ("dense", (), dict(out=7, name="out"))], vocab=40),
    model("pooled_tokens", "tokens", (4, 5), "token", 3, [
        ("embedding", (), dict(vocab=20, dim=6, name="emb")), ("gru", (), dict(hidden=6, name="g")),
        ("dense", (), dict(out=3, name="fc"))], vocab=20),
    model("mean_pool", "tokens", (4, 5), "class", 3, [
        ("embedding", (), dict(vocab=20, dim=6, name="emb")), ("mean_tokens", (), {}), ("dense", (), dict(out=3, name="fc"))],
        vocab=20),
]
ad = TheanoAdapter("cpu")
out = {"kinds": sorted({n.kind for m in MODELS for n in m.nodes}), "models": {}}
for m in MODELS:
    arrays = M.model_params(m)
    params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
    w = ad.model_workload(m, arrays, "compiled")
    steps = []
    for _ in range(2):  # each reference step starts where theano left off
        ref = R.training_steps(m, params, {**params, "x": arrays["x"], "labels": arrays["labels"]}, LEARNING_RATE, 1)[0]
        got = w.observe(w.step())
        bad = []
        for name in params:
            update = np.linalg.norm(ref[name] - params[name])
            err = np.linalg.norm(got[name] - ref[name])
            if not (err <= 1e-3 * update + PARAM_ROUNDING * np.linalg.norm(ref[name]) or (update < 1e-12 and err < 1e-9)):
                bad.append(name)
        steps.append({"loss_rel": abs(float(got["loss"]) - ref["loss"]) / ref["loss"], "bad": bad})
        params = {k: np.asarray(got[k], np.float64) for k in params}
    out["models"][m.id] = {"steps": steps, "param_count": w.param_count, "expected": m.param_count(), "traces": w.traces()}
print(json.dumps(out))
'''


def test_catalog_models_of_every_kind(venv: Any) -> None:
    """model_workload on catalog models that are not workloads, covering every node kind: each compiled step agrees
    with the float64 reference, one theano.function per model."""
    from harness.catalog.models import NODE_KINDS

    out = _in_venv(venv, ALL_KINDS)
    assert out["kinds"] == sorted(NODE_KINDS)
    for key, rec in out["models"].items():
        assert rec["param_count"] == rec["expected"] and rec["traces"] == 1, key
        for index, step in enumerate(rec["steps"]):
            assert step["loss_rel"] <= 1e-5 and step["bad"] == [], (key, index, step)


# ---------------------------------------------------------------------------------------------- without theano
def test_flags_add_float32_and_a_fresh_compile_directory_only_where_unset() -> None:
    from frameworks.theano.adapter import theano_flags

    made: list[str] = []

    def make() -> str:
        made.append(f"/tmp/d{len(made)}")
        return made[-1]

    assert theano_flags("blas.ldflags=", make) == ("blas.ldflags=,floatX=float32,base_compiledir=/tmp/d0", "/tmp/d0")
    assert theano_flags("blas.ldflags=,floatX=float64,compiledir=/x", make) == ("blas.ldflags=,floatX=float64,compiledir=/x", None)
    assert theano_flags("", make) == ("floatX=float32,base_compiledir=/tmp/d1", "/tmp/d1")
    assert made == ["/tmp/d0", "/tmp/d1"]


def test_batch_norm_epsilon_is_the_smallest_float32_theano_accepts() -> None:
    from frameworks.theano.adapter import bn_epsilon

    eps = bn_epsilon(1e-5)
    assert float(np.float32(eps)) >= 1e-5 > float(np.float32(1e-5))  # what theano checks after casting to float32
    assert np.float32(eps) == np.nextafter(np.float32(1e-5), np.float32(1.0))  # and no larger than that
    assert bn_epsilon(1e-3) == float(np.float32(1e-3))  # a float32 already at least eps is kept
