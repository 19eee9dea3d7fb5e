"""PaddlePaddle end to end: the real suite in Paddle's own virtualenv (built from
frameworks/paddle/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).

The assertions are the facts observed with paddlepaddle 3.3.1 on CPU, so a change in Paddle or in the adapter that
moves one of them fails here."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path
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

pytestmark = pytest.mark.framework("paddle")

SOT = "paddle.jit.to_static"
AST = "paddle.jit.to_static(full_graph=True)"


@pytest.fixture(scope="module")
def paddle_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("paddle-results")
    req = RunRequest(registry.get("paddle"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/")[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def test_document_is_complete_and_valid(paddle_doc: dict[str, Any]) -> None:
    assert validate_document(paddle_doc) == []
    assert paddle_doc["complete"]
    assert paddle_doc["environment"]["framework_version"] == "3.3.1"
    bad = {k: (r["status"], r["reason"]) for k, r in paddle_doc["records"].items()
           if r["status"] in ("error", "crashed", "timeout", "unmapped")}
    assert not bad


def test_every_op_is_verified(paddle_doc: dict[str, Any]) -> None:
    layers = _layers(paddle_doc)
    assert set(layers) == {op.id for op in OPS}
    # observed: all 32 run and agree in every case, forward and every gradient
    assert {k: (r["status"], r["reason"]) for k, r in layers.items() if r["status"] != "ok"} == {}
    score = measured.ootb_ops(paddle_doc).value
    assert score is not None and score == pytest.approx(31.0)


def test_only_separable_conv_is_composed(paddle_doc: dict[str, Any]) -> None:
    kinds = {k: r["data"].get("implementation") for k, r in _layers(paddle_doc).items()}
    assert sorted(k for k, v in kinds.items() if v != "native") == ["hierarchical_softmax", "separable_conv2d"]
    assert kinds["separable_conv2d"] == "composed" and kinds["hierarchical_softmax"] == "variant"


def test_every_case_of_every_op_ran(paddle_doc: dict[str, Any]) -> None:
    layers = _layers(paddle_doc)
    for op_id, rec in layers.items():
        cases = rec["data"]["cases"]
        assert list(cases) == OPS_BY_ID[op_id].case_labels(rec["data"]["variant"]), op_id
        assert all(c["status"] == "ok" for c in cases.values()), (op_id, cases)
    # the extra cases: zero padding 1 at stride 2, padded max pooling, and the optimizer settings that tell
    # conventions apart (Adagrad's initial_accumulator_value, Adadelta's learning_rate): none unsupported
    assert set(layers["conv2d"]["data"]["cases"]) == {"default", "padded"}
    assert set(layers["max_pool2d"]["data"]["cases"]) == {"default", "padded"}
    assert set(layers["adagrad"]["data"]["cases"]) == {"default", "accumulator"}
    assert set(layers["adadelta"]["data"]["cases"]) == {"default", "learning_rate"}


def test_every_parameter_gradient_checked(paddle_doc: dict[str, Any]) -> None:
    """The gradient of the input and of every trainable parameter, in every case, within the probe's tolerance over
    its random directions (dropout is judged by its mask; optimizers by their updates)."""
    checked = 0
    for op_id, rec in _layers(paddle_doc).items():
        spec = OPS_BY_ID[op_id]
        variant = rec["data"]["variant"]
        assert rec["data"]["grad_rtol"] == GRAD_RTOL and rec["data"]["grad_directions"] == GRAD_DIRECTIONS
        for label, case_rec in rec["data"]["cases"].items():
            case = spec.case(variant, label)
            if not case.wrt:
                continue
            if spec.check is not None and variant is None:  # dropout: the kept mask scaled by 1 / (1 - p)
                assert case_rec["forward"]["check"]["gradient_matches_mask"] is True
                continue
            backward = case_rec["backward"]
            assert backward["checked"] and backward["ok"], (op_id, label, backward.get("problem"))
            assert backward["wrt"] == list(case.wrt), (op_id, label)
            assert set(backward["gradients"]) == set(case.wrt), (op_id, label)
            assert all(g["ok"] and len(g["framework"]) == GRAD_DIRECTIONS for g in backward["gradients"].values())
            checked += len(case.wrt)
    assert checked >= 75  # 75 arrays in the catalog's cases (with the adaptive-softmax variant) when written


def test_parameters_held_in_another_layout_map_back(paddle_doc: dict[str, Any]) -> None:
    """Paddle keeps RNN weights (out, in) with its own gate blocks, HSigmoid biases (nodes, 1), and the adaptive
    softmax's tail weights outside its parameters: their gradients are mapped back to the catalog's layout, and agree
    to float32 precision (a transposed or gate-shuffled gradient would be off by far more)."""
    layers = _layers(paddle_doc)
    expected = {
        "simple_rnn": {"x", "wx", "wh", "b"},
        "lstm": {"x", "wx", "wh", "b"},
        "gru": {"x", "wx", "wh", "bx", "bh"},
        "bidirectional_rnn": {"x", "wx_fw", "wh_fw", "b_fw", "wx_bw", "wh_bw", "b_bw"},
        "multi_head_attention": {"q", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"},
        "hierarchical_softmax": {"x", "w_head", "b_head", "w_proj", "w_tail"},
        "prelu": {"x", "alpha"},
        "batch_norm": {"x", "gamma", "beta"},
        "separable_conv2d": {"x", "w_depthwise", "w_pointwise", "b"},
    }
    for op_id, names in expected.items():
        grads = layers[op_id]["data"]["backward"]["gradients"]
        assert set(grads) == names, op_id
        for name, g in grads.items():
            if op_id == "multi_head_attention" and name == "bk":
                continue  # truly zero under softmax: judged against the floor, its relative error is noise
            assert g["rel_err"] < 1e-5, (op_id, name, g["rel_err"])
    assert set(layers["conv2d"]["data"]["cases"]["padded"]["backward"]["gradients"]) == {"x", "w", "b"}


def test_conventions_are_recorded(paddle_doc: dict[str, Any]) -> None:
    conv = {k: r["data"].get("convention") for k, r in _layers(paddle_doc).items()}
    assert conv["avg_pool2d"] == "count_exclude_pad"  # AvgPool2D's default exclusive=True
    assert conv["gru"] == "reset_after"
    assert conv["adagrad"] == "eps_outside_sqrt"  # in both cases, the one with initial_accumulator_value=0.1 too
    assert conv["adadelta"] == "lr_scales_step"  # the unscaled delta is accumulated; lr scales the applied step
    assert conv["rmsprop"] == "eps_inside_sqrt"
    assert conv["adam"] == "eps_outside_sqrt" and conv["adamw"] == "eps_outside_sqrt"


def test_hierarchical_softmax_tries_both_variants(paddle_doc: dict[str, Any]) -> None:
    """HSigmoidLoss is tried first as the hierarchical_sigmoid variant. On the catalog's unbalanced tree its loss
    carries softplus(0) = log 2 for every padded path position (the deepest path has 4 nodes, the shallowest target
    2), so it fails by exactly 2 log 2; AdaptiveLogSoftmaxWithLoss then passes as the adaptive_softmax variant."""
    rec = _layers(paddle_doc)["hierarchical_softmax"]
    assert rec["status"] == "ok" and rec["data"]["variant"] == "adaptive_softmax" and rec["data"]["points"] == 0.5
    first, second = rec["data"]["attempts"]
    assert first["variant"] == "hierarchical_sigmoid" and first["status"] == "failed"
    err = float(first["reason"].split("max abs error ")[1].split()[0])
    assert err == pytest.approx(2 * math.log(2), abs=0.01)
    assert second["variant"] == "adaptive_softmax" and second["status"] == "ok"


def test_ctc_attention_and_rnns_are_native(paddle_doc: dict[str, Any]) -> None:
    layers = _layers(paddle_doc)
    for op_id in ("ctc_loss", "multi_head_attention", "lstm", "gru", "bidirectional_rnn", "local_response_norm"):
        assert layers[op_id]["status"] == "ok" and layers[op_id]["data"]["implementation"] == "native", op_id
        assert layers[op_id]["data"]["backward"]["ok"], op_id


def test_define_by_run_reads_concrete_numbers(paddle_doc: dict[str, Any]) -> None:
    rec = paddle_doc["records"]["graphs/define_by_run"]
    assert rec["status"] == "ok", rec["reason"]
    assert measured.graph_value(paddle_doc).value == 2
    for inp in rec["data"]["inputs"]:
        # dygraph runs the Python on every call and Tensor.item() reads a concrete number mid-way
        assert inp["ok"] and inp["executions_per_call"] == [1, 1], inp
        assert all(isinstance(r, float) and abs(r - inp["expected_read"]) <= 1e-5 * max(1.0, abs(inp["expected_read"]))
                   for r in inp["reads"]), inp


def test_both_compile_paths_compile(paddle_doc: dict[str, Any]) -> None:
    paths = paddle_doc["records"]["graphs/compiled"]["data"]["paths"]
    for path in (SOT, AST):
        assert paths[path]["ok"] and paths[path]["compile_s"] > 0, path
        assert paths[path]["new_shape"]["outcome"] == "recompiled", path
        assert paths[path]["new_shape"]["evidence"].startswith("trace count"), path


def test_control_flow_sot_takes_it_ast_fails_on_the_gradient(paddle_doc: dict[str, Any]) -> None:
    rec = paddle_doc["records"]["graphs/compiled_control_flow"]
    assert rec["status"] == "ok"
    paths = rec["data"]["paths"]
    assert paths[SOT]["outcome"] == "handled"
    # the AST transcriber converts the while/if and gets the value; the backward through its while_loop fails
    assert paths[AST]["outcome"] == "rejected" and "the gradient failed" in paths[AST]["error"]


def test_onnx_export_runs_paddle2onnx(paddle_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = paddle_doc["records"][f"onnx/export/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["max_abs_err"] <= 1e-4 and data["checker"] == "passed"
        assert data["exporter"] == "paddle.onnx.export (paddle2onnx)"
        assert data["opsets"]["ai.onnx"] == 17
        # the harness's verdict: paddle.onnx.export hands the program to paddle2onnx, which paddlepaddle does not
        # require, and paddle2onnx runs polygraphy and onnx-graphsurgeon
        assert data["builtin"] is False
        assert {"paddle2onnx", "polygraphy", "onnx-graphsurgeon"} <= set(data["provenance"]["outside_the_framework"])
        assert {"paddlepaddle", "paddle2onnx"} <= set(data["provenance"]["code_ran_from"])


def test_onnx_import_runs_x2paddle_in_process(paddle_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        rec = paddle_doc["records"][f"onnx/import/{model}"]
        assert rec["status"] == "ok", rec["reason"]
        data = rec["data"]
        assert data["importer"] == "x2paddle"
        assert data["opset"] == 17 and data["max_abs_err"] <= 1e-4
        # x2paddle converts in this process (under paddle.utils.unique_name.guard), so the harness sees it run
        assert data["builtin"] is False
        assert "x2paddle" in data["provenance"]["outside_the_framework"]
        assert "paddlepaddle" in data["provenance"]["code_ran_from"]


def _problems(step: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The parameters a failed check names in its problem text: name -> (error, allowed)."""
    found = re.findall(r"parameter (\S+) after the update: error (\S+) > (\S+) ", step.get("problem", ""))
    return {name: (float(err), float(allowed)) for name, err, allowed in found}


@pytest.mark.parametrize("workload", [w.id for w in WORKLOADS])
def test_throughput_steps_checked_and_timed(paddle_doc: dict[str, Any], workload: str) -> None:
    """Every workload eager and compiled: both checked steps agree with the float64 reference, the parameter count is
    the catalog's, and a compiled step states its scope and captured one graph (SOT breaks at Tensor.backward and
    Optimizer.step: forward and loss are one static program whose backward is a static program too, so the loss's
    autograd graph is Dy2StGradNode and the parameters' accumulation nodes only; the update is eager)."""
    spec = WORKLOADS_BY_ID[workload]
    for mode in ("eager", "compiled"):
        rec = paddle_doc["records"][f"throughput/{workload}/{mode}"]
        data = rec["data"]
        if spec.kind == "train":
            assert data["param_count"] == spec.param_count("cpu"), data
        checks = data["first_step"]
        assert rec["status"] == "ok", rec["reason"]
        t = data["timing"]
        assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
        assert data["param_count_matches"], data
        assert data["peak_memory_bytes"] is None  # the CPU
        assert checks["checked"] and checks["ok"]
        assert [s["step"] for s in checks["steps"]] == list(range(1, CHECKED_STEPS + 1))
        for step in checks["steps"]:
            if spec.kind == "train":
                assert step["loss"]["rel_err"] <= LOSS_RTOL
                assert set(step["parameters"]) == set(spec.parameters("cpu"))
                assert all(p["within"] for p in step["parameters"].values()), step["parameters"]
            else:
                assert step["output"]["rel_err"] <= OUTPUT_RTOL
        assert data["precision"] == "fp32"
        if mode == "eager":
            assert data["compile_path"] is None and data["compile_scope"] is None
            continue
        assert data["compile_path"].startswith(SOT)
        if rec["status"] == "ok":
            assert data["graphs_captured"] == 1  # SOT's compile cache: one static subgraph for this workload
        if spec.kind == "op":
            assert data["compile_scope"] == "op"
            continue
        assert data["compile_scope"] == "forward_backward"
        seen = [n for n in data["notes"] if n.startswith("checked after each checked step")]
        assert len(seen) == 1 and "SOT captured 1 static subgraph(s)" in seen[0], data["notes"]
        assert "['Dy2StGradNode', 'GradNodeAccumulation']" in seen[0], seen
        assert "pd_op.cross_entropy_with_softmax" in seen[0] and "sgd" not in seen[0]
        if any(n.kind in ("lstm_last", "gru") for n in spec.model("cpu").nodes):
            assert "pd_op.rnn" in seen[0]  # Paddle's fused recurrent kernel, captured in the program
    if workload == "lstm_train":
        notes = paddle_doc["records"]["throughput/lstm_train/eager"]["data"]["notes"]
        assert any("paddle.nn.LSTM" in note and "SIGSEGV" in note and "not counted" in note for note in notes), notes


def test_strict_float32_switches_are_recorded(paddle_doc: dict[str, Any]) -> None:
    """The CPU build has Paddle's TF32 switches too (inert without CUDA): the adapter turns both off; oneDNN's float32
    math mode is strict and the allocator grows on demand."""
    info = paddle_doc["environment"]["framework_device"]
    precision = info["precision"]
    assert precision["build"] == "paddle 3.3.1, CPU only (no CUDA: no TF32 anywhere)"
    assert precision["paddle.base.core.set_cublas_switch (cuBLAS TF32)"] is False
    assert precision["paddle.base.core.set_cudnn_switch (cuDNN TF32)"] is False
    assert precision["ONEDNN_DEFAULT_FPMATH_MODE"] == "STRICT"
    assert precision["FLAGS_allocator_strategy"] == "auto_growth"
    assert precision["FLAGS_use_onednn"] is False
    assert "cuDNN RNN (paddle.nn.LSTM / GRU)" not in precision  # a CUDA-build caveat
    assert info["device"] == "cpu" and info["paddle_place"] == "cpu" and info["compiled_with_cuda"] is False
    assert "name" not in info and "cuda" not in info  # no GPU described on the CPU
    assert paddle_doc["environment"]["versions"]["paddle_running"] == "3.3.1 (CPU build)"


def test_device_strings_map_to_paddle_places_and_rank_environments() -> None:
    from frameworks.paddle.adapter import paddle_place, rank_environment

    assert paddle_place("cpu") == "cpu"
    assert paddle_place("cuda") == "gpu:0"
    assert paddle_place("cuda:0") == "gpu:0" and paddle_place("cuda:3") == "gpu:3"
    for bad in ("gpu:1", "cuda:x", "tpu", "cuda:-1"):
        with pytest.raises(ValueError):
            paddle_place(bad)
    # each rank joins the group through the master endpoint and uses its own GPU (FLAGS_selected_gpus)
    for rank in (0, 1):
        env = rank_environment(rank, 2, "127.0.0.1", 6100, paddle_place(f"cuda:{rank}"))
        assert env["PADDLE_DISTRI_BACKEND"] == "nccl" and env["FLAGS_selected_gpus"] == str(rank)
        assert env["PADDLE_TRAINER_ID"] == str(rank) and env["PADDLE_TRAINERS_NUM"] == "2"
        assert env["PADDLE_MASTER"] == "127.0.0.1:6100" and env["MASTER_PORT"] == "6100"
        assert env["PADDLE_CURRENT_ENDPOINT"] == f"127.0.0.1:{6100 + rank}"
    cpu = rank_environment(1, 2, "127.0.0.1", 6100, "cpu")
    assert cpu["PADDLE_DISTRI_BACKEND"] == "gloo" and "FLAGS_selected_gpus" not in cpu


def test_adapter_source_names_no_workload() -> None:
    """model_workload builds from node kinds only: the adapter names no workload or catalog model."""
    from harness.catalog.workloads import MODELS

    source = (Path(__file__).parent.parent / "frameworks" / "paddle" / "adapter.py").read_text()
    model_ids = {spec().id for sizes in MODELS.values() for spec in sizes.values()}
    names = set(MODELS) | model_ids | {"_train_model"}
    assert len(names) >= 11 and not [n for n in names if n in source]


def test_numerics_suite_ran_on_paddles_own_namespace(paddle_doc: dict[str, Any]) -> None:
    cov = paddle_doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"] == "paddle"  # Paddle's tensors, not NumPy
    assert cov["data"]["agrees"] >= 38  # 41 of 47 agreed when this test was written
    interop = paddle_doc["records"]["numerics/interop"]
    assert interop["status"] == "ok" and interop["data"]["zero_copy_both_ways"] is True


def test_scale_allreduce_runs_through_paddle_distributed_gloo(paddle_doc: dict[str, Any]) -> None:
    rec = paddle_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok", rec["reason"]
    assert rec["data"]["builtin"] is True
    assert rec["data"]["api"] == "paddle.distributed.all_reduce (gloo)"


# ---------------------------------------------------------------------------------------------- in paddle's venv
@pytest.fixture(scope="module")
def venv() -> Any:
    return VenvRunner().prepare(registry.get("paddle"), "cpu", lambda _msg: None)


def _in_venv(venv: Any, code: str, timeout: float = 600) -> Any:
    """Run `code` with paddle's interpreter; it prints its result as JSON on its last line."""
    proc = subprocess.run([*venv.argv, "-c", code], env={**os.environ, **venv.env}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


NEW_MODELS = r'''
import json
import numpy as np
from harness.catalog import models as M, reference_models as R
from harness.catalog.workloads import LEARNING_RATE, PARAM_ROUNDING
from frameworks.paddle.adapter import PaddleAdapter

def model(mid, input_kind, shape, target, classes, layers, vocab=0):
    b = M.Builder()
    for kind, inputs, attrs in layers:
        b.add(kind, *inputs, **attrs)
    return M.Model(mid, input_kind, shape, target, classes, tuple(b.nodes), vocab=vocab)

MODELS = [
    # a residual block with batch normalisation over enough values per channel (6 x 36) for float32 to resolve
    model("bn_residual", "image", (6, 2, 6, 6), "class", 4, [
        ("conv2d", (), dict(out=5, kernel=3, stride=1, padding=1, name="a")), ("batch_norm", (), dict(name="an")),
        ("relu", (), dict(name="ar")), ("conv2d", (), dict(out=5, kernel=3, stride=1, padding=1, name="b")),
        ("batch_norm", (), dict(name="bn")), ("add", ("ar", "bn"), dict(name="sum")), ("relu", (), {}),
        ("max_pool", (), dict(kernel=3, stride=2, padding=1)), ("global_avg_pool", (), {}),
        ("dense", (), dict(out=4, name="fc"))]),
    model("strided_flatten", "image", (3, 3, 7, 7), "class", 5, [
        ("conv2d", (), dict(out=4, kernel=3, stride=2, padding=1, bias=True, name="c")), ("gelu", (), {}),
        ("flatten", (), {}), ("dense", (), dict(out=5, bias=False, name="fc"))]),
    model("mixed_sequence", "tokens", (3, 7), "class", 6, [
        ("embedding", (), dict(vocab=31, dim=8, name="emb")), ("positional", (), dict(name="pos")),
        ("self_attention", ("pos",), dict(heads=2, name="att")), ("add", ("pos", "att"), dict(name="res")),
        ("layer_norm", (), dict(name="ln")), ("gru", (), dict(hidden=6, name="g")),
        ("dense", (), dict(out=5, name="d")), ("relu", (), {}), ("lstm_last", (), dict(hidden=4, name="l")),
        ("dense", (), dict(out=6, name="out"))], vocab=31),
    model("per_token", "sequence", (2, 5, 3), "token", 9, [
        ("gru", (), dict(hidden=7, name="g")), ("layer_norm", (), dict(name="ln")), ("mean_tokens", ("g",), {}),
        ("dense", ("ln",), dict(out=9, name="head"))]),
]
adapter = PaddleAdapter("cpu")
out = {"kinds": sorted({n.kind for m in MODELS for n in m.nodes}), "models": {}}
for m in MODELS:
    arrays = M.model_params(m)
    params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
    refs = R.training_steps(m, params, arrays, LEARNING_RATE, 3)
    for mode in ("eager", "compiled"):
        w = adapter.model_workload(m, arrays, mode)
        steps = []
        for ref in refs:
            got = w.observe(w.step())
            bad, floored = [], []
            for name in params:
                update = np.linalg.norm(ref[name] - params[name])
                err = np.linalg.norm(got[name] - ref[name])
                if err <= 1e-3 * update + PARAM_ROUNDING * np.linalg.norm(ref[name]):
                    continue
                (floored if update < 1e-12 and err < 1e-9 else bad).append(name)
            steps.append({"loss_rel": abs(float(got["loss"]) - ref["loss"]) / ref["loss"], "bad": bad,
                          "floored": floored})
        out["models"][f"{m.id}/{mode}"] = {
            "steps": steps, "param_count": w.param_count, "expected": m.param_count(), "traces": w.traces(),
            "scope": w.compile_scope, "peak": w.peak_memory(), "precision": w.precision,
            "arrays_untouched": all(np.array_equal(arrays[k], v) for k, v in M.model_params(m).items())}
print(json.dumps(out))
'''


def test_new_catalog_models_of_every_kind(venv: Any) -> None:
    """model_workload on catalog models that are no workload, using all 16 node kinds in other arrangements (an
    unused node output, per-token targets from float sequences, a dense layer without bias, a strided biased
    convolution, padded pooling): three steps eager and compiled agree with the float64 reference. The only
    exception is the attention key bias, whose exact gradient is zero (float32 leaves rounding noise of lr x 1e-8)."""
    from harness.catalog.models import NODE_KINDS

    out = _in_venv(venv, NEW_MODELS)
    assert out["kinds"] == sorted(NODE_KINDS)
    for key, rec in out["models"].items():
        model_id, mode = key.split("/")
        assert rec["param_count"] == rec["expected"], key
        assert rec["arrays_untouched"], key
        assert rec["peak"] is None and rec["precision"] == "fp32", key
        assert (rec["traces"], rec["scope"]) == ((1, "forward_backward") if mode == "compiled" else (None, None)), key
        for index, step in enumerate(rec["steps"]):
            assert step["loss_rel"] <= 1e-5, (key, index, step)
            assert step["bad"] == [], (key, index, step)
            assert step["floored"] == (["att.bk"] if model_id == "mixed_sequence" else []), (key, index, step)


WITHOUT_GPU = r'''
import json, os
import numpy as np
from harness.adapter import Unsupported
from harness.catalog.workloads import WORKLOADS_BY_ID
from frameworks.paddle.adapter import PaddleAdapter

out = {}
gpu = PaddleAdapter("cuda:1")
import paddle
out["available"] = list(gpu.device_available())
out["gpu_count"] = gpu.gpu_count()
out["info"] = gpu.device_info()
out["allocator"] = [os.environ.get("FLAGS_allocator_strategy"), paddle.get_flags(["FLAGS_allocator_strategy"])]
try:
    PaddleAdapter("tpu:0")
    out["bad_device"] = None
except ValueError as exc:
    out["bad_device"] = str(exc)
cpu = PaddleAdapter("cpu")
out["precisions"] = {}
for wid, precision in (("mlp_train", "tf32"), ("mlp_train", "bf16"), ("gemm", "bf16")):
    spec = WORKLOADS_BY_ID[wid]
    try:
        if spec.kind == "train":
            cpu.model_workload(spec.model("cpu"), spec.arrays("cpu"), "eager", precision)
        else:
            cpu.workload(spec, spec.arrays("cpu"), "eager", precision)
        out["precisions"][f"{wid}/{precision}"] = None
    except Unsupported as exc:
        out["precisions"][f"{wid}/{precision}"] = {"reason": str(exc), "looked_up": exc.looked_up}
print(json.dumps(out))
'''


def test_cuda_logic_without_a_gpu(venv: Any) -> None:
    """In the CPU build: asking for cuda:1 gives a one-line reason, not an error, and device_info describes that
    device only; the allocator grows on demand (no preallocation); tf32 and bf16 are unsupported on the CPU with
    the evidence (auto_cast leaves a matmul in float32 there, and warns that it has no effect)."""
    out = _in_venv(venv, WITHOUT_GPU)
    ok, why = out["available"]
    assert ok is False and why == "paddle 3.3.1 is a CPU build (paddle.device.is_compiled_with_cuda() is False)"
    assert out["gpu_count"] == 0
    info = out["info"]
    assert info["device"] == "cuda:1" and info["paddle_place"] == "gpu:1" and info["unavailable"] == why
    assert info["precision"]["paddle.base.core.set_cublas_switch (cuBLAS TF32)"] is False
    assert out["allocator"] == ["auto_growth", {"FLAGS_allocator_strategy": "auto_growth"}]
    assert out["bad_device"] is not None and "tpu:0" in out["bad_device"]
    tf32 = out["precisions"]["mlp_train/tf32"]
    assert tf32["reason"] == "paddle 3.3.1 is a CPU build: TF32 is a CUDA tensor-core mode"
    assert tf32["looked_up"] == ["paddle.device.is_compiled_with_cuda()"]
    for key in ("mlp_train/bf16", "gemm/bf16"):
        bf16 = out["precisions"][key]
        assert bf16["reason"].startswith("paddle.amp.auto_cast(dtype='bfloat16') has no effect on cpu"), bf16
        assert "paddle.float32" in bf16["reason"] and bf16["looked_up"]
