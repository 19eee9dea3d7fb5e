"""The hierarchical-sigmoid variant of hierarchical softmax (added for Paddle's HSigmoidLoss) is checked against
independent computations: its tree is a proper binary tree and its reference a probability distribution."""

from __future__ import annotations

import itertools

import numpy as np

from harness.catalog import ops
from harness.catalog import reference_nn as nn

VARIANT = "hierarchical_sigmoid"


def _case() -> ops.Case:
    return ops.get("hierarchical_softmax").case(VARIANT)


def _all_classes(a: dict[str, np.ndarray], w: np.ndarray | None = None, b: np.ndarray | None = None) -> np.ndarray:
    """log p(class) for every example and every class: (examples, classes)."""
    w = a["w_nodes"] if w is None else w
    b = a["b_nodes"] if b is None else b
    n, classes = a["x"].shape[0], a["path_table"].shape[0]
    return np.stack([nn.hierarchical_sigmoid(a["x"], np.full(n, k), w, b, a["path_table"], a["path_code"])
                     for k in range(classes)], axis=1)


def test_variant_is_listed_with_a_deterministic_case() -> None:
    spec = ops.get("hierarchical_softmax")
    assert VARIANT in spec.variants and "adaptive_softmax" in spec.variants
    first, second = _case(), _case()
    for key in first.arrays:
        np.testing.assert_array_equal(first.arrays[key], second.arrays[key])
        assert first.arrays[key].dtype in (np.float32, np.int64), key
    assert first.grad_wrt == "x" and first.cotangents["y"].shape == (4,)


def test_tree_is_a_full_binary_tree_with_prefix_free_codes() -> None:
    a = _case().arrays
    table, code = a["path_table"], a["path_code"]
    nodes = a["w_nodes"].shape[0]
    paths = []
    for row, bits in zip(table, code):
        length = int((row >= 0).sum())
        assert (row[length:] == -1).all() and (bits[length:] == -1).all(), "padding only after the path"
        assert row[0] == 0, "every path starts at the root"
        assert set(bits[:length].tolist()) <= {0, 1}
        paths.append(tuple(zip(row[:length].tolist(), bits[:length].tolist())))
    assert len(set(paths)) == len(paths)
    for p, q in itertools.permutations(paths, 2):
        assert q[: len(p)] != p, "no class's path is a prefix of another's"
    # every internal node is used with both codes: each has exactly two children
    for node in range(nodes):
        used = {bit for path in paths for n, bit in path if n == node}
        assert used == {0, 1}, node
    assert len(paths) == nodes + 1  # a full binary tree with 7 internal nodes has 8 leaves
    assert sorted({len(p) for p in paths}) == [2, 3, 4]  # unbalanced: paths need padding


def test_probabilities_over_all_classes_sum_to_one() -> None:
    probs = np.exp(_all_classes(_case().arrays))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_zero_scores_give_two_to_the_minus_depth() -> None:
    a = _case().arrays
    logp = _all_classes(a, np.zeros_like(a["w_nodes"]), np.zeros_like(a["b_nodes"]))
    depth = (a["path_table"] >= 0).sum(axis=1)
    np.testing.assert_allclose(np.exp(logp), np.broadcast_to(0.5 ** depth, logp.shape), rtol=1e-12)


def test_reference_equals_a_walk_down_the_tree() -> None:
    """Walk from the root multiplying sigmoid(score) for the child coded 1 and 1 - sigmoid(score) for the child coded
    0: the same probabilities computed in product form from an explicit child map."""
    case = _case()
    a = case.arrays
    children: dict[int, dict[int, tuple[str, int]]] = {}
    for cls, (row, bits) in enumerate(zip(a["path_table"], a["path_code"])):
        length = int((row >= 0).sum())
        for j in range(length):
            nxt = ("class", cls) if j == length - 1 else ("node", int(row[j + 1]))
            children.setdefault(int(row[j]), {})[int(bits[j])] = nxt
    x, w, b = a["x"].astype(np.float64), a["w_nodes"].astype(np.float64), a["b_nodes"].astype(np.float64)
    expected = np.zeros((x.shape[0], len(a["path_table"])))
    for i in range(x.shape[0]):
        stack = [(0, 1.0)]
        while stack:
            node, prob = stack.pop()
            p1 = 1.0 / (1.0 + np.exp(-(x[i] @ w[node] + b[node])))
            for bit, share in ((1, p1), (0, 1.0 - p1)):
                kind, index = children[node][bit]
                if kind == "class":
                    expected[i, index] = prob * share
                else:
                    stack.append((index, prob * share))
    np.testing.assert_allclose(np.exp(_all_classes(a)), expected, rtol=1e-12)
    ref = ops.get("hierarchical_softmax").variants[VARIANT].reference(case)["y"]
    np.testing.assert_allclose(ref, np.log(expected[np.arange(4), a["targets"]]), rtol=1e-12)


def test_code_convention_matters_on_the_case() -> None:
    """Flipping every code (the other sign convention) changes the answer: the case tells the two apart."""
    a = _case().arrays
    flipped = np.where(a["path_code"] >= 0, 1 - a["path_code"], -1)
    ours = nn.hierarchical_sigmoid(a["x"], a["targets"], a["w_nodes"], a["b_nodes"], a["path_table"], a["path_code"])
    other = nn.hierarchical_sigmoid(a["x"], a["targets"], a["w_nodes"], a["b_nodes"], a["path_table"], flipped)
    assert np.abs(ours - other).max() > 0.1
    assert np.isfinite(ours).all() and (ours < 0).all()


def test_case_differentiates_the_node_weights() -> None:
    """The variant's case asks for the gradients of x, w_nodes and b_nodes; the reference's central differences
    agree with the closed form d log sigmoid(+-s) / ds = code - sigmoid(s), summed over each example's path."""
    case = _case()
    assert case.wrt == ("x", "w_nodes", "b_nodes")
    a = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in case.arrays.items()}
    cot = case.cotangents["y"].astype(np.float64)
    gw, gb, gx = np.zeros_like(a["w_nodes"]), np.zeros_like(a["b_nodes"]), np.zeros_like(a["x"])
    for i, t in enumerate(a["targets"]):
        for node, code in zip(a["path_table"][t], a["path_code"][t]):
            if node < 0:
                break
            s = a["x"][i] @ a["w_nodes"][node] + a["b_nodes"][node]
            d = cot[i] * (code - 1.0 / (1.0 + np.exp(-s)))
            gw[node] += d * a["x"][i]
            gb[node] += d
            gx[i] += d * a["w_nodes"][node]

    def loss(name: str, value: np.ndarray) -> float:
        arrays = dict(a)
        arrays[name] = value
        y = nn.hierarchical_sigmoid(arrays["x"], arrays["targets"], arrays["w_nodes"], arrays["b_nodes"],
                                    arrays["path_table"], arrays["path_code"])
        return float(np.sum(y * cot))

    for name, closed in (("x", gx), ("w_nodes", gw), ("b_nodes", gb)):
        numeric = np.zeros_like(closed)
        for idx in np.ndindex(closed.shape):
            up, down = a[name].copy(), a[name].copy()
            up[idx] += 1e-6
            down[idx] -= 1e-6
            numeric[idx] = (loss(name, up) - loss(name, down)) / 2e-6
        np.testing.assert_allclose(numeric, closed, rtol=1e-6, atol=1e-8, err_msg=name)
    assert np.abs(gw).sum() > 0 and np.abs(gb[[0, 1, 2]]).min() > 0  # the root and both its children are on paths
