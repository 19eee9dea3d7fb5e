"""Models as data: the layers of a training workload and how they connect, described once, framework-neutral.

A model is a list of nodes in execution order. Each node has a kind (NODE_KINDS), the nodes it reads (by name;
"input" is the model's input), attributes, and parameters named "<node>.<param>" in the catalog's layouts (below).
From that alone the catalog infers every shape, counts parameters and FLOPs, initialises the parameters from a seed,
and runs the float64 reference (harness.catalog.reference_models). Each adapter builds the same list with its own
layers; a new workload is a new entry here and needs no adapter change.

Node kinds, their attributes, parameters (catalog layout) and semantics:
  dense(out, bias)                  w (in, out), b (out)        y = x w + b on the last axis
  conv2d(out, kernel, stride, padding, bias)  w (O, C, k, k), b (O)   cross-correlation, NCHW, symmetric zero padding
  batch_norm()                      gamma, beta (C)             training mode: batch statistics over N, H, W (biased
                                                                variance), eps 1e-5
  layer_norm()                      gamma, beta (D)             over the last axis, eps 1e-5
  relu, gelu                                                    gelu is the exact (erf) form
  max_pool(kernel, stride, padding)                             padded cells never win
  global_avg_pool                                               (N, C, H, W) -> (N, C)
  flatten                                                       (N, C, H, W) -> (N, C*H*W) in NCHW order
  add                               (two inputs)                elementwise sum (residual connections)
  lstm_last(hidden)                 wx (I, 4H), wh (H, 4H)      batch-first LSTM without biases, gates i, f, g, o,
                                                                h0 = c0 = 0; outputs the last hidden state
  gru(hidden)                       wx (I, 3H), wh (H, 3H), bx, bh (3H)   batch-first GRU, gates r, z, n, reset gate
                                                                applied after the recurrent matmul; all hidden states
  embedding(vocab, dim)             table (vocab, dim)          integer tokens (N, T) -> (N, T, dim)
  positional(length, dim)           table (length, dim)         adds a learned position embedding to (N, T, dim)
  self_attention(heads)             wq, wk, wv, wo (D, D), bq, bk, bv, bo (D)   multi-head scaled dot-product
                                                                attention of the sequence on itself, no mask
  mean_tokens                                                   (N, T, D) -> (N, D)

The loss is the mean softmax cross-entropy: over the batch (target "class": labels (N,)) or over every token
(target "token": labels (N, T)).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray

NODE_KINDS = ("dense", "conv2d", "batch_norm", "layer_norm", "relu", "gelu", "max_pool", "global_avg_pool", "flatten",
              "add", "lstm_last", "gru", "embedding", "positional", "self_attention", "mean_tokens")
NORM_EPS = 1e-5
BIASES = {"b", "bx", "bh", "bq", "bk", "bv", "bo", "beta"}  # start at zero; gamma at one; the rest scaled by fan-in


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A model, its input and its target. input_kind: "features" (N, F float32), "image" (N, C, H, W float32),
    "sequence" (N, T, F float32) or "tokens" (N, T int64 below `vocab`); target: "class" (labels (N,) below `classes`) or "token" (labels (N, T))."""

    id: str
    input_kind: str
    input_shape: tuple[int, ...]
    target: str
    classes: int
    nodes: tuple[Node, ...]
    vocab: int = 0
    note: str = ""

    # ------------------------------------------------------------------------------------------ structure
    @property
    def output(self) -> str:
        return self.nodes[-1].name

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The output shape of every node (and of "input")."""
        out: dict[str, tuple[int, ...]] = {"input": self.input_shape}
        for node in self.nodes:
            out[node.name] = _output_shape(node, [out[i] for i in node.inputs])
        return out

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every trainable parameter, "<node>.<param>" -> shape, in node order."""
        shapes = self.shapes()
        out: dict[str, tuple[int, ...]] = {}
        for node in self.nodes:
            for pname, shape in _param_shapes(node, shapes[node.inputs[0]] if node.inputs else ()).items():
                out[f"{node.name}.{pname}"] = shape
        return out

    def param_count(self) -> int:
        return int(sum(math.prod(s) for s in self.param_shapes().values()))

    def kinds(self) -> list[str]:
        return sorted({n.kind for n in self.nodes})

    # ------------------------------------------------------------------------------------------ data
    def parameters(self) -> dict[str, Array]:
        """Initial parameters, float32, identical everywhere: each from its own seed (model id and name)."""
        out: dict[str, Array] = {}
        nodes = {n.name: n for n in self.nodes}
        input_shapes = self.shapes()
        for full, shape in self.param_shapes().items():
            node_name, pname = full.split(".", 1)
            node = nodes[node_name]
            rng = np.random.default_rng(zlib.crc32(f"{self.id}:{full}".encode()))
            fan_in = _fan_in(node, pname, input_shapes[node.inputs[0]] if node.inputs else ())
            if pname == "gamma":
                value = np.ones(shape)
            elif pname in BIASES:
                value = np.zeros(shape)
            elif node.kind in ("embedding", "positional"):
                value = rng.standard_normal(shape) * 0.1
            else:
                value = rng.standard_normal(shape) / math.sqrt(fan_in)
            out[full] = value.astype(np.float32)
        return out

    def batch(self) -> dict[str, Array]:
        """The input and the labels, identical everywhere."""
        rng = np.random.default_rng(zlib.crc32(f"{self.id}:data".encode()))
        if self.input_kind == "tokens":
            x = rng.integers(0, self.vocab, self.input_shape).astype(np.int64)
        else:
            x = rng.standard_normal(self.input_shape).astype(np.float32)
        label_shape = self.input_shape[:1] if self.target == "class" else self.input_shape[:2]
        labels = rng.integers(0, self.classes, label_shape).astype(np.int64)
        return {"x": x, "labels": labels}

    def flops(self) -> float:
        """Floating-point operations of one training step: 2 per multiply-add of matmuls and convolutions, the
        backward pass counted as twice the forward (elementwise work left out: a slight underestimate)."""
        shapes = self.shapes()
        macs = 0.0
        for node in self.nodes:
            x, y = shapes[node.inputs[0]] if node.inputs else (), shapes[node.name]
            if node.kind == "dense":
                macs += math.prod(x) * node.attrs["out"]
            elif node.kind == "conv2d":
                macs += math.prod(y) * x[1] * node.attrs["kernel"] ** 2
            elif node.kind == "lstm_last":
                macs += x[0] * x[1] * (x[2] + node.attrs["hidden"]) * 4 * node.attrs["hidden"]
            elif node.kind == "gru":
                macs += x[0] * x[1] * (x[2] + node.attrs["hidden"]) * 3 * node.attrs["hidden"]
            elif node.kind == "self_attention":
                n, t, d = x
                macs += 4 * n * t * d * d + 2 * n * t * t * d
        return 3 * 2.0 * macs


# ---------------------------------------------------------------------------------------------- shapes
def _output_shape(node: Node, inputs: list[tuple[int, ...]]) -> tuple[int, ...]:
    k, a = node.kind, node.attrs
    x = inputs[0] if inputs else ()
    if k == "dense":
        return (*x[:-1], a["out"])
    if k == "conv2d":
        n, _, h, w = x
        size = [(d + 2 * a["padding"] - a["kernel"]) // a["stride"] + 1 for d in (h, w)]
        return (n, a["out"], *size)
    if k == "max_pool":
        n, c, h, w = x
        return (n, c, *[(d + 2 * a["padding"] - a["kernel"]) // a["stride"] + 1 for d in (h, w)])
    if k in ("batch_norm", "layer_norm", "relu", "gelu", "positional", "self_attention"):
        return x
    if k == "global_avg_pool":
        return x[:2]
    if k == "flatten":
        return (x[0], math.prod(x[1:]))
    if k == "add":
        if inputs[0] != inputs[1]:
            raise ValueError(f"add {node.name}: shapes {inputs[0]} and {inputs[1]} differ")
        return x
    if k == "lstm_last":
        return (x[0], a["hidden"])
    if k == "gru":
        return (x[0], x[1], a["hidden"])
    if k == "embedding":
        return (*x, a["dim"])
    if k == "mean_tokens":
        return (x[0], x[2])
    raise ValueError(f"unknown node kind {k!r}")


def _param_shapes(node: Node, x: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    k, a = node.kind, node.attrs
    if k == "dense":
        return {"w": (x[-1], a["out"]), **({"b": (a["out"],)} if a.get("bias", True) else {})}
    if k == "conv2d":
        return {"w": (a["out"], x[1], a["kernel"], a["kernel"]), **({"b": (a["out"],)} if a.get("bias", False) else {})}
    if k == "batch_norm":
        return {"gamma": (x[1],), "beta": (x[1],)}
    if k == "layer_norm":
        return {"gamma": (x[-1],), "beta": (x[-1],)}
    if k == "lstm_last":
        h = a["hidden"]
        return {"wx": (x[-1], 4 * h), "wh": (h, 4 * h)}
    if k == "gru":
        h = a["hidden"]
        return {"wx": (x[-1], 3 * h), "wh": (h, 3 * h), "bx": (3 * h,), "bh": (3 * h,)}
    if k == "embedding":
        return {"table": (a["vocab"], a["dim"])}
    if k == "positional":
        return {"table": (x[1], x[2])}
    if k == "self_attention":
        d = x[-1]
        return {**{f"w{p}": (d, d) for p in "qkvo"}, **{f"b{p}": (d,) for p in "qkvo"}}
    return {}


def _fan_in(node: Node, pname: str, x: tuple[int, ...]) -> int:
    if node.kind == "conv2d":
        return int(x[1] * node.attrs["kernel"] ** 2)
    if node.kind in ("lstm_last", "gru"):
        return int(x[-1] if pname == "wx" else node.attrs["hidden"])
    return int(x[-1]) if x else 1


# ---------------------------------------------------------------------------------------------- building
class Builder:
    """Appends nodes in execution order; each method returns the new node's name (the default input is the last)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.count: dict[str, int] = {}

    @property
    def last(self) -> str:
        return self.nodes[-1].name if self.nodes else "input"

    def add(self, kind: str, *inputs: str, name: str | None = None, **attrs: Any) -> str:
        if kind not in NODE_KINDS:
            raise ValueError(f"unknown node kind {kind!r}")
        if name is None:
            self.count[kind] = self.count.get(kind, 0) + 1
            name = f"{kind}{self.count[kind]}"
        self.nodes.append(Node(name, kind, tuple(inputs) or (self.last,), dict(attrs)))
        return name


def mlp(batch: int, d_in: int, hidden: int, classes: int) -> Model:
    b = Builder()
    b.add("dense", out=hidden, name="fc1")
    b.add("relu")
    b.add("dense", out=hidden, name="fc2")
    b.add("relu")
    b.add("dense", out=classes, name="fc3")
    return Model("mlp_classifier", "features", (batch, d_in), "class", classes, tuple(b.nodes))


def small_cnn(batch: int, hw: int, c1: int, c2: int, classes: int) -> Model:
    b = Builder()
    b.add("conv2d", out=c1, kernel=3, stride=1, padding=1, bias=True, name="conv1")
    b.add("relu")
    b.add("max_pool", kernel=2, stride=2, padding=0)
    b.add("conv2d", out=c2, kernel=3, stride=1, padding=1, bias=True, name="conv2")
    b.add("relu")
    b.add("max_pool", kernel=2, stride=2, padding=0)
    b.add("flatten")
    b.add("dense", out=classes, name="fc")
    return Model("small_cnn", "image", (batch, 3, hw, hw), "class", classes, tuple(b.nodes))


def lstm_classifier(batch: int, seq: int, d_in: int, hidden: int, classes: int) -> Model:
    b = Builder()
    b.add("lstm_last", hidden=hidden, name="lstm")
    b.add("dense", out=classes, name="fc")
    return Model("lstm_classifier", "sequence", (batch, seq, d_in), "class", classes, tuple(b.nodes),
                 note="one LSTM layer without biases (frameworks keep one or two bias vectors, so none keeps the "
                      "parameter count equal), gates i, f, g, o; the last hidden state feeds a dense layer")


def resnet50(batch: int, image: int, classes: int) -> Model:
    """ResNet-50 (He et al. 2016) as torchvision builds it (v1.5: the stride sits on the 3x3 convolution of a
    bottleneck): a 7x7 stride-2 stem, max pooling, bottleneck stages of 3, 4, 6 and 3 blocks (widths 64 to 512,
    expansion 4), global average pooling and a dense classifier; convolutions without bias, each followed by
    batch normalisation. 25.56 M parameters with 1000 classes."""
    b = Builder()
    b.add("conv2d", out=64, kernel=7, stride=2, padding=3, name="stem")
    b.add("batch_norm", name="stem_bn")
    b.add("relu")
    x = b.add("max_pool", kernel=3, stride=2, padding=1)
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=1):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            prefix = f"s{stage}b{block}"
            b.add("conv2d", x, out=width, kernel=1, stride=1, padding=0, name=f"{prefix}_conv1")
            b.add("batch_norm", name=f"{prefix}_bn1")
            b.add("relu")
            b.add("conv2d", out=width, kernel=3, stride=stride, padding=1, name=f"{prefix}_conv2")
            b.add("batch_norm", name=f"{prefix}_bn2")
            b.add("relu")
            b.add("conv2d", out=4 * width, kernel=1, stride=1, padding=0, name=f"{prefix}_conv3")
            main = b.add("batch_norm", name=f"{prefix}_bn3")
            shortcut = x
            if block == 0:
                b.add("conv2d", x, out=4 * width, kernel=1, stride=stride, padding=0, name=f"{prefix}_down")
                shortcut = b.add("batch_norm", name=f"{prefix}_down_bn")
            b.add("add", main, shortcut)
            x = b.add("relu")
    b.add("global_avg_pool")
    b.add("dense", out=classes, name="fc")
    return Model("resnet50", "image", (batch, 3, image, image), "class", classes, tuple(b.nodes))


def transformer_encoder(batch: int, seq: int, vocab: int, layers: int, dim: int, heads: int, classes: int) -> Model:
    """A BERT-shaped encoder (post-layer-norm: x = LN(x + attention(x)); x = LN(x + FFN(x)), FFN dense 4 dim, GELU,
    dense dim) over token and learned position embeddings, mean-pooled into a dense classifier."""
    b = Builder()
    b.add("embedding", vocab=vocab, dim=dim, name="tokens")
    x = b.add("positional", name="positions")
    for layer in range(layers):
        p = f"l{layer}"
        a = b.add("self_attention", x, heads=heads, name=f"{p}_attn")
        s = b.add("add", x, a, name=f"{p}_res1")
        x = b.add("layer_norm", s, name=f"{p}_ln1")
        b.add("dense", x, out=4 * dim, name=f"{p}_ff1")
        b.add("gelu", name=f"{p}_gelu")
        f = b.add("dense", out=dim, name=f"{p}_ff2")
        s = b.add("add", x, f, name=f"{p}_res2")
        x = b.add("layer_norm", s, name=f"{p}_ln2")
    b.add("mean_tokens", x)
    b.add("dense", out=classes, name="classifier")
    return Model("transformer", "tokens", (batch, seq), "class", classes, tuple(b.nodes), vocab=vocab,
                 note=f"{layers} layers, hidden {dim}, {heads} heads, sequence {seq}, vocabulary {vocab}")


def gru_language_model(batch: int, seq: int, vocab: int, dim: int, hidden: int) -> Model:
    """Next-token prediction: token embedding, one GRU layer, a dense layer over the vocabulary at every step."""
    b = Builder()
    b.add("embedding", vocab=vocab, dim=dim, name="tokens")
    b.add("gru", hidden=hidden, name="gru")
    b.add("dense", out=vocab, name="head")
    return Model("gru_lm", "tokens", (batch, seq), "token", vocab, tuple(b.nodes), vocab=vocab)


def vgg_mini(batch: int, hw: int, classes: int) -> Model:
    """A small VGG-style network: two stages of 3x3 convolutions with batch normalisation and ReLU, each closed by
    max pooling, then global average pooling and a dense classifier."""
    b = Builder()
    for stage, (convs, width) in enumerate(((2, 16), (1, 32)), start=1):
        for i in range(convs):
            b.add("conv2d", out=width, kernel=3, stride=1, padding=1, name=f"s{stage}_conv{i}")
            b.add("batch_norm", name=f"s{stage}_bn{i}")
            b.add("relu")
        b.add("max_pool", kernel=2, stride=2, padding=0)
    b.add("global_avg_pool")
    b.add("dense", out=classes, name="fc")
    return Model("vgg_mini", "image", (batch, 3, hw, hw), "class", classes, tuple(b.nodes))


def residual_block(batch: int, hw: int, channels: int, classes: int) -> Model:
    """One basic residual block with batch normalisation (He et al. 2016): a 3x3 stem convolution to `channels`, then
    conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN, added to the block's input (identity shortcut), ReLU, global average
    pooling and a dense classifier."""
    b = Builder()
    b.add("conv2d", out=channels, kernel=3, stride=1, padding=1, bias=True, name="stem")
    x = b.add("relu")
    b.add("conv2d", x, out=channels, kernel=3, stride=1, padding=1, bias=False, name="conv1")
    b.add("batch_norm", name="bn1")
    b.add("relu")
    b.add("conv2d", out=channels, kernel=3, stride=1, padding=1, bias=False, name="conv2")
    main = b.add("batch_norm", name="bn2")
    b.add("add", main, x)
    b.add("relu")
    b.add("global_avg_pool")
    b.add("dense", out=classes, name="fc")
    return Model("residual_block", "image", (batch, 3, hw, hw), "class", classes, tuple(b.nodes))


def model_params(model: Model) -> dict[str, Array]:
    """Parameters and batch together, as the throughput workloads hand them to adapters."""
    return {**model.parameters(), **model.batch()}
