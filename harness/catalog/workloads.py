"""Throughput workloads, defined once: the same shapes, dtypes (float32), initial parameters and data in every
framework, so the only thing that differs is the framework. Sizes depend on the device class (a CPU run on two
cores and a GPU run cannot share sizes and stay meaningful); within a device class they are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray

SIZES: dict[str, dict[str, dict[str, int]]] = {
    "gemm": {"cpu": {"m": 512, "k": 512, "n": 512}, "cuda": {"m": 4096, "k": 4096, "n": 4096}},
    "conv2d": {
        "cpu": {"batch": 8, "cin": 32, "cout": 64, "hw": 32, "kernel": 3},
        "cuda": {"batch": 64, "cin": 64, "cout": 128, "hw": 56, "kernel": 3},
    },
    "mlp_train": {"cpu": {"batch": 64, "d_in": 784, "hidden": 256, "classes": 10},
                  "cuda": {"batch": 1024, "d_in": 784, "hidden": 1024, "classes": 10}},
    "cnn_train": {"cpu": {"batch": 16, "hw": 32, "c1": 16, "c2": 32, "classes": 10},
                  "cuda": {"batch": 256, "hw": 32, "c1": 32, "c2": 64, "classes": 10}},
    "lstm_train": {"cpu": {"batch": 16, "seq": 32, "d_in": 32, "hidden": 64, "classes": 10},
                   "cuda": {"batch": 256, "seq": 64, "d_in": 128, "hidden": 256, "classes": 10}},
}


#: the first step of every workload is checked against its float64 reference before anything is timed:
LOSS_RTOL = 1e-4  # |loss - reference| / |reference|
UPDATE_RTOL = 1e-3  # per parameter, in norm: |after - reference after| <= UPDATE_RTOL |reference update| + rounding
PARAM_ROUNDING = 2.0**-22  # the rounding allowance: 2 float32 ulps of the parameter's norm (a float32 parameter
#                            cannot hold an update smaller than that exactly)
OUTPUT_RTOL = 1e-4  # single-op workloads: |y - reference| / |reference|, in norm
CHECKED_STEPS = 2  # the first step, and the second: a compile path that traces on the first call replays on the next
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class WorkloadSpec:
    id: str
    name: str
    kind: str  # "op" (forward only) or "train" (forward, backward, SGD update)
    description: str
    model: tuple[tuple[Any, ...], ...] = ()  # train: the layers, naming their parameters (reference_models runs it)

    def sizes(self, device: str) -> dict[str, int]:
        return SIZES[self.id]["cuda" if device.startswith("cuda") else "cpu"]

    def arrays(self, device: str) -> dict[str, Array]:
        """Data and initial parameters, identical for every framework (seeded per workload)."""
        s = self.sizes(device)
        rng = np.random.default_rng(sum(map(ord, self.id)))

        def n(*shape: int, fan_in: int | None = None) -> Array:
            scale = 1.0 if fan_in is None else 1.0 / np.sqrt(fan_in)
            return (rng.standard_normal(shape) * scale).astype(np.float32)

        def labels(batch: int) -> Array:
            return rng.integers(0, s["classes"], batch).astype(np.int64)

        if self.id == "gemm":
            return {"a": n(s["m"], s["k"]), "b": n(s["k"], s["n"])}
        if self.id == "conv2d":
            k = s["kernel"]
            return {"x": n(s["batch"], s["cin"], s["hw"], s["hw"]), "w": n(s["cout"], s["cin"], k, k, fan_in=s["cin"] * k * k)}
        if self.id == "mlp_train":
            d, h, c = s["d_in"], s["hidden"], s["classes"]
            return {"x": n(s["batch"], d), "labels": labels(s["batch"]),
                    "w1": n(d, h, fan_in=d), "b1": np.zeros(h, np.float32), "w2": n(h, h, fan_in=h),
                    "b2": np.zeros(h, np.float32), "w3": n(h, c, fan_in=h), "b3": np.zeros(c, np.float32)}
        if self.id == "cnn_train":
            c1, c2, hw = s["c1"], s["c2"], s["hw"]
            flat = c2 * (hw // 4) * (hw // 4)
            return {"x": n(s["batch"], 3, hw, hw), "labels": labels(s["batch"]),
                    "conv1_w": n(c1, 3, 3, 3, fan_in=27), "conv1_b": np.zeros(c1, np.float32),
                    "conv2_w": n(c2, c1, 3, 3, fan_in=c1 * 9), "conv2_b": np.zeros(c2, np.float32),
                    "fc_w": n(flat, s["classes"], fan_in=flat), "fc_b": np.zeros(s["classes"], np.float32)}
        if self.id == "lstm_train":
            d, h = s["d_in"], s["hidden"]
            return {"x": n(s["batch"], s["seq"], d), "labels": labels(s["batch"]),
                    "wx": n(d, 4 * h, fan_in=d), "wh": n(h, 4 * h, fan_in=h),
                    "fc_w": n(h, s["classes"], fan_in=h), "fc_b": np.zeros(s["classes"], np.float32)}
        raise KeyError(self.id)

    def param_count(self, device: str) -> int:
        """Trainable parameters the framework's model must have (0 for single-op workloads)."""
        data = {"x", "labels", "a", "b"} if self.kind == "train" else set(self.arrays(device))
        return int(sum(v.size for k, v in self.arrays(device).items() if k not in data))

    def flops(self, device: str) -> float:
        """Floating-point operations per step, counting a multiply-add as 2 and a backward pass as twice the
        forward matmul/conv work (elementwise work is left out, so FLOP/s is a slight underestimate)."""
        s = self.sizes(device)
        if self.id == "gemm":
            return 2.0 * s["m"] * s["n"] * s["k"]
        if self.id == "conv2d":
            return 2.0 * s["batch"] * s["cout"] * s["hw"] ** 2 * s["cin"] * s["kernel"] ** 2
        if self.id == "mlp_train":
            macs = s["d_in"] * s["hidden"] + s["hidden"] ** 2 + s["hidden"] * s["classes"]
            return 3 * 2.0 * s["batch"] * macs
        if self.id == "cnn_train":
            hw, c1, c2 = s["hw"], s["c1"], s["c2"]
            macs = hw * hw * c1 * 27 + (hw // 2) ** 2 * c2 * c1 * 9 + c2 * (hw // 4) ** 2 * s["classes"]
            return 3 * 2.0 * s["batch"] * macs
        if self.id == "lstm_train":
            macs = s["seq"] * (s["d_in"] + s["hidden"]) * 4 * s["hidden"] + s["hidden"] * s["classes"]
            return 3 * 2.0 * s["batch"] * macs
        raise KeyError(self.id)

    def describe(self, device: str) -> dict[str, Any]:
        return {"sizes": self.sizes(device), "param_count": self.param_count(device), "flops": self.flops(device)}

    def parameters(self, device: str) -> list[str]:
        """The trainable parameters' names (catalog names; a training workload's observe() returns each)."""
        if self.kind != "train":
            return []
        return [k for k in self.arrays(device) if k not in ("x", "labels")]

    def reference_steps(self, device: str) -> list[dict[str, Any]]:
        """The float64 reference of the first CHECKED_STEPS steps: {'loss' (before the step), <parameter after the
        SGD update>...} per step for a training workload; [{'y'}] (the same every step) for a single op."""
        from harness.catalog import reference_models

        arrays = self.arrays(device)
        if self.kind == "train":
            return reference_models.training_steps(self.model, arrays, LEARNING_RATE, CHECKED_STEPS)
        return [reference_models.single_op(self.id, arrays)] * CHECKED_STEPS


WORKLOADS: tuple[WorkloadSpec, ...] = (
    WorkloadSpec("gemm", "GEMM", "op", "C = A B, float32"),
    WorkloadSpec("conv2d", "Conv2D forward", "op", "3x3 convolution, stride 1, padding 1, no bias, NCHW data"),
    WorkloadSpec("mlp_train", "MLP training step", "train",
                 "784-h-h-10 with ReLU, softmax cross-entropy (mean), one SGD step at lr 0.01",
                 (("dense", "w1", "b1"), ("relu",), ("dense", "w2", "b2"), ("relu",), ("dense", "w3", "b3"))),
    WorkloadSpec("cnn_train", "Small CNN training step", "train",
                 "conv3x3(c1)-ReLU-maxpool2-conv3x3(c2)-ReLU-maxpool2-flatten(NCHW order)-dense, cross-entropy, SGD 0.01",
                 (("conv2d", "conv1_w", "conv1_b", 1), ("relu",), ("maxpool2",), ("conv2d", "conv2_w", "conv2_b", 1),
                  ("relu",), ("maxpool2",), ("flatten",), ("dense", "fc_w", "fc_b"))),
    WorkloadSpec("lstm_train", "LSTM training step", "train",
                 "one LSTM layer without biases (frameworks keep one or two bias vectors, so none keeps the "
                 "parameter count equal), gates i,f,g,o; last hidden state -> dense; cross-entropy, SGD 0.01",
                 (("lstm_last", "wx", "wh"), ("dense", "fc_w", "fc_b"))),
)

WORKLOADS_BY_ID = {w.id: w for w in WORKLOADS}
