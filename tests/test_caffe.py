"""Caffe end to end: the real suite in the caffe row's image (Debian bullseye's python3-caffe, Caffe 1.0 CPU_ONLY, on
bullseye's Python 3.9, with cp39 wheels for numpy, protobuf, onnx and onnxruntime), run through the docker runner; so
the worker side runs on Python 3.9 here. A missing image is built; a missing bullseye base (`showdown images base
--release bullseye`), a build or a run that fails fails these tests, it never skips them.

The facts asserted are the ones the suite observed for Caffe 1.0.0+git20180821.99bd997 (Debian), so a change in any
of them shows up here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import registry
from harness.catalog import ops
from harness.probes import SUITES
from harness.probes.layers import GRAD_RTOL
from harness.results import validate_document
from harness.runners import images
from harness.runners.base import EnvironmentBuildError
from harness.runners.docker import DockerRunner
from harness.runners.run import RunRequest, execute
from harness.scoring import measured
from tests.conftest import framework_image

pytestmark = pytest.mark.framework("caffe")

COMPOSED = {"separable_conv2d", "upsample_nearest2d", "layer_norm", "group_norm", "simple_rnn", "bidirectional_rnn"}
UNSUPPORTED = {"gru": "GRU", "multi_head_attention": "MultiHeadAttention", "hierarchical_softmax": "HierarchicalSoftmax",
               "ctc_loss": "CTCLoss"}
NET_PATH = "caffe.Net (a static prototxt graph from caffe.NetSpec)"
TIMED = ("gemm", "conv2d", "mlp_train", "cnn_train", "lstm_train", "resnet50_train", "vgg_mini_train")
#: every module the worker imports inside the image (tests/test_py39.py checks the same list on the host)
WORKER_MODULES = ("harness.worker", "harness.adapter", "harness.environment", "harness.protocol", "harness.results",
                  "harness.timing", "harness.catalog.ops", "harness.catalog.models", "harness.catalog.graphs",
                  "harness.catalog.numerics", "harness.catalog.onnx_models", "harness.catalog.reference_models",
                  "harness.catalog.reference_nn", "harness.catalog.reference_optim", "harness.catalog.workloads",
                  "harness.probes.layers", "harness.probes.graphs", "harness.probes.throughput", "harness.probes.onnx",
                  "harness.probes.numerics", "harness.probes.scale", "harness.scale_rank", "harness.probes.provenance",
                  "harness.probes.agreement", "frameworks.caffe.adapter")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("caffe-results")
    info = registry.get("caffe")
    assert info.has_adapter and info.runners == ("docker",) and info.image_base == registry.BULLSEYE_BASE
    req = RunRequest(info, "cpu", list(SUITES), out, DockerRunner(), quick=True)
    return execute(req).document


def _layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.split("/", 1)[1]: r for k, r in doc["records"].items() if k.startswith("layers/")}


def _in_image(script: str) -> str:
    """Run a Python script in the caffe image (no network, read-only) and return its output."""
    tag = framework_image("caffe")
    c = images.client()
    out = c.containers.run(tag, ["-c", script], entrypoint=["python"], network_mode="none", read_only=True,
                           tmpfs={"/tmp": "rw,size=256m"}, environment={"GLOG_minloglevel": "2"}, remove=True,
                           stdout=True, stderr=True)
    return str(out.decode() if isinstance(out, bytes) else out)


def test_document_is_complete_and_ran_on_python_39(doc: dict[str, Any]) -> None:
    env = doc["environment"]
    assert doc["complete"]
    assert env["framework_version"] == "1.0.0"
    assert env["versions"]["python3-caffe (Debian)"].startswith("1.0.0+git20180821.99bd997")
    assert env["python"]["version"].startswith("3.9.") and env["in_container"]
    assert not [k for k, r in doc["records"].items() if r["status"] in ("error", "crashed", "timeout", "unmapped")]
    # Caffe computes on OpenBLAS (libopenblas-base in apt-packages.txt), not the reference BLAS apt keeps otherwise
    assert any(lib.startswith("libopenblasp") for lib in env["framework_device"]["blas"])
    assert "has no reference to cudaMalloc" in env["framework_device"]["cuda_in_libcaffe"]


def test_document_validates(doc: dict[str, Any]) -> None:
    assert validate_document(doc) == []


def test_ops_are_ok_or_unsupported_with_evidence(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    assert len(layers) == 32
    not_ok = {op: r["status"] for op, r in layers.items() if r["status"] != "ok"}
    assert not_ok == {**dict.fromkeys(UNSUPPORTED, "unsupported"), "adamw": "unsupported"}
    for op, layer_type in UNSUPPORTED.items():
        assert layers[op]["data"]["evidence"]["looked_up"][0] == f"caffe.layer_type_list() contains {layer_type!r}", op
    assert layers["adamw"]["data"]["evidence"]["looked_up"] == ["caffe.AdamWSolver", "caffe_pb2.SolverParameter fields *decoupled*"]
    kinds = {op: r["data"]["implementation"] for op, r in layers.items() if r["status"] == "ok"}
    assert {op for op, k in kinds.items() if k == "composed"} == COMPOSED
    assert measured.ootb_ops(doc).value == 24.0  # 21 native + 6 composed at half a point


def test_every_parameter_gradient_is_checked_in_every_case(doc: dict[str, Any]) -> None:
    checked = 0
    for op, rec in _layers(doc).items():
        if rec["status"] != "ok":
            continue
        spec = ops.get(op)
        for label, case_rec in rec["data"]["cases"].items():
            if case_rec["status"] == "unsupported":
                continue
            assert case_rec["status"] == "ok", (op, label)
            case = spec.case(rec["data"]["variant"], label)
            if case.grad_wrt is None or spec.check is not None:
                continue
            backward = case_rec["backward"]
            assert backward["checked"] and backward["ok"], (op, label, backward.get("problem"))
            assert set(backward["gradients"]) == set(case.wrt), (op, label)
            assert backward["worst_rel_err"] <= GRAD_RTOL / 10, (op, label, backward["worst_rel_err"])
            checked += len(case.wrt)
    assert checked == 55  # inputs and parameters over the 19 ok ops with a gradient (dropout: below), padded cases too
    assert _layers(doc)["dropout"]["data"]["cases"]["default"]["forward"]["check"]["gradient_matches_mask"] is True


def test_conventions_caffe_follows(doc: dict[str, Any]) -> None:
    layers = _layers(doc)
    conventions = {op: layers[op]["data"]["convention"] for op in ("avg_pool2d", "adagrad", "adadelta", "rmsprop", "adam")}
    assert conventions == {"avg_pool2d": "count_include_pad", "adagrad": "eps_outside_sqrt", "adadelta": "lr_scales_step",
                           "rmsprop": "eps_outside_sqrt", "adam": "eps_hat"}
    assert layers["lstm"]["data"]["api"] == "caffe.layers.LSTM(expose_hidden=True)"
    assert set(layers["lstm"]["data"]["backward"]["gradients"]) == {"x", "wx", "wh", "b"}
    assert set(layers["adadelta"]["data"]["cases"]) == {"default", "learning_rate"}  # base_lr expresses any rate
    accumulator = layers["adagrad"]["data"]["cases"]["accumulator"]
    assert accumulator["status"] == "unsupported"
    assert accumulator["evidence"]["looked_up"] == ["caffe_pb2.SolverParameter fields *accumulator* / *history*"]
    for op in ("conv2d", "max_pool2d"):
        assert layers[op]["data"]["cases"]["padded"]["status"] == "ok", op


def test_graphs_are_static(doc: dict[str, Any]) -> None:
    r = doc["records"]
    assert r["graphs/define_by_run"]["status"] == "failed"
    assert "needs the value of a caffe.NetSpec top" in r["graphs/define_by_run"]["reason"]
    path = r["graphs/compiled"]["data"]["paths"][NET_PATH]
    assert r["graphs/compiled"]["status"] == "ok" and path["outcome"] == "compiled"
    assert path["new_shape"]["outcome"] == "reused" and path["new_shape"]["evidence"] == "trace count 1 -> 1"
    flow = r["graphs/compiled_control_flow"]["data"]["paths"][NET_PATH]
    assert r["graphs/compiled_control_flow"]["status"] == "failed" and flow["outcome"] == "rejected"


def test_throughput_checked_and_timed(doc: dict[str, Any]) -> None:
    r = doc["records"]
    for workload in TIMED:
        rec = r[f"throughput/{workload}/eager"]
        assert rec["status"] == "ok", (workload, rec["reason"])
        assert rec["data"]["first_step"]["ok"] and rec["data"]["steps_per_s"] > 0, workload
        compiled = r[f"throughput/{workload}/compiled"]
        assert compiled["status"] == "unsupported" and "Caffe has no compiler" in compiled["reason"], workload
    assert r["throughput/lstm_train/eager"]["data"]["param_count_matches"]  # the LSTM's bias blob held at zero, not counted
    for workload, layer in (("transformer_train", "PositionEmbedding"), ("gru_lm_train", "GRU")):
        rec = r[f"throughput/{workload}/eager"]
        assert rec["status"] == "unsupported" and rec["data"]["evidence"]["looked_up"] == [f"caffe.layer_type_list() contains {layer!r}"]


def test_onnx_numerics_and_scale_are_unsupported_with_evidence(doc: dict[str, Any]) -> None:
    r = doc["records"]
    for key in ("onnx/export/mlp", "onnx/export/cnn", "onnx/import/mlp", "onnx/import/cnn"):
        assert r[key]["status"] == "unsupported"
        assert r[key]["data"]["evidence"]["looked_up"] == ["caffe.*onnx*", "importable module caffe2onnx"], key
    for key in ("numerics/coverage", "numerics/interop"):
        assert r[key]["status"] == "unsupported" and "NumPy itself" in r[key]["reason"]
    assert r["scale/allreduce"]["status"] == "unsupported" and "caffe.has_nccl() is False" in r["scale/allreduce"]["reason"]


def test_worker_side_imports_on_python_39_and_sees_debians_caffe() -> None:
    script = ("import sys, importlib, json\n"
              f"mods = {list(WORKER_MODULES)!r}\n"
              "for m in mods: importlib.import_module(m)\n"
              "import caffe, numpy\n"
              "print(json.dumps({'python': sys.version.split()[0], 'caffe': caffe.__file__, 'numpy': numpy.__file__,"
              " 'numpy_version': numpy.__version__, 'imported': len(mods)}))\n")
    seen = json.loads(_in_image(script).strip().splitlines()[-1])
    assert seen["python"].startswith("3.9.") and seen["imported"] == len(WORKER_MODULES)
    assert seen["caffe"].startswith("/usr/lib/python3/dist-packages/caffe/")  # Debian's, through --system-site-packages
    assert seen["numpy"].startswith("/opt/venv/") and seen["numpy_version"] == "1.23.5"  # the cp39 wheel, not Debian's 1.19


def test_a_wrong_gate_order_fails_the_lstm() -> None:
    """The adapter's mapping is what makes the LSTM pass: loading the catalog's i, f, g, o blocks as they are (Caffe
    reads them as i, f, o, g) fails the op."""
    script = ("import json\nfrom pathlib import Path\nimport frameworks.caffe.adapter as a\n"
              "from harness.probes import Context\nfrom harness.probes.layers import run\n"
              "out = {}\n"
              "for order in (a.CAFFE_LSTM, a.CANONICAL_LSTM):\n"
              "    a.CAFFE_LSTM = order\n"
              "    o = run(a.CaffeAdapter('cpu'), 'lstm', Context('cpu', Path('/tmp/s')))\n"
              "    out[order] = o.status.value\n"
              "print(json.dumps(out))\n")
    assert json.loads(_in_image(script).strip().splitlines()[-1]) == {"ifog": "ok", "ifgo": "failed"}


def test_a_missing_bullseye_base_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoImages:
        class images:  # noqa: N801 -- the docker client's attribute
            @staticmethod
            def get(ref: str) -> Any:
                raise LookupError(ref)

    monkeypatch.setattr(images, "client", lambda: NoImages())
    with pytest.raises(EnvironmentBuildError) as err:
        images.build(registry.get("caffe"), "cpu", "python:3.11-slim", lambda text: None)
    assert str(err.value) == ("caffe is built on showdown/debian:bullseye-py3.9, which is not on this engine: build it "
                              "with `showdown images base --release bullseye`")


def test_the_caffe_image_takes_cp39_wheels_for_bullseye() -> None:
    info = registry.get("caffe")
    release = images.release_of(info.image_base or "")
    assert release is not None and (release.name, release.python) == ("bullseye", "3.9")
    platforms = images.wheel_platforms(release.glibc, "x86_64")
    assert platforms[0] == "manylinux_2_31_x86_64" and "manylinux_2_32_x86_64" not in platforms
    assert "manylinux2014_x86_64" in platforms
    assert images.system_site_packages(info) and not images.system_site_packages(registry.get("chainer"))
    assert images.framework_version(info, "cpu") == "python3-caffe (Debian bullseye)"
