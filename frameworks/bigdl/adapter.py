"""BigDL adapter: BigDL DLlib 2.4 (bigdl-dllib-spark3) on Spark 3.1 in local mode, through its Python API.

BigDL is a JVM library (Scala, on Spark): every layer, criterion and optimizer lives in the JVM, and the Python
package (bigdl.dllib) drives it over py4j. The adapter uses it as its Python users did:
- `bigdl.dllib.nncontext.init_nncontext` starts the SparkContext (local master) and BigDL's engine;
- the Torch-style nn API (bigdl.dllib.nn.layer): each module's forward(ndarray) and backward(ndarray, ndarray) hand
  NumPy arrays to the JVM and back; set_weights / get_weights move parameters (in BigDL's layouts, mapped to the
  catalog's below) and the module's gradients are read from its parameters() tensors;
- optimizers (bigdl.dllib.optim.optimizer): BigDL's Python API runs them only inside its Optimizer on an RDD of
  samples (which shuffles), so each catalog step is one call of the JVM OptimMethod's own optimize(feval, x), the
  method its Optimizer calls, with a py4j callback as feval returning the catalog's fixed gradient;
- no compile path and no eager tensor API: BigDL's graphs are JVM module graphs (nn.layer.Model, or the Keras-style
  bigdl.dllib.keras with its autograd), built before they run;
- ONNX: the importer BigDL ships (bigdl.dllib.contrib.onnx.load); no exporter.

Every call crosses from Python to the JVM and back (py4j over a loopback socket, arrays pickled both ways), and that
round trip is part of every timed step.

Spark 3.1 was built for Java 8/11; on Java 17 its driver needs the java.base packages it reflects into opened to it:
the adapter passes those --add-opens in spark.driver.extraJavaOptions, which pyspark hands to spark-submit when it
launches the driver JVM.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from harness.adapter import (
    PRECISIONS,
    Adapter,
    AllReduceResult,
    ArrayAPI,
    ImportResult,
    NotMapped,
    OpImpl,
    Unsupported,
    Workload,
    distribution_versions,
    reorder_gates,
    require_parameter,
)
from harness.catalog.models import NORM_EPS
from harness.catalog.ops import Case
from harness.catalog.workloads import LEARNING_RATE

Array = np.ndarray
#: the java.base packages Spark 3.1 and BigDL reach into by reflection, opened for Java 17 (the list Spark 3.3 added
#: to its own launcher when it began supporting Java 17)
JAVA17_OPENS = ("java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
                "java.util.concurrent", "java.util.concurrent.atomic", "sun.nio.ch", "sun.nio.cs", "sun.security.action",
                "sun.util.calendar")
MASTER = "local[2]"
#: BigDL's LSTM (nn.LSTM) computes its four gates from one i2g Linear (4H, in) with a bias and one h2g Linear (4H, H)
#: without, gate blocks in the order input, cell input (g), forget, output (found by running it against the catalog's
#: reference under every order: only this one agrees)
BIGDL_LSTM = "igfo"
CANONICAL_LSTM = "ifgo"
#: BigDL's GRU (nn.GRU): i2g Linear (3H, in) with a bias; h2g Linear (2H, H) for r and z and a Linear (H, H) for the
#: candidate, both without bias; the reset gate multiplies h before the candidate's matmul (the 2014 paper's form)
BIGDL_GRU = "rzn"
FLOAT = "float"


def _java_opens() -> str:
    return " ".join(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in JAVA17_OPENS)


class BigdlAdapter(Adapter):
    name = "bigdl"
    distribution = "bigdl-dllib-spark3"
    distributions = ("bigdl-dllib-spark3", "bigdl-core", "pyspark", "py4j")
    UNMAPPED: ClassVar[dict[str, str]] = {}

    def __init__(self, device: str) -> None:
        super().__init__(device)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        t0 = time.perf_counter()
        # bigdl.dllib.utils.common fixes the file its redire_spark_logs() writes to as <working directory>/bigdl.log
        # when it is imported, and importing bigdl.dllib.nn.keras.layers calls it: the import happens in a scratch
        # directory of its own, so no bigdl.log lands where the worker was started
        cwd = os.getcwd()
        os.chdir(tempfile.mkdtemp(prefix="showdown-bigdl-"))
        try:
            from bigdl.dllib import nncontext
            from bigdl.dllib.nn import criterion as C
            from bigdl.dllib.nn import layer as L
            from bigdl.dllib.optim import optimizer as O
            from bigdl.dllib.utils import common
        finally:
            os.chdir(cwd)

        # BigDL's own SparkConf (its jars on the driver's class path, its engine settings), then the local master and
        # the Java 17 opens added to the JVM options BigDL sets
        conf = common.create_spark_conf()
        opens = " ".join(filter(None, [conf.get("spark.driver.extraJavaOptions", ""), _java_opens()]))
        conf.setMaster(MASTER).setAppName("showdown-bigdl").setAll([
            ("spark.driver.extraJavaOptions", opens), ("spark.executor.extraJavaOptions", opens),
            ("spark.driver.memory", "2g"), ("spark.ui.enabled", "false"), ("spark.driver.host", "127.0.0.1"),
            ("spark.driver.bindAddress", "127.0.0.1")])
        # the default cluster mode ("spark-submit") starts the context from this conf; redirect_spark_log=False keeps
        # Spark's log on stderr (the probe's log) instead of a bigdl.log in the working directory
        home = os.environ.get("PYTHONHOME")
        self.sc = nncontext.init_nncontext(conf, spark_log_level="ERROR", redirect_spark_log=False)
        # init_nncontext sets PYTHONHOME (for Spark's Python workers) to the prefix of this interpreter when it is
        # unset; in a virtualenv that prefix has no standard library, so every Python process started from here
        # afterwards (the scale probe's ranks) would die at start-up: the variable is put back as it was
        if home is None:
            os.environ.pop("PYTHONHOME", None)
        self.jvm_start_s = time.perf_counter() - t0
        self.L, self.C, self.O, self.common = L, C, O, common
        self._callback_port: int | None = None
        import bigdl.dllib as dllib

        self.dllib = dllib

    # ------------------------------------------------------------------------------------------ identity
    def versions(self) -> dict[str, str]:
        out = distribution_versions("bigdl-dllib-spark3", "bigdl-core", "pyspark", "py4j", "numpy", "onnx", "onnxruntime")
        out["spark"] = str(self.sc.version)
        jvm = self.sc._jvm
        out["java"] = str(jvm.java.lang.System.getProperty("java.version"))
        out["scala"] = str(jvm.scala.util.Properties.versionNumberString())
        return out

    def device_available(self) -> tuple[bool, str]:
        if self.device == "cpu":
            return True, ""
        return False, f"BigDL DLlib runs on the JVM's CPU threads (MKL through bigdl-core); it has no {self.device} backend"

    def device_info(self) -> dict[str, Any]:
        conf = self.sc.getConf()
        return {"device": self.device, "master": self.sc.master, "spark": self.sc.version,
                "java": str(self.sc._jvm.java.lang.System.getProperty("java.version")),
                "driver_memory": conf.get("spark.driver.memory", None),
                "jvm_start_s": round(self.jvm_start_s, 2),
                "precision": {"bigdl_type": FLOAT},
                "precision_notes": "every module and optimizer is created with bigdl_type 'float' (float32 tensors in the JVM); "
                                   "BigDL has no TF32 or reduced-precision mode on the CPU"}

    # ------------------------------------------------------------------------------------------ helpers
    def _layer(self, name: str) -> Any:
        return self._lookup(self.L, "bigdl.dllib.nn.layer", name)

    @staticmethod
    def _lookup(module: Any, where: str, name: str) -> Any:
        try:
            return getattr(module, name)
        except AttributeError:
            raise Unsupported(f"{where} has no {name}", looked_up=[f"{where}.{name}"]) from None

    @staticmethod
    def F32(a: Array) -> Array:
        return np.ascontiguousarray(a, dtype=np.float32)

    def _tensors(self, jarray: Any) -> list[Array]:
        """JVM tensors (a Java array of BigDL Tensors) as NumPy, through BigDL's own JTensor conversion."""
        return [np.asarray(self.common.callBigDlFunc(FLOAT, "toJTensor", t).to_ndarray(), np.float32) for t in jarray]

    def _grads(self, module: Any) -> list[Array]:
        """The module's parameter gradients, in the order of get_weights (AbstractModule.parameters()._2)."""
        return self._tensors(module.value.parameters()._2())

    def _set_weights(self, module: Any, weights: Sequence[Array]) -> None:
        current = module.get_weights() or []
        shapes = [tuple(w.shape) for w in current]
        given = [tuple(np.shape(w)) for w in weights]
        if shapes != given:
            raise ValueError(f"layout mapping error: BigDL expects {shapes}, got {given}")
        module.set_weights([self.F32(w) for w in weights])

    def _run(self, case: Case, module: Any, x: Any, to_catalog: Callable[[list[Array]], dict[str, Array]] | None = None,
             outputs: Callable[[Any], dict[str, Array]] | None = None, train: bool = True) -> dict[str, Array]:
        """forward(x), then (when the case has a gradient) backward with the case's cotangent: d/dx from backward's
        return value, every parameter's from the module's gradient tensors mapped by `to_catalog`."""
        module.training(train)
        y = module.forward(x)
        out = outputs(y) if outputs else {"y": np.asarray(y, np.float32)}
        if case.grad_wrt is None:
            return out
        (name,) = case.cotangents
        module.zero_grad_parameters()
        gx = module.backward(x, self.F32(case.cotangents[name]))
        grads = {case.grad_wrt: np.asarray(gx, np.float32)}
        if to_catalog is not None:
            grads |= to_catalog(self._grads(module))
        out["grads"] = grads
        return out

    def _op(self, api: str, run: Callable[[Case], dict[str, Array]], kind: str = "native", note: str = "",
            variant: str | None = None) -> OpImpl:
        return OpImpl(kind, api, run, variant, note)

    # ------------------------------------------------------------------------------------------ layers
    def op_dense(self) -> OpImpl:
        Linear = self._layer("Linear")

        def run(c: Case) -> dict[str, Array]:
            w, b = c.arrays["w"], c.arrays["b"]
            m = Linear(*w.shape)
            self._set_weights(m, [w.T, b])  # BigDL's Linear keeps W as (out, in)
            return self._run(c, m, self.F32(c.arrays["x"]), lambda g: {"w": g[0].T, "b": g[1]})

        return self._op("bigdl.dllib.nn.layer.Linear", run, note="W transposed: BigDL keeps (out, in)")

    def op_conv1d(self) -> OpImpl:
        # BigDL's 1-D convolution (TemporalConvolution) has neither padding nor dilation
        Temporal = self._layer("TemporalConvolution")
        for p in ("dilation", "pad", "padding"):
            if p in _params(Temporal):
                raise NotMapped(f"TemporalConvolution takes {p}: this adapter composes conv1d from the 2-D dilated convolution")
        Dilated = self._layer("SpatialDilatedConvolution")

        def run(c: Case) -> dict[str, Array]:
            w, cfg = c.arrays["w"], c.config
            o, ch, k = w.shape
            m = Dilated(ch, o, k, 1, cfg["stride"], 1, cfg["padding"], 0, cfg["dilation"], 1)
            self._set_weights(m, [w[:, :, None, :], c.arrays["b"]])  # (O, C, 1, K)
            x = self.F32(c.arrays["x"])[:, :, None, :]
            res = self._run(c, m, x, lambda g: {"w": g[0][:, :, 0, :], "b": g[1]},
                            outputs=lambda y: {"y": np.asarray(y, np.float32)[:, :, 0, :]})
            if "grads" in res:
                res["grads"]["x"] = res["grads"]["x"][:, :, 0, :]
            return res

        # the cotangent has the 1-D output's shape; the module sees it with a unit height axis
        return self._op("bigdl.dllib.nn.layer.SpatialDilatedConvolution (1 x K kernel)", self._unit_height(run), kind="composed",
                        note=f"BigDL's TemporalConvolution takes only ({', '.join(_params(Temporal))}): no padding or "
                             "dilation; the 2-D dilated convolution on a unit-height image instead")

    def _unit_height(self, run: Callable[[Case], dict[str, Array]]) -> Callable[[Case], dict[str, Array]]:
        def wrapped(c: Case) -> dict[str, Array]:
            if c.grad_wrt is None:
                return run(c)
            cot = {k: v[:, :, None, :] for k, v in c.cotangents.items()}
            return run(Case(c.arrays, c.config, c.grad_wrt, cot, c.params, c.label))

        return wrapped

    def op_conv2d(self) -> OpImpl:
        Conv = self._layer("SpatialConvolution")

        def run(c: Case) -> dict[str, Array]:
            w, cfg = c.arrays["w"], c.config
            if cfg["dilation"] != 1:
                raise NotMapped("dilated 2-D convolution is SpatialDilatedConvolution")
            o, ch, kh, kw = w.shape
            s, p = cfg["stride"], cfg["padding"]
            m = Conv(ch, o, kw, kh, s, s, p, p)
            self._set_weights(m, [w[None], c.arrays["b"]])  # BigDL: (groups, O / groups, C / groups, kH, kW)
            return self._run(c, m, self.F32(c.arrays["x"]), lambda g: {"w": g[0][0], "b": g[1]})

        return self._op("bigdl.dllib.nn.layer.SpatialConvolution", run,
                        note="weight held as (groups=1, O, C, kH, kW); arguments in BigDL's (width, height) order")

    def op_conv3d(self) -> OpImpl:
        Conv = self._layer("VolumetricConvolution")

        def run(c: Case) -> dict[str, Array]:
            w, cfg = c.arrays["w"], c.config
            o, ch, kt, kh, kw = w.shape
            s, p = cfg["stride"], cfg["padding"]
            m = Conv(ch, o, kt, kw, kh, s, s, s, p, p, p)
            self._set_weights(m, [w, c.arrays["b"]])
            return self._run(c, m, self.F32(c.arrays["x"]), lambda g: {"w": g[0], "b": g[1]})

        return self._op("bigdl.dllib.nn.layer.VolumetricConvolution", run)

    def op_conv_transpose2d(self) -> OpImpl:
        Full = self._layer("SpatialFullConvolution")

        def run(c: Case) -> dict[str, Array]:
            w, cfg = c.arrays["w"], c.config
            ci, co, kh, kw = w.shape
            s, p = cfg["stride"], cfg["padding"]
            m = Full(ci, co, kw, kh, s, s, p, p)
            self._set_weights(m, [w[None], c.arrays["b"]])  # (groups=1, C_in, C_out, kH, kW)
            return self._run(c, m, self.F32(c.arrays["x"]), lambda g: {"w": g[0][0], "b": g[1]})

        return self._op("bigdl.dllib.nn.layer.SpatialFullConvolution", run, note="weight held as (groups=1, C_in, C_out, kH, kW)")

    def op_separable_conv2d(self) -> OpImpl:
        Sep = self._layer("SpatialSeparableConvolution")

        def run(c: Case) -> dict[str, Array]:
            dw, pw, cfg = c.arrays["w_depthwise"], c.arrays["w_pointwise"], c.config
            ch, o = dw.shape[0], pw.shape[0]
            s, p = cfg["stride"], cfg["padding"]
            m = Sep(ch, o, 1, dw.shape[3], dw.shape[2], s, s, p, p)
            # BigDL: depthwise (depth_multiplier, C, kH, kW), pointwise (O, C * depth_multiplier, 1, 1), bias (O)
            self._set_weights(m, [dw.transpose(1, 0, 2, 3), pw, c.arrays["b"]])
            return self._run(c, m, self.F32(c.arrays["x"]),
                             lambda g: {"w_depthwise": g[0].transpose(1, 0, 2, 3), "w_pointwise": g[1], "b": g[2]})

        return self._op("bigdl.dllib.nn.layer.SpatialSeparableConvolution", run,
                        note="depthwise weight held as (depth_multiplier, C, kH, kW)")

    def op_max_pool2d(self) -> OpImpl:
        Pool = self._layer("SpatialMaxPooling")

        def run(c: Case) -> dict[str, Array]:
            k, s, p = c.config["kernel"], c.config["stride"], c.config.get("padding", 0)
            return self._run(c, Pool(k, k, s, s, p, p, to_ceil=False), self.F32(c.arrays["x"]))

        return self._op("bigdl.dllib.nn.layer.SpatialMaxPooling", run, note="to_ceil=False (floor), BigDL's default")

    def op_avg_pool2d(self) -> OpImpl:
        Pool = self._layer("SpatialAveragePooling")

        def run(c: Case) -> dict[str, Array]:
            k, s, p = c.config["kernel"], c.config["stride"], c.config["padding"]
            return self._run(c, Pool(k, k, s, s, p, p, count_include_pad=True), self.F32(c.arrays["x"]))

        return self._op("bigdl.dllib.nn.layer.SpatialAveragePooling", run, note="count_include_pad=True (BigDL's default)")

    def op_global_avg_pool2d(self) -> OpImpl:
        Pool = self._layer("SpatialAveragePooling")

        def run(c: Case) -> dict[str, Array]:
            x = self.F32(c.arrays["x"])
            h, w = x.shape[2:]
            m = Pool(w, h, 1, 1, global_pooling=True)
            cot = {k: v[:, :, None, None] for k, v in c.cotangents.items()}
            res = self._run(Case(c.arrays, c.config, c.grad_wrt, cot, c.params, c.label), m, x,
                            outputs=lambda y: {"y": np.asarray(y, np.float32).reshape(x.shape[:2])})
            return res

        return self._op("bigdl.dllib.nn.layer.SpatialAveragePooling(global_pooling=True)", run,
                        note="BigDL's global pooling keeps (N, C, 1, 1); the unit axes are dropped")

    def op_upsample_nearest2d(self) -> OpImpl:
        Up = self._layer("UpSampling2D")

        def run(c: Case) -> dict[str, Array]:
            s = c.config["scale"]
            return self._run(c, Up([s, s]), self.F32(c.arrays["x"]))

        return self._op("bigdl.dllib.nn.layer.UpSampling2D", run)

    def op_batch_norm(self) -> OpImpl:
        BN = self._layer("SpatialBatchNormalization")

        def run(c: Case) -> dict[str, Array]:
            a = c.arrays
            m = BN(a["gamma"].shape[0], eps=c.config["eps"])
            self._set_weights(m, [a["gamma"], a["beta"]])
            m.set_running_mean(self.F32(a["running_mean"]))
            m.set_running_std(self.F32(a["running_var"]))
            x = self.F32(a["x"])
            m.evaluate()
            y_eval = np.asarray(m.forward(x), np.float32)
            res = self._run(c, m, x, lambda g: {"gamma": g[0], "beta": g[1]}, outputs=lambda y: {"y_train": np.asarray(y, np.float32)})
            res["y_eval"] = y_eval
            return res

        return self._op("bigdl.dllib.nn.layer.SpatialBatchNormalization", run,
                        note="running variance set through set_running_std (which BigDL stores as runningVar); eval after "
                             "evaluate(), training after training()")

    def op_layer_norm(self) -> OpImpl:
        LN = self._layer("LayerNormalization")
        params = _params(LN)

        def run(c: Case) -> dict[str, Array]:
            m = LN(c.arrays["gamma"].shape[0])
            self._set_weights(m, [c.arrays["gamma"], c.arrays["beta"]])
            return self._run(c, m, self.F32(c.arrays["x"]), lambda g: {"gamma": g[0], "beta": g[1]})

        return self._op("bigdl.dllib.nn.layer.LayerNormalization", run,
                        note=f"takes no epsilon ({', '.join(params)}): BigDL fixes it at 1e-6 (the transformer's), where the "
                             "catalog asks 1e-5; on this unit-scale case the difference is far below the tolerance")

    def op_group_norm(self) -> OpImpl:
        looked = [("bigdl.dllib.nn.layer", self.L, "GroupNormalization"), ("bigdl.dllib.nn.layer", self.L, "GroupNorm")]
        keras = importlib.import_module("bigdl.dllib.keras.layers")
        looked += [("bigdl.dllib.keras.layers", keras, "GroupNormalization")]
        raise Unsupported("BigDL has no group normalisation: " + "; ".join(f"{w} has no {n}" for w, m, n in looked if not hasattr(m, n)),
                          looked_up=[f"{w}.{n}" for w, m, n in looked if not hasattr(m, n)])

    def op_local_response_norm(self) -> OpImpl:
        LRN = self._layer("SpatialCrossMapLRN")

        def run(c: Case) -> dict[str, Array]:
            cfg = c.config
            return self._run(c, LRN(cfg["size"], cfg["alpha"], cfg["beta"], cfg["k"]), self.F32(c.arrays["x"]))

        return self._op("bigdl.dllib.nn.layer.SpatialCrossMapLRN", run, note="Torch's convention: alpha divided by size, as the catalog's")

    def op_dropout(self) -> OpImpl:
        Dropout = self._layer("Dropout")

        def run(c: Case) -> dict[str, Array]:
            m = Dropout(c.config["p"], scale=True)
            x = self.F32(c.arrays["x"])
            m.evaluate()
            y_eval = np.asarray(m.forward(x), np.float32)
            res = self._run(c, m, x, outputs=lambda y: {"y_train": np.asarray(y, np.float32)})
            res["y_eval"] = y_eval
            return res

        return self._op("bigdl.dllib.nn.layer.Dropout", run, note="init_p = drop probability, scale=True (inverted dropout)")

    def op_embedding(self) -> OpImpl:
        Lookup = self._layer("LookupTable")

        def run(c: Case) -> dict[str, Array]:
            w = c.arrays["weight"]
            m = Lookup(*w.shape)
            self._set_weights(m, [w])
            idx = c.arrays["indices"].astype(np.float32) + 1  # BigDL's indices are 1-based (Torch's), as float tensors
            m.training(True)
            y = np.asarray(m.forward(idx), np.float32)
            m.zero_grad_parameters()
            m.backward(idx, self.F32(c.cotangents["y"]))
            return {"y": y, "grads": {"weight": self._grads(m)[0]}}

        return self._op("bigdl.dllib.nn.layer.LookupTable", run, note="indices passed 1-based, as BigDL (from Torch) numbers them")

    def _recurrent(self, cell: Any) -> Any:
        return self._layer("Recurrent")().add(cell)

    def op_simple_rnn(self) -> OpImpl:
        Cell, Tanh = self._layer("RnnCell"), self._layer("Tanh")

        def run(c: Case) -> dict[str, Array]:
            a = c.arrays
            h = c.config["hidden"]
            m = self._recurrent(Cell(a["wx"].shape[0], h, Tanh()))
            # RnnCell: i2h Linear (H, in) with bias, h2h Linear (H, H) with bias (the second set to 0)
            self._set_weights(m, [a["wx"].T, a["b"], a["wh"].T, np.zeros_like(a["b"])])
            return self._rnn_result(c, m, lambda g: {"wx": g[0].T, "b": g[1], "wh": g[2].T})

        return self._op("bigdl.dllib.nn.layer.Recurrent + RnnCell(Tanh)", run, note="the cell's second (h2h) bias is set to 0")

    def _rnn_result(self, c: Case, m: Any, to_catalog: Callable[[list[Array]], dict[str, Array]],
                    cell_state: bool = False) -> dict[str, Array]:
        """Recurrent returns every step's h (N, T, H); the last h (and the LSTM's last c, from get_hidden_state) are
        outputs of the catalog too. The gradient is taken through y (the op's only cotangent): backward on the
        output sequence."""
        x = self.F32(c.arrays["x"])
        m.training(True)
        y = np.asarray(m.forward(x), np.float32)
        out: dict[str, Array] = {"y": y, "h": y[:, -1]}
        if cell_state:
            state = m.get_hidden_state()  # a JActivity holding the LSTM's last (h, c) as JTensors
            out["c"] = np.asarray(state.value[1].to_ndarray(), np.float32)
        cot = self.F32(c.cotangents["y"])
        m.zero_grad_parameters()
        gx = np.asarray(m.backward(x, cot), np.float32)
        out["grads"] = {"x": gx, **to_catalog(self._grads(m))}
        return out

    def op_lstm(self) -> OpImpl:
        LSTM = self._layer("LSTM")

        def run(c: Case) -> dict[str, Array]:
            a, order = c.arrays, c.config["gate_order"]
            m = self._recurrent(LSTM(a["wx"].shape[0], c.config["hidden"]))
            wx, wh, b = (reorder_gates(a[k], order, BIGDL_LSTM) for k in ("wx", "wh", "b"))
            self._set_weights(m, [wx.T, b, wh.T])
            return self._rnn_result(c, m, lambda g: {"wx": reorder_gates(g[0].T, BIGDL_LSTM, order), "b": reorder_gates(g[1], BIGDL_LSTM, order),
                                                     "wh": reorder_gates(g[2].T, BIGDL_LSTM, order)}, cell_state=True)

        return self._op("bigdl.dllib.nn.layer.Recurrent + LSTM", run,
                        note=f"gate blocks in BigDL's order {BIGDL_LSTM} (input, cell input, forget, output); one bias, on i2g")

    def op_gru(self) -> OpImpl:
        GRU = self._layer("GRU")

        def run(c: Case) -> dict[str, Array]:
            a, order = c.arrays, c.config["gate_order"]
            h = c.config["hidden"]
            m = self._recurrent(GRU(a["wx"].shape[0], h))
            wx, wh = reorder_gates(a["wx"], order, BIGDL_GRU), reorder_gates(a["wh"], order, BIGDL_GRU)
            # BigDL's GRU has one bias (on i2g) and applies the reset gate before the recurrent matmul: there every
            # recurrent bias adds to its gate's input bias, so bx + bh is that bias and both get its gradient
            b = reorder_gates(a["bx"] + a["bh"], order, BIGDL_GRU)
            self._set_weights(m, [wx.T, b, wh[:, : 2 * h].T, wh[:, 2 * h:].T])

            def to_catalog(g: list[Array]) -> dict[str, Array]:
                gb = reorder_gates(g[1], BIGDL_GRU, order)
                return {"wx": reorder_gates(g[0].T, BIGDL_GRU, order), "bx": gb, "bh": gb.copy(),
                        "wh": reorder_gates(np.concatenate([g[2].T, g[3].T], axis=1), BIGDL_GRU, order)}

            return self._rnn_result(c, m, to_catalog)

        return self._op("bigdl.dllib.nn.layer.Recurrent + GRU", run,
                        note="BigDL's GRU applies the reset gate before the recurrent matmul (reset_before) and has one bias: "
                             "the catalog's bx + bh is loaded into it and its gradient is both biases' gradient")

    def op_bidirectional_rnn(self) -> OpImpl:
        Bi, Cell, Tanh, Join = self._layer("BiRecurrent"), self._layer("RnnCell"), self._layer("Tanh"), self._layer("JoinTable")

        def run(c: Case) -> dict[str, Array]:
            a = c.arrays
            m = Bi(Join(3, 3)).add(Cell(a["x"].shape[2], c.config["hidden"], Tanh()))
            ws: list[Array] = []
            for d in ("fw", "bw"):
                ws += [a[f"wx_{d}"].T, a[f"b_{d}"], a[f"wh_{d}"].T, np.zeros_like(a[f"b_{d}"])]
            self._set_weights(m, ws)

            def to_catalog(g: list[Array]) -> dict[str, Array]:
                out: dict[str, Array] = {}
                for i, d in enumerate(("fw", "bw")):
                    out |= {f"wx_{d}": g[4 * i].T, f"b_{d}": g[4 * i + 1], f"wh_{d}": g[4 * i + 2].T}
                return out

            return self._run(c, m, self.F32(a["x"]), to_catalog)

        return self._op("bigdl.dllib.nn.layer.BiRecurrent(JoinTable(3, 3)) + RnnCell(Tanh)", run,
                        note="merge by JoinTable on the feature axis (BiRecurrent's default merge sums); second biases 0")

    def op_multi_head_attention(self) -> OpImpl:
        Attention = self._layer("Attention")
        m = Attention(8, 2, 0.0)
        shapes = [tuple(w.shape) for w in m.get_weights()]
        if len(shapes) == 4 and all(len(s) == 2 for s in shapes):
            raise Unsupported(f"bigdl.dllib.nn.layer.Attention (the transformer's) holds only four projection matrices "
                              f"{shapes}, no biases: the catalog's attention has a bias on every projection",
                              looked_up=["bigdl.dllib.nn.layer.Attention(8, 2, 0.0).get_weights() (bias tensors)"])
        raise NotMapped(f"bigdl.dllib.nn.layer.Attention holds {shapes}: not mapped")

    def op_prelu(self) -> OpImpl:
        PReLU = self._layer("PReLU")

        def run(c: Case) -> dict[str, Array]:
            alpha = c.arrays["alpha"]
            m = PReLU(alpha.shape[0])
            self._set_weights(m, [alpha])
            return self._run(c, m, self.F32(c.arrays["x"]), lambda g: {"alpha": g[0]})

        return self._op("bigdl.dllib.nn.layer.PReLU", run)

    def _missing(self, what: str, names: Sequence[tuple[str, Any, str]]) -> Unsupported:
        missing = [(w, n) for w, mod, n in names if not hasattr(mod, n)]
        return Unsupported(f"BigDL has no {what}: " + "; ".join(f"{w} has no {n}" for w, n in missing),
                           looked_up=[f"{w}.{n}" for w, n in missing])

    def op_hierarchical_softmax(self) -> OpImpl:
        names = [("bigdl.dllib.nn.layer", self.L, "HierarchicalSoftmax"), ("bigdl.dllib.nn.criterion", self.C, "HierarchicalSoftmax"),
                 ("bigdl.dllib.nn.layer", self.L, "AdaptiveSoftmax"), ("bigdl.dllib.nn.criterion", self.C, "HierarchicalSoftmaxCriterion")]
        if any(hasattr(mod, n) for _, mod, n in names):
            raise NotMapped("a hierarchical softmax exists in bigdl.dllib but is not mapped")
        raise self._missing("hierarchical or adaptive softmax", names)

    def op_ctc_loss(self) -> OpImpl:
        names = [("bigdl.dllib.nn.criterion", self.C, "CTCCriterion"), ("bigdl.dllib.nn.criterion", self.C, "CTCLoss"),
                 ("bigdl.dllib.nn.layer", self.L, "CTC")]
        if any(hasattr(mod, n) for _, mod, n in names):
            raise NotMapped("a CTC criterion exists in bigdl.dllib but is not mapped")
        raise self._missing("CTC loss", names)

    # ------------------------------------------------------------------------------------------ optimizers
    def _ensure_callbacks(self) -> Any:
        """py4j's callback server on an ephemeral loopback port, so the JVM can call a Python feval."""
        gateway = self.common._get_gateway()
        if self._callback_port is None:
            from py4j.java_gateway import JavaObject

            params = gateway.callback_server_parameters
            params.port, params.address, params.eager_load = 0, "127.0.0.1", True
            params.daemonize, params.daemonize_connections = True, True
            params.auth_token = getattr(gateway.gateway_parameters, "auth_token", None)
            gateway.start_callback_server(params)
            port = gateway._callback_server.server_socket.getsockname()[1]
            gateway._callback_server.port = port
            server = JavaObject("GATEWAY_SERVER", gateway._gateway_client)
            server.resetCallbackClient(server.getCallbackClient().getAddress(), port)
            self._callback_port = port
        return gateway

    def _feval(self, gateway: Any, grad: Any) -> Any:
        """A scala.Function1 (Tensor => (loss, gradient)) implemented in Python: returns the fixed gradient (a NumPy
        array, sent to the JVM on each call, or a JVM tensor as it is). The pair is built in the JVM: a Float box
        stays a JVM object only there (py4j turns the boxes it returns into Python numbers), so a one-element float
        array is zipped with the tensor by Scala's own iterators."""
        common = self.common

        class Feval:
            def apply(self, _x: Any) -> Any:
                g = grad if not isinstance(grad, np.ndarray) else \
                    common.callBigDlFunc(FLOAT, "toTensor", common.JTensor.from_ndarray(np.ascontiguousarray(grad, np.float32)))
                loss = gateway.new_array(gateway.jvm.float, 1)
                loss[0] = 0.0
                box = gateway.new_array(gateway.jvm.java.lang.Object, 1)
                box[0] = g
                P = gateway.jvm.scala.Predef
                return P.wrapFloatArray(loss).iterator().zip(P.wrapRefArray(box).iterator()).next()

            class Java:
                implements = ["scala.Function1"]  # noqa: RUF012 -- py4j reads this list

        return Feval()

    def _optimizer(self, api: str, make: Callable[[Any, dict[str, Any]], Any], note: str = "") -> OpImpl:
        Opt = self._lookup(self.O, "bigdl.dllib.optim.optimizer", api.rsplit(".", 1)[1])

        def run(c: Case) -> dict[str, Array]:
            method = make(Opt, c.config)
            gateway = self._ensure_callbacks()
            w = self.common.callBigDlFunc(FLOAT, "toTensor", self.common.JTensor.from_ndarray(self.F32(c.arrays["w"]).copy()))
            history = []
            for g in c.arrays["grads"]:
                method.value.optimize(self._feval(gateway, g), w)  # updates w in place, as BigDL's Optimizer does
                history.append(self._tensors([w])[0])
            return {"w": np.stack(history)}

        return OpImpl("native", api, run, note=(note + "; " if note else "") +
                      "each step is the JVM OptimMethod.optimize(feval, w) that BigDL's Optimizer calls, with a Python "
                      "feval (a py4j callback) returning the catalog's gradient")

    def op_sgd(self) -> OpImpl:
        return self._optimizer("bigdl.dllib.optim.optimizer.SGD", lambda opt, h: opt(learningrate=h["lr"]))

    def op_momentum(self) -> OpImpl:
        return self._optimizer("bigdl.dllib.optim.optimizer.SGD",
                               lambda opt, h: opt(learningrate=h["lr"], momentum=h["mu"], dampening=0.0),
                               note="momentum with dampening 0 set explicitly (BigDL's default dampening equals the momentum)")

    def op_nesterov(self) -> OpImpl:
        return self._optimizer("bigdl.dllib.optim.optimizer.SGD",
                               lambda opt, h: opt(learningrate=h["lr"], momentum=h["mu"], dampening=0.0, nesterov=True),
                               note="SGD(nesterov=True), which needs dampening 0")

    def op_adagrad(self) -> OpImpl:
        def make(opt: Any, h: dict[str, Any]) -> Any:
            require_parameter(opt, "epsilon", "bigdl.dllib.optim.optimizer.Adagrad")
            if h["initial_accumulator"] != 0.0:
                require_parameter(opt, "initial_accumulator_value", "bigdl.dllib.optim.optimizer.Adagrad")
            return opt(learningrate=h["lr"], epsilon=h["eps"])

        return self._optimizer("bigdl.dllib.optim.optimizer.Adagrad", make)

    def op_adadelta(self) -> OpImpl:
        def make(opt: Any, h: dict[str, Any]) -> Any:
            if h["lr"] != 1.0:
                require_parameter(opt, "learningrate", "bigdl.dllib.optim.optimizer.Adadelta")
            return opt(decayrate=h["rho"], epsilon=h["eps"])

        return self._optimizer("bigdl.dllib.optim.optimizer.Adadelta", make,
                               note="BigDL's Adadelta takes no learning rate (w -= dx, i.e. lr 1)")

    def op_rmsprop(self) -> OpImpl:
        return self._optimizer("bigdl.dllib.optim.optimizer.RMSprop",
                               lambda opt, h: opt(learningrate=h["lr"], decayrate=h["rho"], epsilon=h["eps"]),
                               note="decayrate = rho")

    def op_adam(self) -> OpImpl:
        return self._optimizer("bigdl.dllib.optim.optimizer.Adam",
                               lambda opt, h: opt(learningrate=h["lr"], beta1=h["b1"], beta2=h["b2"], epsilon=h["eps"]))

    def op_adamw(self) -> OpImpl:
        names = [("bigdl.dllib.optim.optimizer", self.O, "AdamW"), ("bigdl.dllib.optim.optimizer", self.O, "AdamWeightDecay")]
        if any(hasattr(mod, n) for _, mod, n in names):
            raise NotMapped("an AdamW exists in bigdl.dllib.optim.optimizer but is not mapped")
        Adam = self._lookup(self.O, "bigdl.dllib.optim.optimizer", "Adam")
        try:
            require_parameter(Adam, "weightdecay", "bigdl.dllib.optim.optimizer.Adam")
        except Unsupported as exc:
            raise Unsupported(f"BigDL has no decoupled weight decay: no AdamW or AdamWeightDecay in "
                              f"bigdl.dllib.optim.optimizer, and {exc}",
                              looked_up=[f"{w}.{n}" for w, _, n in names] + exc.looked_up) from None
        raise NotMapped("Adam takes weightdecay: not mapped")

    # ------------------------------------------------------------------------------------------ graphs
    def _autograd(self) -> tuple[Any, Any, Any]:
        A = importlib.import_module("bigdl.dllib.keras.autograd")
        layers = importlib.import_module("bigdl.dllib.keras.layers")
        models = importlib.import_module("bigdl.dllib.keras.models")
        return A, layers, models

    def graph_namespace(self) -> Any:
        """The catalog's F over BigDL's autograd (bigdl.dllib.keras.autograd): symbolic Variables that build a JVM
        graph; sum over every non-batch axis, tanh as the Keras Activation layer, mm for matmul; item: float()."""
        A, layers, _ = self._autograd()

        def total(v: Any) -> Any:
            shape = v.get_output_shape()
            out = v
            for _ in range(len(shape) - 1):
                out = A.sum(out, axis=1)
            return out

        return types.SimpleNamespace(sum=total, tanh=lambda v: layers.Activation("tanh")(v), matmul=A.mm, item=float)

    def graph_notes(self) -> list[str]:
        return ["BigDL's programs are JVM module graphs built before they run: the namespace is its Keras-style "
                "autograd (bigdl.dllib.keras.autograd Variables, one batch row), and value_and_grad builds a "
                "bigdl.dllib.keras.models.Model from the program, then runs forward and backward"]

    def value_and_grad(self, fn: Callable[..., Any], args: Sequence[Array]) -> tuple[float, Array]:
        _, layers, models = self._autograd()
        inputs = [layers.Input(shape=tuple(np.shape(a))) for a in args]
        out = fn(self.graph_namespace(), *inputs)
        model = models.Model(inputs if len(inputs) > 1 else inputs[0], out)
        batch = [self.F32(a)[None] for a in args]
        feed = batch if len(batch) > 1 else batch[0]
        value = np.asarray(model.forward(feed), np.float32)
        grads = model.backward(feed, np.ones_like(value))
        g0 = grads[0] if isinstance(grads, list) else grads
        return float(value.reshape(-1)[0]), np.asarray(g0, np.float32)[0]

    def compile_paths(self) -> list[str]:
        return []

    def compile_path_lookups(self) -> list[str]:
        """What was searched: the Python modules of bigdl.dllib, for a public callable whose name says it compiles,
        traces or JITs a model; what the search found is listed (the Keras-style Model.compile only sets the
        optimizer and loss for fit, so it is no compile path)."""
        found = self._scan_names(("jit", "trace", "script", "ir", "compile"))
        looked = ["bigdl.dllib.* public functions, classes and methods named with the word jit / trace / script / ir / "
                  "compile"]
        return looked + [f"found: {n}" + (" (Keras-style: sets the optimizer, loss and metrics for fit)"
                                           if n.endswith(".compile") else "") for n in found]

    def _scan_names(self, needles: Sequence[str]) -> list[str]:
        """Public functions, classes and methods defined in bigdl.dllib's Python modules whose name contains one of
        `needles` as a word (split at underscores and capitals: 'to_ir' in to_ir_graph, not 'jit' in ColorJitter)."""
        out: list[str] = []
        for info in pkgutil.walk_packages(self.dllib.__path__, "bigdl.dllib."):
            try:
                mod = importlib.import_module(info.name)
            except Exception:
                continue
            for attr, obj in list(vars(mod).items()):
                if attr.startswith("_") or getattr(obj, "__module__", None) != info.name:
                    continue
                names = [attr] + ([f"{attr}.{m}" for m in vars(obj) if not m.startswith("_")] if isinstance(obj, type) else [])
                out += [f"{info.name}.{n}" for n in names if _has_word(n.rsplit(".", 1)[-1], needles)]
        return sorted(set(out))

    def compile(self, fn: Callable[..., Any], path: str) -> Any:
        raise NotMapped(f"the bigdl adapter maps no compile path {path!r}")

    # ------------------------------------------------------------------------------------------ throughput
    def _check_mode(self, mode: str, precision: str) -> None:
        if precision != "fp32":
            if precision not in PRECISIONS:
                raise KeyError(f"unknown precision {precision!r}")
            raise Unsupported(f"BigDL computes in its bigdl_type, 'float' or 'double', on the CPU: no {precision}",
                              looked_up=["bigdl_type ('float' | 'double')", f"{precision} on the CPU"])
        if mode == "compiled":
            raise Unsupported("BigDL offers no compile path for a module", looked_up=self.compile_path_lookups())

    def workload(self, spec: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        self._check_mode(mode, precision)
        L = self.L
        if spec.id == "gemm":
            m = L.MM()
            feed: Any = [self.F32(arrays["a"]), self.F32(arrays["b"])]
            api = "bigdl.dllib.nn.layer.MM"
        elif spec.id == "conv2d":
            w = arrays["w"]
            o, ch, kh, kw = w.shape
            m = L.SpatialConvolution(ch, o, kw, kh, 1, 1, 1, 1, with_bias=False)
            self._set_weights(m, [w[None]])
            feed = self.F32(arrays["x"])
            api = "bigdl.dllib.nn.layer.SpatialConvolution(with_bias=False)"
        else:
            raise NotMapped(f"the bigdl adapter has no single-op workload {spec.id}")
        m.evaluate()

        def step() -> Any:
            return m.forward(feed)

        notes = [f"{api}.forward from Python: the NumPy inputs are sent to the JVM and the output comes back as NumPy "
                 "on every step (the py4j round trip is part of the timed step)"]
        return Workload(step, lambda: None, 0, None, notes, observe=lambda y: {"y": np.asarray(y, np.float32)}, precision=precision)

    def _node(self, node: Any, shapes: dict[str, tuple[int, ...]], p: dict[str, Array], inputs: list[Any]) -> tuple[Any, list[tuple[Any, Callable[[list[Array]], dict[str, Array]]]]]:
        """Build one catalog node as BigDL nn modules called on graph nodes; returns its output node and, for each
        module with parameters, (module, map from its get_weights order to the catalog's names)."""
        L = self.L
        kind, a = node.kind, node.attrs
        x_shape = shapes[node.inputs[0]] if node.inputs else ()
        if kind == "dense":
            w = p["w"]
            lin = L.Linear(w.shape[0], w.shape[1], with_bias="b" in p)
            self._set_weights(lin, [w.T] + ([p["b"]] if "b" in p else []))
            reads = (lin, lambda g: {"w": g[0].T, **({"b": g[1]} if "b" in p else {})})
            if len(x_shape) == 2:
                return lin(inputs[0]), [reads]
            return L.TimeDistributed(lin)(inputs[0]), [reads]
        if kind == "conv2d":
            w = p["w"]
            o, ch, k, _ = w.shape
            s, pad = a["stride"], a["padding"]
            conv = L.SpatialConvolution(ch, o, k, k, s, s, pad, pad, with_bias="b" in p)
            self._set_weights(conv, [w[None]] + ([p["b"]] if "b" in p else []))
            return conv(inputs[0]), [(conv, lambda g: {"w": g[0][0], **({"b": g[1]} if "b" in p else {})})]
        if kind == "batch_norm":
            bn = L.SpatialBatchNormalization(p["gamma"].shape[0], eps=NORM_EPS)
            self._set_weights(bn, [p["gamma"], p["beta"]])
            return bn(inputs[0]), [(bn, lambda g: {"gamma": g[0], "beta": g[1]})]
        if kind == "relu":
            return L.ReLU()(inputs[0]), []
        if kind == "max_pool":
            k, s, pad = a["kernel"], a["stride"], a["padding"]
            return L.SpatialMaxPooling(k, k, s, s, pad, pad)(inputs[0]), []
        if kind == "global_avg_pool":
            _, c, h, w_ = x_shape
            pooled = L.SpatialAveragePooling(w_, h, 1, 1, global_pooling=True)(inputs[0])
            return L.Reshape([c], batch_mode=True)(pooled), []
        if kind == "flatten":
            return L.Reshape([int(np.prod(x_shape[1:]))], batch_mode=True)(inputs[0]), []
        if kind == "add":
            return L.CAddTable()(list(inputs)), []
        if kind == "embedding":
            table = p["table"]
            lookup = L.LookupTable(*table.shape)
            self._set_weights(lookup, [table])
            return lookup(inputs[0]), [(lookup, lambda g: {"table": g[0]})]
        if kind == "lstm_last":
            # the node's LSTM has no biases; BigDL's always trains one on its input-to-gates Linear
            require_parameter(L.LSTM, "with_bias", "bigdl.dllib.nn.layer.LSTM")
            raise NotMapped("nn.LSTM takes with_bias: not mapped")
        if kind == "mean_tokens":
            return L.Mean(2, 3)(inputs[0]), []
        raise NotMapped(f"the bigdl adapter has no mapping for node kind {kind!r} "
                                    f"({_UNMAPPED_KINDS.get(kind, 'not mapped')})")

    def model_workload(self, model: Any, arrays: dict[str, Array], mode: str, precision: str = "fp32") -> Workload:
        """Any catalog model made of the mapped node kinds: an nn.layer.Model (BigDL's graph container) of nn
        modules wired by the nodes' inputs, CrossEntropyCriterion (log-softmax + class NLL, mean over the batch or
        every token), zero_grad_parameters / forward / backward, then BigDL's SGD on the flat parameters."""
        self._check_mode(mode, precision)
        L, C = self.L, self.C
        shapes = model.shapes()
        param_names = list(model.param_shapes())
        inp = L.Input()
        values: dict[str, Any] = {"input": inp}
        readers: list[tuple[str, Any, Callable[[list[Array]], dict[str, Array]]]] = []
        for node in model.nodes:
            prefix = f"{node.name}."
            p = {k[len(prefix):]: arrays[k] for k in param_names if k.startswith(prefix)}
            out, reads = self._node(node, shapes, p, [values[i] for i in node.inputs])
            values[node.name] = out
            got: set[str] = set()
            for module, to_catalog in reads:
                readers.append((prefix, module, to_catalog))
                got |= set(to_catalog([np.zeros(np.shape(w)) for w in module.get_weights()]))
            if got != set(p):
                raise ValueError(f"node {node.name} ({node.kind}): read back {sorted(got)}, the catalog has {sorted(p)}")
        logits = values[model.output]
        classes = shapes[model.output][-1]
        if model.target == "token":
            logits = L.InferReshape([-1, classes])(logits)
        net = L.Model([inp], [logits])
        net.training(True)
        criterion = C.CrossEntropyCriterion(size_average=True)
        x = self.F32(arrays["x"]) if model.input_kind != "tokens" else arrays["x"].astype(np.float32) + 1  # 1-based ids
        labels = arrays["labels"].reshape(-1).astype(np.float32) + 1  # BigDL's class labels are 1-based

        # BigDL trains a module through its flat parameters: getParameters() gathers every weight and gradient into
        # one contiguous tensor each (re-pointing the modules' tensors into them), and its Optimizer hands those to
        # OptimMethod.optimize; the step here does the same with SGD at the catalog's rate. (The module's own
        # update_parameters(lr) updates get_weights() but a SpatialConvolution's next forward still uses its
        # previous weights: tests/test_bigdl.py shows it.)
        flat = net.value.getParameters()
        weights, gradients = flat._1(), flat._2()
        sgd = self.O.SGD(learningrate=LEARNING_RATE)
        gateway = self._ensure_callbacks()
        feval = self._feval(gateway, gradients)

        def step() -> Any:
            net.zero_grad_parameters()
            out = net.forward(x)
            loss = criterion.forward(out, labels)
            net.backward(x, criterion.backward(out, labels))
            sgd.value.optimize(feval, weights)
            return loss

        def observe(loss: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"loss": np.float32(loss)}
            for prefix, module, to_catalog in readers:
                out.update({prefix + k: v for k, v in to_catalog([np.asarray(w, np.float32) for w in module.get_weights()]).items()})
            return out

        count = int(sum(np.size(w) for _, module, _ in readers for w in module.get_weights()))
        kinds = sorted(model.kinds())
        notes = [f"node kinds: {', '.join(kinds)}; each built with BigDL's own nn module, wired into an nn.layer.Model",
                 "the step is net.zero_grad_parameters / forward / CrossEntropyCriterion forward and backward / "
                 "net.backward, then SGD(0.01).optimize on the model's flat parameters (getParameters(), as BigDL's "
                 "Optimizer does; the gradient tensor stays in the JVM); every call sends NumPy to the JVM and back "
                 "(py4j), and that round trip is part of the timed step",
                 "labels (and token ids) passed 1-based, as BigDL numbers classes and rows"]
        return Workload(step, lambda: None, count, None, notes, observe=observe, precision=precision)

    # ------------------------------------------------------------------------------------------ numerics
    def array_api(self) -> ArrayAPI:
        """BigDL's Python API has no array namespace: its tensors live in the JVM and cross to Python as JTensor
        (a storage/shape carrier without arithmetic) that to_ndarray() turns into NumPy; every module hands NumPy
        back. The namespace the Python user computes with is NumPy's."""
        JTensor = self.common.JTensor
        ops = [n for n in ("__add__", "__mul__", "__matmul__", "sum", "exp") if hasattr(JTensor, n)]
        name = (f"numpy (bigdl.dllib hands NumPy arrays back; its JTensor carries storage and shape and has "
                f"{'no arithmetic' if not ops else ', '.join(ops)})")
        return ArrayAPI(name, np, lambda a: np.asarray(a), lambda t: np.asarray(t), getattr(np, "from_dlpack", None))

    # ------------------------------------------------------------------------------------------ scale
    def allreduce(self, rank: int, world: int, host: str, port: int, value: Array) -> AllReduceResult:
        """BigDL's all-reduce is its AllReduceParameter, used inside DistriOptimizer over Spark's block manager, across
        the executors of one Spark application. Two independent processes are two applications: they cannot join."""
        found = self._scan_names(("allreduce", "all reduce", "parameter manager"))
        if found:
            raise NotMapped(f"bigdl.dllib has {', '.join(found)}: not mapped")
        raise Unsupported("BigDL exposes no all-reduce to Python: its AllReduceParameter runs only inside "
                          "DistriOptimizer, among the executors of one Spark application (two processes here are two "
                          "applications, each with its own SparkContext)",
                          looked_up=["bigdl.dllib.* public functions, classes and methods named with the word allreduce / all_reduce / "
                                     "parameter_manager"])

    # ------------------------------------------------------------------------------------------ onnx
    def onnx_export(self, model: Any, path: str, opset: int | None) -> Any:
        found = self._scan_names(("onnx",))
        found = [n for n in found if not n.startswith("bigdl.dllib.contrib.onnx.") and not n.endswith(".load")]
        if found:
            raise NotMapped(f"bigdl.dllib has {', '.join(found)}: not mapped")
        raise Unsupported("BigDL DLlib has no ONNX exporter (bigdl.dllib.contrib.onnx only loads)",
                          looked_up=["bigdl.dllib.* public functions, classes and methods named with the word onnx, outside "
                                     "the loader package bigdl.dllib.contrib.onnx"])

    def onnx_import(self, path: str) -> ImportResult:
        try:
            onnx_pkg = importlib.import_module("bigdl.dllib.contrib.onnx")
        except ImportError as exc:
            raise Unsupported(f"bigdl.dllib.contrib.onnx cannot be imported: {exc}", looked_up=["bigdl.dllib.contrib.onnx"]) from None
        load = self._lookup(onnx_pkg, "bigdl.dllib.contrib.onnx", "load")
        # the loader maps each node through its table of converters (onnx_loader.convert_map) and stops with "not
        # implement yet" at the first op type it lacks: the file's op types are looked up in that table first
        import onnx

        table = self._lookup(importlib.import_module("bigdl.dllib.contrib.onnx.onnx_loader"),
                             "bigdl.dllib.contrib.onnx.onnx_loader", "convert_map")
        ops = list(dict.fromkeys(n.op_type for n in onnx.load(path).graph.node))
        missing = [op for op in ops if op not in table]
        if missing:
            raise Unsupported(f"BigDL's ONNX loader has no converter for {', '.join(missing)} (the file's ops: {', '.join(ops)}; "
                              f"it converts {', '.join(sorted(table))})",
                              looked_up=[f"bigdl.dllib.contrib.onnx.onnx_loader.convert_map[{op!r}]" for op in missing])
        module = load(path)
        module.evaluate()
        version = distribution_versions("bigdl-dllib-spark3")["bigdl-dllib-spark3"]

        def run(x: Array) -> Array:
            return np.asarray(module.forward(self.F32(x)), np.float32)

        return ImportResult("bigdl.dllib.contrib.onnx.load", version, run,
                            ["the loader maps each ONNX node to a BigDL nn module (bigdl.dllib.contrib.onnx.ops_mapping) "
                             "and returns an nn.layer.Model"])


#: node kinds model_workload does not build, and why
_UNMAPPED_KINDS = {
    "gru": "the catalog's gru node applies the reset gate after the recurrent matmul; BigDL's nn.GRU applies it before "
           "(layers/gru agrees with the reset_before reference only)",
    "positional": "no BigDL module adds a learned position table to a batch; the transformer also needs gelu and "
                  "self-attention with projection biases, which BigDL's nn.Attention lacks (layers/multi_head_attention)",
    "self_attention": "BigDL's nn.Attention has no projection biases (layers/multi_head_attention)",
    "gelu": "BigDL's nn API has no GELU module",
    "layer_norm": "BigDL's nn.LayerNormalization fixes epsilon at 1e-6 where the catalog's node uses 1e-5",
}


def _words(name: str) -> list[str]:
    """'to_ir_graph' -> ['to', 'ir', 'graph']; 'ColorJitter' -> ['color', 'jitter']; 'AllReduceParameter' -> ['all',
    'reduce', 'parameter']."""
    import re

    return [w.lower() for part in name.split("_") for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", part)]


def _has_word(name: str, needles: Sequence[str]) -> bool:
    """Whether `name` contains a needle as consecutive words ('all reduce' or 'allreduce' in AllReduceParameter)."""
    words = _words(name)
    joined = {"".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    spaced = {" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    return any(n in spaced or n.replace(" ", "") in joined for n in needles)


def _params(fn: Any) -> list[str]:
    import inspect

    try:
        return [p for p in inspect.signature(fn).parameters if p not in ("self", "bigdl_type")]
    except (TypeError, ValueError):
        return []
