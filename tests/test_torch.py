"""PyTorch end to end: the real suite in torch's own virtualenv (built from frameworks/torch/requirements-cpu.txt
on first use; in CI a failure to build it fails these tests, it never skips them)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.probes import SUITES
from harness.results import validate_document
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner
from harness.scoring import measured

pytestmark = pytest.mark.framework("torch")


@pytest.fixture(scope="module")
def torch_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("torch-results")
    req = RunRequest(registry.get("torch"), "cpu", list(SUITES), out, VenvRunner(), quick=True)
    return execute(req).document


def test_document_is_complete_and_valid(torch_doc: dict[str, Any]) -> None:
    assert validate_document(torch_doc) == []
    assert torch_doc["complete"]
    assert torch_doc["environment"]["framework_version"].startswith("2.")
    assert not [r for r in torch_doc["records"].values() if r["status"] in ("error", "crashed", "timeout")]


def test_at_least_30_ops_verified(torch_doc: dict[str, Any]) -> None:
    ok = [r for k, r in torch_doc["records"].items() if k.startswith("layers/") and r["status"] == "ok"]
    assert len(ok) >= 30
    assert measured.ootb_ops(torch_doc).value is not None and measured.ootb_ops(torch_doc).value >= 30


def test_hierarchical_softmax_is_not_claimed_native(torch_doc: dict[str, Any]) -> None:
    rec = torch_doc["records"]["layers/hierarchical_softmax"]
    assert rec["data"].get("implementation") != "native"
    if rec["status"] == "ok":
        assert rec["data"]["variant"] == "adaptive_softmax" and rec["data"]["points"] == 0.5


def test_conventions_are_recorded(torch_doc: dict[str, Any]) -> None:
    conv = {k.split("/")[1]: r["data"].get("convention") for k, r in torch_doc["records"].items() if k.startswith("layers/")}
    assert conv["gru"] == "reset_after"
    assert conv["adam"] == "eps_outside_sqrt" and conv["avg_pool2d"] == "count_include_pad"


def test_graph_value_is_dynamic(torch_doc: dict[str, Any]) -> None:
    assert measured.graph_value(torch_doc).value == 2
    compiled = torch_doc["records"]["graphs/compiled"]["data"]["paths"]["torch.compile"]
    assert compiled["ok"] and compiled["compile_s"] > 0
    assert compiled["new_shape"]["outcome"] in ("recompiled", "reused")


def test_onnx_round_trips(torch_doc: dict[str, Any]) -> None:
    for model in ("mlp", "cnn"):
        exp = torch_doc["records"][f"onnx/export/{model}"]
        assert exp["status"] == "ok" and exp["data"]["max_abs_err"] <= 1e-4 and exp["data"]["builtin"]
        imp = torch_doc["records"][f"onnx/import/{model}"]
        assert imp["status"] == "ok" and imp["data"]["importer"] == "onnx2torch" and not imp["data"]["builtin"]


def test_throughput_every_workload_eager_and_compiled(torch_doc: dict[str, Any]) -> None:
    for workload in ("gemm", "conv2d", "mlp_train", "cnn_train", "lstm_train"):
        for mode in ("eager", "compiled"):
            rec = torch_doc["records"][f"throughput/{workload}/{mode}"]
            assert rec["status"] == "ok", rec["reason"]
            t = rec["data"]["timing"]
            assert len(t["samples_s"]) >= 5 and t["median_s"] > 0
            assert rec["data"]["param_count_matches"], rec["data"]


def test_numerics_measures_the_numpy_sample_and_dlpack(torch_doc: dict[str, Any]) -> None:
    cov = torch_doc["records"]["numerics/coverage"]["data"]
    assert cov["namespace"] == "torch" and cov["total"] >= 40
    assert cov["functions"]["reductions/std"]["outcome"] == "disagrees"  # torch.std is unbiased by default
    assert cov["functions"]["linalg/linalg.inv"]["outcome"] == "agrees"
    assert torch_doc["records"]["numerics/interop"]["data"]["zero_copy_both_ways"] is True


def test_two_process_allreduce_through_torch_distributed(torch_doc: dict[str, Any]) -> None:
    rec = torch_doc["records"]["scale/allreduce"]
    assert rec["status"] == "ok" and rec["data"]["builtin"] is True
    assert rec["data"]["api"].startswith("torch.distributed.all_reduce")
    assert measured.scalability(torch_doc).value == 2.0
