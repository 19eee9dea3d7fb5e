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

from harness.catalog import models, reference_models
from harness.catalog import reference_nn as nn
from harness.catalog.models import Model

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
    #: a catalog model (harness.catalog.models) this spec exports: the adapter builds it from its nodes with the same
    #: layers as its training workloads, in inference mode (batch normalisation with a fresh model's running
    #: statistics, mean 0 and variance 1), loads `weights()` (the catalog's "<node>.<param>" parameters) and exports
    #: its forward pass (input "x", output the logits "y"). None for the hand-written models above.
    catalog: Callable[[], Model] | None = None

    def model(self) -> Model:
        if self.catalog is None:
            raise ValueError(f"ONNX model {self.id!r} is not a catalog model")
        return self.catalog()

    def weights(self) -> dict[str, Array]:
        if self.catalog is not None:
            return self.model().parameters()
        return self.make_weights(np.random.default_rng(sum(map(ord, self.id)) + 3))

    def sample_input(self) -> Array:
        if self.catalog is not None:
            return self.model().batch()["x"]
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


def _catalog_spec(spec_id: str, description: str, make: Callable[[], Model]) -> OnnxModelSpec:
    model = make()

    def forward(w: dict[str, Array], x: Array) -> Array:
        return reference_models.forward(make(), w, x, inference=True)[0]

    return OnnxModelSpec(spec_id, description, model.input_shape, lambda _rng: make().parameters(), forward, make)


#: the portability matrix's model set: the two models above, then catalog models built by each adapter from the
#: catalog's node list (small sizes: the matrix converts every file in every importer)
CATALOG_EXPORTS: tuple[OnnxModelSpec, ...] = (
    _catalog_spec("lstm", "sequence classifier: x (2, 8, 8) -> LSTM 16 (no biases), last state -> dense 10",
                  lambda: models.lstm_classifier(2, 8, 8, 16, 10)),
    _catalog_spec("resblock", "x (2, 3, 8, 8) -> conv 3x3 8 -> ReLU -> [conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN] + "
                  "identity -> ReLU -> global average pool -> dense 10 (BN in inference mode)",
                  lambda: models.residual_block(2, 8, 8, 10)),
    _catalog_spec("vgg_mini", "the catalog's vgg_mini at x (2, 3, 16, 16): 3 conv-BN-ReLU, 2 max pools, global "
                  "average pool, dense 10", lambda: models.vgg_mini(2, 16, 10)),
    _catalog_spec("transformer", "the catalog's BERT-shaped encoder, 1 layer, dim 16, 2 heads, tokens (2, 8) below "
                  "50 -> dense 10", lambda: models.transformer_encoder(2, 8, 50, 1, 16, 2, 10)),
    _catalog_spec("gru_lm", "the catalog's GRU language model: tokens (2, 8) below 50, embedding 16, GRU 16, logits "
                  "over 50 at every step", lambda: models.gru_language_model(2, 8, 50, 16, 16)),
    _catalog_spec("resnet50", "the catalog's ResNet-50 (23.5 M parameters) at x (1, 3, 32, 32), 10 classes",
                  lambda: models.resnet50(1, 32, 10)),
)
EXPORT_MODELS: tuple[OnnxModelSpec, ...] = MODELS + CATALOG_EXPORTS
EXPORT_MODELS_BY_ID = {m.id: m for m in EXPORT_MODELS}


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
