"""JAX (Flax Linen + Optax) end to end: the real suite in jax's own virtualenv (built from
frameworks/jax/requirements-cpu.txt on first use; a failure to build it fails these tests, it never skips them).

The assertions are what the suite observed with the pinned releases, so a change in any of them fails here."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.probes import SUITES
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("jax")

COMPOSED = {"separable_conv2d", "global_avg_pool2d", "local_response_norm", "prelu", "hierarchical_softmax"}
WORKLOADS = ("gemm", "conv2d", "mlp_train", "cnn_train", "lstm_train")


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
    assert not [k for k, r in jax_doc["records"].items() if r["status"] in ("error", "crashed", "timeout")]


def test_every_op_ok_or_unsupported_with_reason(jax_doc: dict[str, Any]) -> None:
    for op, rec in _layers(jax_doc).items():
        assert rec["status"] in ("ok", "unsupported"), (op, rec["status"], rec["reason"])
        if rec["status"] == "unsupported":
            assert rec["reason"], op
        else:
            assert rec["data"]["implementation"] in ("native", "composed", "variant")


def test_all_32_ops_verified_with_five_composed(jax_doc: dict[str, Any]) -> None:
    layers = _layers(jax_doc)
    assert len(layers) == 32 and all(r["status"] == "ok" for r in layers.values())
    composed = {op for op, r in layers.items() if r["data"]["implementation"] == "composed"}
    assert composed == COMPOSED
    assert measured.ootb_ops(jax_doc).value == 32 - 0.5 * len(COMPOSED)
    assert "scalar slope" in layers["prelu"]["data"]["note"]  # flax.linen.PReLU has one slope, not one per channel
    assert layers["hierarchical_softmax"]["data"]["variant"] is None  # the op itself, composed, not adaptive softmax
    assert layers["lstm"]["data"]["api"] == "flax.linen.RNN(OptimizedLSTMCell)"
    assert layers["ctc_loss"]["data"]["api"] == "optax.ctc_loss"


def test_conventions_are_recorded(jax_doc: dict[str, Any]) -> None:
    conv = {op: r["data"].get("convention") for op, r in _layers(jax_doc).items()}
    assert conv["gru"] == "reset_after"
    assert conv["avg_pool2d"] == "count_include_pad"
    assert conv["adagrad"] == "eps_inside_sqrt" and conv["rmsprop"] == "eps_inside_sqrt"
    assert conv["adam"] == "eps_outside_sqrt" and conv["adamw"] == "eps_outside_sqrt"


def test_graph_value_is_dynamic_and_jit_rejects_python_control_flow(jax_doc: dict[str, Any]) -> None:
    assert measured.graph_value(jax_doc).value == 2
    recs = jax_doc["records"]
    assert recs["graphs/define_by_run"]["status"] == "ok"
    jit = recs["graphs/compiled"]["data"]["paths"]["jax.jit"]
    assert jit["ok"] and jit["compile_s"] > 0
    assert jit["new_shape"]["outcome"] == "recompiled" and jit["new_shape"]["evidence"] == "trace count 1 -> 2"
    cf = recs["graphs/compiled_control_flow"]
    assert cf["status"] == "failed"
    path = cf["data"]["paths"]["jax.jit"]
    assert path["outcome"] == "rejected" and "TracerBoolConversionError" in path["error"]


def test_onnx_export_and_import(jax_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        exp = jax_doc["records"][f"onnx/export/{model}"]
        assert exp["status"] == "ok", exp["reason"]
        assert exp["data"]["exporter"] == "jax2onnx.to_onnx" and not exp["data"]["builtin"]
        assert exp["data"]["max_abs_err"] <= 1e-4 and exp["data"]["checker"] == "passed"
        imp = jax_doc["records"][f"onnx/import/{model}"]
        assert imp["status"] == "ok", imp["reason"]
        assert imp["data"]["importer"] == "jaxonnxruntime" and not imp["data"]["builtin"]
        assert imp["data"]["opset"] == 17


def test_throughput_every_workload_eager_and_compiled(jax_doc: dict[str, Any]) -> None:
    for workload in WORKLOADS:
        for mode in ("eager", "compiled"):
            rec = jax_doc["records"][f"throughput/{workload}/{mode}"]
            assert rec["status"] == "ok", rec["reason"]
            data = rec["data"]
            t = data["timing"]
            assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
            assert data["param_count_matches"], data
            assert data["compile_path"] == ("jax.jit" if mode == "compiled" else None)
            if mode == "compiled":  # the whole jitted step compiles once, on the first call
                assert "XLA compilations during the second step: 0" in data["notes"], data["notes"]


def test_numerics_suite_ran(jax_doc: dict[str, Any]) -> None:
    cov = jax_doc["records"]["numerics/coverage"]
    assert cov["status"] == "ok" and cov["data"]["namespace"].startswith("jax.numpy")
    assert cov["data"]["agrees"] >= 44  # 47 of 47 agreed when this test was written
    assert jax_doc["records"]["numerics/interop"]["status"] == "ok"


def test_two_process_allreduce_through_jax_distributed(jax_doc: dict[str, Any]) -> None:
    rec = jax_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok" and rec["data"]["builtin"] is True, rec["reason"]
    assert rec["data"]["api"] == "jax.distributed + jax.shard_map(jax.lax.psum), gloo"
    assert measured.scalability(jax_doc).value == 2.0
