"""Reference models for the ONNX suite, with weights as data and a NumPy forward pass.

Export: each adapter builds the model in its framework from these weights and exports it with its own exporter.
Import: the same models are written as ONNX with `onnx.helper` here, so no framework's exporter is the judge of
another framework's importer. `onnx` is imported lazily: the host lists the catalog without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.catalog import reference_nn as nn

Array = np.ndarray

DEFAULT_OPSET = 17
FALLBACK_OPSET = 13
EXPORT_ATOL = 1e-4


@dataclass(frozen=True)
class OnnxModelSpec:
    id: str
    description: str
    input_shape: tuple[int, ...]
    make_weights: Callable[[np.random.Generator], dict[str, Array]]
    forward: Callable[[dict[str, Array], Array], Array]

    def weights(self) -> dict[str, Array]:
        return self.make_weights(np.random.default_rng(sum(map(ord, self.id)) + 3))

    def sample_input(self) -> Array:
        rng = np.random.default_rng(sum(map(ord, self.id)) + 5)
        return rng.standard_normal(self.input_shape).astype(np.float32)

    def reference(self, x: Array) -> Array:
        return self.forward(self.weights(), x)


def _mlp_weights(rng: np.random.Generator) -> dict[str, Array]:
    return {"w1": (rng.standard_normal((16, 32)) * 0.3).astype(np.float32), "b1": (rng.standard_normal(32) * 0.1).astype(np.float32),
            "w2": (rng.standard_normal((32, 10)) * 0.3).astype(np.float32), "b2": (rng.standard_normal(10) * 0.1).astype(np.float32)}


def _mlp_forward(w: dict[str, Array], x: Array) -> Array:
    return nn.dense(np.maximum(nn.dense(x, w["w1"], w["b1"]), 0.0), w["w2"], w["b2"])


def _cnn_weights(rng: np.random.Generator) -> dict[str, Array]:
    return {"conv_w": (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "conv_b": (rng.standard_normal(4) * 0.1).astype(np.float32),
            "fc_w": (rng.standard_normal((64, 10)) * 0.2).astype(np.float32), "fc_b": (rng.standard_normal(10) * 0.1).astype(np.float32)}


def _cnn_forward(w: dict[str, Array], x: Array) -> Array:
    h = np.maximum(nn.conv_nd(x, w["conv_w"], w["conv_b"], [1, 1], [1, 1], [1, 1]), 0.0)
    h = nn.max_pool2d(h, 2, 2)
    return nn.dense(h.reshape(h.shape[0], -1), w["fc_w"], w["fc_b"])


MODELS: tuple[OnnxModelSpec, ...] = (
    OnnxModelSpec("mlp", "x (4, 16) -> dense 32 -> ReLU -> dense 10", (4, 16), _mlp_weights, _mlp_forward),
    OnnxModelSpec("cnn", "x (2, 3, 8, 8) NCHW -> conv 3x3 (4, padding 1) -> ReLU -> maxpool 2 -> flatten (C, H, W order) "
                  "-> dense 10", (2, 3, 8, 8), _cnn_weights, _cnn_forward),
)
MODELS_BY_ID = {m.id: m for m in MODELS}


def build_onnx(model: OnnxModelSpec, opset: int = DEFAULT_OPSET) -> Any:
    """The model as an onnx.ModelProto written node by node with onnx.helper (weights as initializers)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = model.weights()
    inits = [numpy_helper.from_array(v, name) for name, v in w.items()]
    batch = model.input_shape[0]
    if model.id == "mlp":
        nodes = [
            helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
            helper.make_node("Add", ["h3", "b2"], ["y"]),
        ]
        out_shape = [batch, 10]
    elif model.id == "cnn":
        inits.append(numpy_helper.from_array(np.array([batch, -1], dtype=np.int64), "flat_shape"))
        nodes = [
            helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Reshape", ["p", "flat_shape"], ["f"]),
            helper.make_node("MatMul", ["f", "fc_w"], ["m"]), helper.make_node("Add", ["m", "fc_b"], ["y"]),
        ]
        out_shape = [batch, 10]
    else:
        raise KeyError(model.id)
    graph = helper.make_graph(
        nodes, f"showdown_{model.id}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(model.input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="showdown-catalog")
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes and importers
    onnx.checker.check_model(proto)
    return proto
