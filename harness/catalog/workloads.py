"""Throughput workloads, defined once: the same shapes, dtypes (float32), initial parameters and data in every
framework, so the only thing that differs is the framework. A training workload is a catalog model
(harness.catalog.models) that every adapter builds from its own mappings of the model's node kinds; adding one is
an entry here, not an adapter change. Sizes depend on the device class (a CPU run on two cores and a GPU run cannot
share sizes and stay meaningful); within a device class they are fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from harness.catalog import models

Array = np.ndarray

SIZES: dict[str, dict[str, dict[str, int]]] = {  # single-op workloads
    "gemm": {"cpu": {"m": 512, "k": 512, "n": 512}, "cuda": {"m": 8192, "k": 8192, "n": 8192}},
    "conv2d": {
        "cpu": {"batch": 8, "cin": 32, "cout": 64, "hw": 32, "kernel": 3},
        "cuda": {"batch": 64, "cin": 64, "cout": 128, "hw": 56, "kernel": 3},
    },
}

#: training workloads: the model at each device class's size (a 2-core CPU and a GPU cannot share sizes and stay
#: meaningful); "check": a smaller batch of the same model, where the timed one is too large for the float64
#: reference to run in reasonable time (the probe checks that one, built by the same adapter code, first)
MODELS: dict[str, dict[str, Callable[[], models.Model]]] = {
    "mlp_train": {"cpu": lambda: models.mlp(64, 784, 256, 10), "cuda": lambda: models.mlp(1024, 784, 1024, 10)},
    "cnn_train": {"cpu": lambda: models.small_cnn(16, 32, 16, 32, 10), "cuda": lambda: models.small_cnn(256, 32, 32, 64, 10)},
    "lstm_train": {"cpu": lambda: models.lstm_classifier(16, 32, 32, 64, 10),
                   "cuda": lambda: models.lstm_classifier(256, 64, 128, 256, 10)},
    "resnet50_train": {"cpu": lambda: models.resnet50(2, 64, 1000), "cuda": lambda: models.resnet50(256, 224, 1000),
                       "cuda-check": lambda: models.resnet50(4, 224, 1000)},
    "transformer_train": {"cpu": lambda: models.transformer_encoder(4, 32, 1000, 2, 128, 4, 10),
                          "cuda": lambda: models.transformer_encoder(64, 128, 30522, 12, 768, 12, 2),
                          "cuda-check": lambda: models.transformer_encoder(2, 128, 30522, 12, 768, 12, 2)},
    "gru_lm_train": {"cpu": lambda: models.gru_language_model(8, 32, 500, 64, 128),
                     "cuda": lambda: models.gru_language_model(64, 128, 10000, 256, 512)},
    "vgg_mini_train": {"cpu": lambda: models.vgg_mini(16, 32, 10), "cuda": lambda: models.vgg_mini(256, 32, 10)},
}


def device_class(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


#: the first steps of every workload are checked against its float64 reference before anything is timed:
LOSS_RTOL = 1e-4  # |loss - reference| / |reference|
UPDATE_RTOL = 1e-3  # per parameter, in norm: |after - reference after| <= UPDATE_RTOL |reference update| + rounding
PARAM_ROUNDING = 2.0**-22  # the rounding allowance: 2 float32 ulps of the parameter's norm (a float32 parameter
#                            cannot hold an update smaller than that exactly)
ZERO_UPDATE_FLOOR = 1e-6  # times the step's largest reference update: the allowance for a parameter whose exact
#                           gradient is zero (a key bias under softmax, a bias before batch normalisation)
SENSITIVITY_FACTOR = 4.0  # no tolerance below this many times what float32 arithmetic alone does to the model
#                           (reference_models.float32_error: the reference itself computed in float32): what a
#                           correct float32 implementation cannot resolve is not asked of a framework
OUTPUT_RTOL = 1e-4  # single-op workloads: |y - reference| / |reference|, in norm
#: per precision (strict float32 is the verdict; TF32 and bfloat16 compute lose bits by design, so they are held
#: to what those formats can give: a gross error, e.g. a wrong layer, is still far outside)
TOLERANCES = {
    "fp32": {"loss_rtol": LOSS_RTOL, "update_rtol": UPDATE_RTOL, "output_rtol": OUTPUT_RTOL},
    "tf32": {"loss_rtol": 1e-2, "update_rtol": 5e-2, "output_rtol": 1e-2},
    "bf16": {"loss_rtol": 5e-2, "update_rtol": 2.5e-1, "output_rtol": 5e-2},
}
CHECKED_STEPS = 2  # the first step, and the second: a compile path that traces on the first call replays on the next
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class WorkloadSpec:
    id: str
    name: str
    kind: str  # "op" (forward only) or "train" (forward, backward, SGD update of a catalog model)
    description: str

    # ------------------------------------------------------------------------------------------ models
    def model(self, device: str) -> models.Model:
        """The training workload's model at the device class's size."""
        return _model(self.id, device_class(device))

    def check_model(self, device: str) -> models.Model:
        """The model the float64 reference checks: the timed one, or the same model at a smaller batch."""
        cls = device_class(device)
        return _model(self.id, f"{cls}-check" if f"{cls}-check" in MODELS[self.id] else cls)

    # ------------------------------------------------------------------------------------------ data
    def sizes(self, device: str) -> dict[str, Any]:
        if self.kind == "op":
            return dict(SIZES[self.id][device_class(device)])
        m = self.model(device)
        return {"model": m.id, "input": list(m.input_shape), "classes": m.classes, **({"vocab": m.vocab} if m.vocab else {}),
                **({"layers": m.note} if m.note else {})}

    def arrays(self, device: str, check: bool = False) -> dict[str, Array]:
        """Data and initial parameters, identical for every framework: a model's parameters ("<node>.<param>")
        with its batch ("x", "labels"), or a single op's operands (seeded per workload)."""
        if self.kind == "train":
            m = self.check_model(device) if check else self.model(device)
            return {**m.parameters(), **m.batch()}
        s = self.sizes(device)
        rng = np.random.default_rng(sum(map(ord, self.id)))

        def n(*shape: int, fan_in: int | None = None) -> Array:
            scale = 1.0 if fan_in is None else 1.0 / np.sqrt(fan_in)
            return (rng.standard_normal(shape) * scale).astype(np.float32)

        if self.id == "gemm":
            return {"a": n(s["m"], s["k"]), "b": n(s["k"], s["n"])}
        if self.id == "conv2d":
            k = s["kernel"]
            return {"x": n(s["batch"], s["cin"], s["hw"], s["hw"]), "w": n(s["cout"], s["cin"], k, k, fan_in=s["cin"] * k * k)}
        raise KeyError(self.id)

    def param_count(self, device: str) -> int:
        """Trainable parameters the framework's model must have (0 for single-op workloads)."""
        return self.model(device).param_count() if self.kind == "train" else 0

    def parameters(self, device: str) -> list[str]:
        """The trainable parameters' catalog names (a training workload's observe() returns each)."""
        return list(self.model(device).param_shapes()) if self.kind == "train" else []

    def flops(self, device: str) -> float:
        """Floating-point operations per step, counting a multiply-add as 2 and a backward pass as twice the
        forward matmul/conv work (elementwise work is left out, so FLOP/s is a slight underestimate)."""
        if self.kind == "train":
            return self.model(device).flops()
        s = self.sizes(device)
        if self.id == "gemm":
            return 2.0 * s["m"] * s["n"] * s["k"]
        if self.id == "conv2d":
            return 2.0 * s["batch"] * s["cout"] * s["hw"] ** 2 * s["cin"] * s["kernel"] ** 2
        raise KeyError(self.id)

    def describe(self, device: str) -> dict[str, Any]:
        return {"sizes": self.sizes(device), "param_count": self.param_count(device), "flops": self.flops(device)}

    @lru_cache(maxsize=16)  # noqa: B019 - a handful of specs, alive for the process anyway
    def reference_steps(self, device: str, check: bool = True) -> list[dict[str, Any]]:
        """The float64 reference of the first CHECKED_STEPS steps (of the check model): {'loss' (before the step),
        <parameter after the SGD update>...} per step for a training workload; [{'y'}] for a single op."""
        from harness.catalog import reference_models

        arrays = self.arrays(device, check=check)
        if self.kind == "train":
            m = self.check_model(device) if check else self.model(device)
            params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
            return reference_models.training_steps(m, params, arrays, LEARNING_RATE, CHECKED_STEPS)
        return [reference_models.single_op(self.id, arrays)] * CHECKED_STEPS


    @lru_cache(maxsize=16)  # noqa: B019
    def float32_error(self, device: str) -> dict[str, float]:
        """What float32 arithmetic alone does to the check model at its initial parameters ({} for a single op)."""
        from harness.catalog import reference_models

        if self.kind != "train":
            return {}
        arrays = self.arrays(device, check=True)
        params = {k: v for k, v in arrays.items() if k not in ("x", "labels")}
        return reference_models.float32_error(self.check_model(device), params, arrays)


@lru_cache(maxsize=32)
def _model(workload: str, size: str) -> models.Model:
    return MODELS[workload][size]()


WORKLOADS: tuple[WorkloadSpec, ...] = (
    WorkloadSpec("gemm", "GEMM", "op", "C = A B, float32"),
    WorkloadSpec("conv2d", "Conv2D forward", "op", "3x3 convolution, stride 1, padding 1, no bias, NCHW data"),
    WorkloadSpec("mlp_train", "MLP training step", "train", "784-h-h-10 with ReLU, softmax cross-entropy (mean), one SGD step at lr 0.01"),
    WorkloadSpec("cnn_train", "Small CNN training step", "train",
                 "conv3x3(c1)-ReLU-maxpool2-conv3x3(c2)-ReLU-maxpool2-flatten(NCHW order)-dense, cross-entropy, SGD 0.01"),
    WorkloadSpec("lstm_train", "LSTM training step", "train",
                 "one LSTM layer without biases, gates i,f,g,o; last hidden state -> dense; cross-entropy, SGD 0.01"),
    WorkloadSpec("resnet50_train", "ResNet-50 training step", "train",
                 "ResNet-50 (torchvision's v1.5 layout, 25.6 M parameters) on synthetic ImageNet-shaped data: 64x64 "
                 "images, batch 2 on CPU; 224x224, batch 256 on CUDA (checked at batch 4); cross-entropy, SGD 0.01"),
    WorkloadSpec("transformer_train", "Transformer encoder training step", "train",
                 "a BERT-shaped encoder (post-LN, GELU, learned positions) classifying mean-pooled tokens: on CPU 2 "
                 "layers, hidden 128, 4 heads, sequence 32, batch 4; on CUDA BERT-base's 12 layers, hidden 768, 12 "
                 "heads, sequence 128, vocabulary 30522, batch 64 (checked at batch 2); cross-entropy, SGD 0.01"),
    WorkloadSpec("gru_lm_train", "GRU language model training step", "train",
                 "token embedding, one GRU layer, dense over the vocabulary at every step, next-token cross-entropy "
                 "over all tokens, SGD 0.01"),
    WorkloadSpec("vgg_mini_train", "Small VGG training step", "train",
                 "3x3 convolutions with batch normalisation and ReLU in two stages closed by max pooling, global "
                 "average pooling, dense; 32x32 images; cross-entropy, SGD 0.01"),
)

WORKLOADS_BY_ID = {w.id: w for w in WORKLOADS}
