"""The catalog's NumPy references are the judges, so they are checked against independent computations."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from harness.catalog import graphs, ops
from harness.catalog import reference_nn as nn
from harness.catalog import reference_optim as opt
from harness.catalog.workloads import WORKLOADS


def test_catalog_has_the_32_ops_in_order() -> None:
    assert [op.number for op in ops.OPS] == list(range(1, 33))
    assert len(ops.OPS_BY_ID) == 32
    kinds = {op.kind for op in ops.OPS}
    assert kinds == {"layer", "loss", "optimizer"}


def test_cases_are_deterministic_and_float32() -> None:
    for op in ops.OPS:
        a, b = op.case(), op.case()
        assert a.arrays.keys() == b.arrays.keys()
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
            assert a.arrays[k].dtype in (np.float32, np.int64), (op.id, k)
        if a.grad_wrt is not None:
            assert a.grad_wrt in a.arrays and set(a.cotangents) == set(op.grad_of)


def conv2d_loops(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for b, f, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        y[b, f, i, j] = np.sum(x[b, :, i * stride : i * stride + kh, j * stride : j * stride + kw] * w[f])
    return y


def test_conv_reference_matches_plain_loops() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3))
    for stride, pad in ((1, 0), (2, 0), (1, 1), (2, 1)):
        got = nn.conv_nd(x, w, None, [stride] * 2, [pad] * 2, [1, 1])
        np.testing.assert_allclose(got, conv2d_loops(x, w, stride, pad), atol=1e-12)


def test_dilated_and_grouped_conv() -> None:
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 9)), rng.standard_normal((3, 2, 3))
    got = nn.conv_nd(x, w, None, [1], [0], [2])
    # dilation 2 == a kernel with zeros inserted between taps
    wd = np.zeros((3, 2, 5))
    wd[:, :, ::2] = w
    np.testing.assert_allclose(got, nn.conv_nd(x, wd, None, [1], [0], [1]), atol=1e-12)
    xg, wg = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((4, 1, 3, 3))
    grouped = nn.conv_nd(xg, wg, None, [1, 1], [1, 1], [1, 1], groups=4)
    for ch in range(4):
        np.testing.assert_allclose(grouped[:, ch : ch + 1], nn.conv_nd(xg[:, ch : ch + 1], wg[ch : ch + 1], None, [1, 1], [1, 1], [1, 1]), atol=1e-12)


def test_transposed_conv_is_the_adjoint_of_conv() -> None:
    """<conv(x), y> == <x, conv_transpose(y)> for the same weights: the defining property."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 2, 3, 3))  # conv: 3 out from 2 in; transposed: 3 in -> 2 out
    x = rng.standard_normal((1, 2, 9, 9))
    y = rng.standard_normal((1, 3, 4, 4))
    lhs = np.sum(nn.conv_nd(x, w, None, [2, 2], [0, 0], [1, 1]) * y)
    rhs = np.sum(x * nn.conv_transpose2d(y, w, None, 2, 0))
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_avg_pool_conventions_differ_only_at_the_border() -> None:
    x = np.ones((1, 1, 4, 4))
    inc = nn.avg_pool2d(x, 3, 1, 1, count_include_pad=True)
    exc = nn.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(exc, 1.0)
    assert inc[0, 0, 0, 0] == pytest.approx(4 / 9) and inc[0, 0, 1, 1] == pytest.approx(1.0)


def ctc_brute_force(logits: np.ndarray, target: list[int], blank: int = 0) -> float:
    """-log sum over every alignment that collapses to the target (feasible for tiny T and C)."""
    logp = nn.log_softmax(logits, axis=-1)
    t_len, classes = logp.shape
    total = -np.inf
    for path in itertools.product(range(classes), repeat=t_len):
        collapsed = [p for i, p in enumerate(path) if p != blank and (i == 0 or p != path[i - 1])]
        if collapsed == target:
            total = np.logaddexp(total, sum(logp[i, p] for i, p in enumerate(path)))
    return float(-total)


def test_ctc_reference_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((5, 2, 3))
    targets = np.array([[1, 1], [2, 0]])
    got = nn.ctc_loss(logits, targets, np.array([5, 4]), np.array([2, 1]), blank=0)
    assert got[0] == pytest.approx(ctc_brute_force(logits[:, 0], [1, 1]), rel=1e-10)
    assert got[1] == pytest.approx(ctc_brute_force(logits[:4, 1], [2]), rel=1e-10)


def test_lstm_with_forget_gate_saturated_open_accumulates() -> None:
    """With i = f = 1 (huge biases), g = tanh(x), c_t is the running sum of g: checks gate order i, f, g, o."""
    x = np.array([[[0.1], [0.2], [0.3]]])
    wx = np.zeros((1, 4))
    wx[0, 2] = 1.0  # g block gets x
    b = np.array([50.0, 50.0, 0.0, 50.0])
    _, _, c = nn.lstm(x, wx, np.zeros((1, 4)), b)
    assert c[0, 0] == pytest.approx(np.tanh(0.1) + np.tanh(0.2) + np.tanh(0.3), rel=1e-9)


def test_gru_variants_differ_and_agree_without_recurrent_weights() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3))
    wx, bx, bh = rng.standard_normal((3, 6)), rng.standard_normal(6), rng.standard_normal(6)
    wh = rng.standard_normal((2, 6))
    after, _ = nn.gru(x, wx, wh, bx, bh, reset_after=True)
    before, _ = nn.gru(x, wx, wh, bx, bh, reset_after=False)
    assert np.abs(after - before).max() > 1e-3
    bh_no_n = bh.copy()
    bh_no_n[4:] = 0.0
    wh0 = wh.copy()
    wh0[:, 4:] = 0.0  # no recurrent candidate term: both variants coincide
    a, _ = nn.gru(x, wx, wh0, bx, bh_no_n, reset_after=True)
    b, _ = nn.gru(x, wx, wh0, bx, bh_no_n, reset_after=False)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_hierarchical_softmax_is_a_distribution() -> None:
    case = ops.get("hierarchical_softmax").case()
    a = case.arrays
    probs = np.zeros((4, 8))
    for word in range(8):
        targets = np.full(4, word)
        probs[:, word] = np.exp(nn.hierarchical_softmax(a["x"], targets, a["w_cluster"], a["b_cluster"], a["w_word"], a["b_word"]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_adaptive_softmax_is_a_distribution() -> None:
    a = ops.get("hierarchical_softmax").case("adaptive_softmax").arrays
    probs = np.stack([np.exp(nn.adaptive_softmax(a["x"], np.full(4, w), a["w_head"], a["b_head"], a["w_proj"], a["w_tail"])) for w in range(8)], axis=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_multi_head_attention_with_one_head_and_identity_weights() -> None:
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 3, 4))
    eye, zero = np.eye(4), np.zeros(4)
    got = nn.multi_head_attention(q, k, v, eye, eye, eye, zero, zero, zero, eye, zero, heads=1)
    att = nn.softmax(q[0] @ k[0].T / 2.0)
    np.testing.assert_allclose(got[0], att @ v[0], atol=1e-12)


def test_optimizer_conventions_are_distinguishable_on_the_catalog_case() -> None:
    """The catalog's hyperparameters are chosen so each accepted convention gives a different answer."""
    for op_id in ("adagrad", "rmsprop", "adam", "adamw"):
        spec = ops.get(op_id)
        case = spec.case()
        outs = [ref(case)["w"] for ref in spec.references.values()]
        assert np.abs(outs[0] - outs[1]).max() > 100 * (spec.atol + spec.rtol), op_id


def test_momentum_first_step_equals_sgd_and_later_steps_differ() -> None:
    w, grads = np.ones(3), np.ones((3, 3))
    plain = opt.sgd(w, grads, 0.1)
    heavy = opt.momentum(w, grads, 0.1, 0.9, nesterov=False)
    np.testing.assert_allclose(heavy[0], plain[0])
    assert heavy[1][0] < plain[1][0]


def test_dropout_contract_rejects_a_wrong_scale() -> None:
    spec = ops.get("dropout")
    case = spec.case()
    x = case.arrays["x"]
    rng = np.random.default_rng(0)
    keep = rng.random(x.shape) > case.config["p"]
    good = {"y_eval": x, "y_train": np.where(keep, x / (1 - case.config["p"]), 0.0),
            "grads": {"x": np.where(keep, case.cotangents["y_train"] / (1 - case.config["p"]), 0.0)}}
    assert spec.check is not None
    assert spec.check(case, good)[0]
    unscaled = dict(good, y_train=np.where(keep, x, 0.0))
    assert not spec.check(case, unscaled)[0]
    never = dict(good, y_train=x / (1 - case.config["p"]))
    assert not spec.check(case, never)[0]


def test_graph_reference_takes_both_paths() -> None:
    values = [graphs.reference_value_and_grad(graphs.control_flow, i.args) for i in graphs.control_flow_inputs()]
    pos, neg = values
    assert pos[0] > 0 and np.all(pos[1] > 0)  # cubic branch: gradient 3 y^2 2^k > 0
    assert np.all(np.abs(neg[1]) < 2 ** 6)  # tanh branch: bounded


def test_workload_parameter_counts() -> None:
    counts = {w.id: w.param_count("cpu") for w in WORKLOADS}
    assert counts["gemm"] == 0 and counts["conv2d"] == 0
    assert counts["mlp_train"] == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert counts["lstm_train"] == 32 * 256 + 64 * 256 + 64 * 10 + 10
    for w in WORKLOADS:
        assert w.flops("cpu") > 0 and w.flops("cuda") > w.flops("cpu")


# ---------------------------------------------------------------------------------------------- models
def _zoo() -> list[Any]:
    """Tiny models that together use every node kind, wired with branches and residuals."""
    from harness.catalog import models as m

    out = []
    b = m.Builder()
    b.add("conv2d", out=4, kernel=3, stride=2, padding=1, bias=True)
    b.add("batch_norm")
    x = b.add("relu")
    b.add("max_pool", kernel=3, stride=2, padding=1)
    y = b.add("conv2d", out=4, kernel=1, stride=1, padding=0)
    side = b.add("conv2d", x, out=4, kernel=3, stride=2, padding=1, name="side")
    b.add("add", y, side)
    b.add("max_pool", kernel=2, stride=1, padding=0, name="pool2")
    b.add("global_avg_pool")
    b.add("dense", out=5)
    out.append(m.Model("zoo_image", "image", (3, 2, 9, 9), "class", 5, tuple(b.nodes)))
    b = m.Builder()
    b.add("embedding", vocab=11, dim=8)
    x = b.add("positional")
    a = b.add("self_attention", x, heads=2)
    x = b.add("layer_norm", b.add("add", x, a))
    b.add("dense", x, out=16)
    b.add("gelu")
    f = b.add("dense", out=8)
    b.add("layer_norm", b.add("add", x, f))
    b.add("mean_tokens")
    b.add("dense", out=3)
    out.append(m.Model("zoo_tokens", "tokens", (2, 5), "class", 3, tuple(b.nodes), vocab=11))
    b = m.Builder()
    b.add("embedding", vocab=9, dim=4)
    b.add("gru", hidden=6)
    b.add("dense", out=9)
    out.append(m.Model("zoo_gru", "tokens", (2, 4), "token", 9, tuple(b.nodes), vocab=9))
    b = m.Builder()
    b.add("lstm_last", hidden=5)
    b.add("dense", out=3)
    out.append(m.Model("zoo_lstm", "sequence", (2, 4, 3), "class", 3, tuple(b.nodes)))
    b = m.Builder()
    b.add("conv2d", out=3, kernel=3, stride=1, padding=1)
    b.add("flatten")
    b.add("dense", out=4)
    out.append(m.Model("zoo_flat", "image", (2, 2, 4, 4), "class", 4, tuple(b.nodes)))
    return out


def test_the_zoo_uses_every_node_kind() -> None:
    from harness.catalog.models import NODE_KINDS

    assert sorted({k for model in _zoo() for k in model.kinds()}) == sorted(NODE_KINDS)


@pytest.mark.parametrize("model", _zoo(), ids=lambda m: m.id)
def test_the_model_reference_gradients_match_finite_differences(model: Any) -> None:
    """Every parameter's hand-written gradient, projected on a random direction, against central differences."""
    from harness.catalog import reference_models as rm

    rng = np.random.default_rng(0)
    params = {k: v.astype(np.float64) + 0.1 * rng.standard_normal(v.shape) for k, v in model.parameters().items()}
    batch = model.batch()
    _, grads = rm.loss_and_grads(model, params, batch)
    assert set(grads) == set(params)
    for name, value in params.items():
        v = rng.standard_normal(value.shape)
        h = 1e-6
        up, down = dict(params), dict(params)
        up[name], down[name] = value + h * v, value - h * v
        numeric = (rm.loss_and_grads(model, up, batch)[0] - rm.loss_and_grads(model, down, batch)[0]) / (2 * h)
        analytic = float(np.sum(grads[name] * v))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9), name


def test_the_real_models_have_their_published_shapes() -> None:
    from harness.catalog import models as m

    assert m.resnet50(1, 224, 1000).param_count() == 25_557_032  # torchvision's resnet50
    assert m.resnet50(256, 224, 1000).flops() == pytest.approx(3 * 2 * 4.089e9 * 256, rel=0.01)  # 4.09 GMAC per image
    bert = m.transformer_encoder(1, 128, 30522, 12, 768, 12, 2)
    # BERT-base's encoder, token and position embeddings (its token-type embedding and pooler left out)
    assert bert.param_count() == 30522 * 768 + 128 * 768 + 12 * (4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768) + 768 * 2 + 2


def test_every_training_workload_is_a_checked_catalog_model() -> None:
    from harness.catalog.workloads import MODELS, WORKLOADS

    for w in WORKLOADS:
        if w.kind != "train":
            continue
        for device in ("cpu", "cuda"):
            model = w.model(device)
            assert w.param_count(device) == model.param_count() > 0
            assert w.parameters(device) == list(model.param_shapes())
            check = w.check_model(device)
            assert check.param_shapes() == model.param_shapes()  # a check model differs in batch only
            assert check.input_shape[1:] == model.input_shape[1:]
        assert set(MODELS[w.id]) <= {"cpu", "cuda", "cuda-check"}
