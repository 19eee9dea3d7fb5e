"""The probes' own judgement, run in-process on NumPy doubles (no worker, no framework)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.adapter import OpImpl
from harness.catalog.ops import Case
from harness.probes import Context, graphs, layers, numerics, plan, scale
from harness.results import Status
from tests.fakes.adapters import NumpyAdapter


def ctx(tmp_path: Path) -> Context:
    return Context(device="cpu", scratch=tmp_path)


class WrongGradient(NumpyAdapter):
    def op_dense(self) -> OpImpl:
        def run(c: Case) -> dict[str, Any]:
            x, w, b = (c.arrays[k].astype(np.float64) for k in ("x", "w", "b"))
            dy = c.cotangents["y"]
            return {"y": x @ w + b, "grads": {"x": 1.01 * (dy @ w.T), "w": x.T @ dy, "b": dy.sum(0)}}  # 1% off

        return OpImpl("native", "numpy", run)


class WrongConvention(NumpyAdapter):
    def op_sgd(self) -> OpImpl:
        def run(c: Case) -> dict[str, Any]:
            w = c.arrays["w"].astype(np.float64)
            return {"w": np.stack([w - 0.2 * g for g in c.arrays["grads"]])}  # not cumulative: wrong

        return OpImpl("native", "numpy", run)


class BadVariant(NumpyAdapter):
    def op_hierarchical_softmax(self) -> OpImpl:
        return OpImpl("variant", "made up", lambda c: {}, variant="binary_tree")


def test_plan_covers_every_suite() -> None:
    ids = plan(["layers", "graphs", "throughput", "onnx"])
    assert len([i for i in ids if i.startswith("layers/")]) == 32
    assert "throughput/mlp_train/compiled" in ids and "onnx/import/cnn" in ids
    assert len(ids) == len(set(ids))


def test_correct_op_passes_forward_and_backward(tmp_path: Path) -> None:
    out = layers.run(NumpyAdapter("cpu"), "dense", ctx(tmp_path))
    assert out.status is Status.OK
    grads = out.data["backward"]["gradients"]
    assert out.data["backward"]["ok"] and set(grads) == {"x", "w", "b"}
    assert all(len(g["framework"]) == layers.GRAD_DIRECTIONS == 8 for g in grads.values())
    assert out.data["points"] == 1.0


def test_a_one_percent_gradient_error_is_caught(tmp_path: Path) -> None:
    out = layers.run(WrongGradient("cpu"), "dense", ctx(tmp_path))
    assert out.status is Status.FAILED and "gradient w.r.t. x" in out.reason
    assert out.data["points"] == 0.0


def test_wrong_optimizer_fails_against_every_convention(tmp_path: Path) -> None:
    out = layers.run(WrongConvention("cpu"), "sgd", ctx(tmp_path))
    assert out.status is Status.FAILED and "forward output w" in out.reason


def test_unknown_variant_is_an_error(tmp_path: Path) -> None:
    out = layers.run(BadVariant("cpu"), "hierarchical_softmax", ctx(tmp_path))
    assert out.status is Status.ERROR and "binary_tree" in out.reason


def test_define_by_run_checks_both_paths(tmp_path: Path) -> None:
    out = graphs.run(NumpyAdapter("cpu"), "define_by_run", ctx(tmp_path))
    assert out.status is Status.OK and [i["input"] for i in out.data["inputs"]] == ["positive-sum path", "negative-sum path"]


class TorchLikeNamespace:
    """NumPy, but with two classic differences: std defaults to the unbiased estimator, and no expand_dims."""

    __name__ = "torchlike"

    def __getattr__(self, name: str) -> Any:
        if name == "expand_dims":
            raise AttributeError(name)
        if name == "std":
            return lambda a, **kw: np.std(a, ddof=1, **kw)
        return getattr(np, name)


class TorchLike(NumpyAdapter):
    def array_api(self) -> Any:
        from harness.adapter import ArrayAPI
        from tests.fakes.adapters import FakeArray

        return ArrayAPI("torch-like", TorchLikeNamespace(), FakeArray, np.asarray, None)


class SharingNamespace(NumpyAdapter):
    """An array library that wraps NumPy memory without copying, and imports through DLPack."""

    def array_api(self) -> Any:
        from harness.adapter import ArrayAPI
        from tests.fakes.adapters import FakeArray, FakeNamespace

        return ArrayAPI("sharing", FakeNamespace(), FakeArray, np.asarray, lambda a: FakeArray(np.from_dlpack(a)))


def test_numerics_coverage_counts_what_agrees_with_numpy(tmp_path: Path) -> None:
    full = numerics.run(NumpyAdapter("cpu"), "coverage", ctx(tmp_path))
    assert full.status is Status.OK and full.data["agrees"] == full.data["total"] and full.data["ease_of_use"] == 5.0
    partial = numerics.run(TorchLike("cpu"), "coverage", ctx(tmp_path))
    funcs = partial.data["functions"]
    assert funcs["reductions/std"]["outcome"] == "disagrees" and funcs["indexing/expand_dims"]["outcome"] == "missing"
    assert partial.data["agrees"] == partial.data["total"] - 2


def test_numerics_interop_sees_shared_memory(tmp_path: Path) -> None:
    out = numerics.run(SharingNamespace("cpu"), "interop", ctx(tmp_path))
    assert out.data["numpy_to_framework"]["zero_copy"] is True
    copying = numerics.run(TorchLike("cpu"), "interop", ctx(tmp_path))
    assert copying.data["numpy_to_framework"]["zero_copy"] is False and not copying.data["zero_copy_both_ways"]


def test_scale_runs_two_processes_and_checks_the_sum(tmp_path: Path) -> None:
    out = scale.run(NumpyAdapter("cpu"), "allreduce", ctx(tmp_path))
    assert out.status is Status.OK, out.reason
    assert out.data["builtin"] is True and [r["rank"] for r in out.data["ranks"]] == [0, 1]
    assert out.data["ranks"][0]["value"] == [3.0, 6.0, 9.0, 12.0, 15.0, 18.0]


def test_scale_kills_a_rank_that_never_joins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.adapters import HangingAllReduce

    monkeypatch.setattr(scale, "CHILD_TIMEOUT_S", 5.0)
    out = scale.run(HangingAllReduce("cpu"), "allreduce", ctx(tmp_path))
    assert out.status is Status.FAILED and "hung" in out.reason


def test_scale_keeps_the_evidence_of_a_rank_that_finds_no_distributed_api(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.adapters import NoDistributed

    out = scale.run(NoDistributed("cpu"), "allreduce", ctx(tmp_path))
    assert out.status is Status.UNSUPPORTED and out.data["evidence"] == {"looked_up": ["numpy.distributed", "numpy.distributed"]}
    from harness.results import make_record, validate_document
    from tests.test_results import sample

    doc = sample()
    doc["records"]["scale/allreduce"] = make_record("scale/allreduce", out.status, reason=out.reason, data=out.data,
                                                    started_at="2026-01-01T00:00:00Z", duration_s=1.0)
    assert validate_document(doc) == []
    monkeypatch.setenv("SHOWDOWN_FAKE_NO_EVIDENCE", "1")  # the rank processes inherit it
    out = scale.run(NoDistributed("cpu"), "allreduce", ctx(tmp_path / "again"))
    assert out.status is Status.UNMAPPED and "without evidence" in out.reason


def test_scalability_is_measured_only_where_the_adapter_tries() -> None:
    from harness.scoring import measured

    def doc(status: str, reason: str = "", builtin: bool = True) -> dict[str, Any]:
        return {"records": {"scale/allreduce": {"status": status, "reason": reason, "data": {"builtin": builtin, "api": "x"}}}}

    assert measured.scalability(doc("unmapped", "the x adapter implements no all-reduce")).value is None
    assert measured.scalability(doc("ok")).value == 2.0
    assert measured.scalability(doc("ok", builtin=False)).value == 1.0
    assert measured.scalability(doc("failed", "rank 1: hung")).value == 0.0
