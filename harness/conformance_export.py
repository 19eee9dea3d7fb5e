"""Convert ONNX's backend node tests into the conformance cache (run by harness.conformance inside the small virtualenv
that holds the pinned onnx release whose package still ships them; it imports onnx and NumPy only, nothing of the
harness).

    python conformance_export.py DEST

For every folder under onnx/backend/test/data/node/ with a model.onnx and test_data_set_0, DEST/<case>/ gets the
model file and data.npz (in_<i>, out_<i>; a sequence's items as in_<i>.<j>), and DEST/manifest.json one entry per
case: the model's default-domain opset, its operators, how each input and output is laid out, and, when a value
cannot be held as a plain NumPy array (bfloat16, float8, 4-bit types, maps), why the case is left out. Strings are
stored as unicode arrays (.npz without pickles, so any NumPy reads them back).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

PLAIN_KINDS = "biufcU"  # NumPy kinds any NumPy stores and loads in .npz without pickling


def _plain(value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:  # ONNX strings
        arr = arr.astype(str)
    if arr.dtype.kind not in PLAIN_KINDS or arr.dtype.names is not None:  # ONNX's float8/int4/bfloat16 are records
        raise TypeError(f"a value of dtype {arr.dtype} has no plain NumPy form")
    return arr


#: ONNX element types NumPy has no dtype for (onnx 1.18 hands them out as raw integers or record dtypes)
NO_NUMPY_TYPE = {getattr(onnx.TensorProto, name): name for name in (
    "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0", "UINT4", "INT4",
    "FLOAT4E2M1", "UINT2", "INT2") if hasattr(onnx.TensorProto, name)}


def _declared(type_proto: onnx.TypeProto) -> None:
    """Refuse a value the graph declares as (or as holding) an element type NumPy lacks."""
    while True:
        if type_proto.HasField("tensor_type"):
            elem = type_proto.tensor_type.elem_type
            if elem in NO_NUMPY_TYPE:
                raise TypeError(f"a value of ONNX type {NO_NUMPY_TYPE[elem]} has no plain NumPy form")
            return
        if type_proto.HasField("sequence_type"):
            type_proto = type_proto.sequence_type.elem_type
        elif type_proto.HasField("optional_type"):
            type_proto = type_proto.optional_type.elem_type
        else:
            return


def _load(path: str, type_proto: onnx.TypeProto, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Read one .pb the way ONNX's backend runner does (by the graph's declared type) into `arrays`; its layout."""
    _declared(type_proto)
    with open(path, "rb") as fh:
        content = fh.read()
    if type_proto.HasField("optional_type"):
        optional = onnx.OptionalProto()
        optional.ParseFromString(content)
        value = numpy_helper.to_optional(optional)
        if value is None:
            return {"kind": "none"}
        if isinstance(value, list):
            for j, item in enumerate(value):
                arrays[f"{key}.{j}"] = _plain(item)
            return {"kind": "sequence", "length": len(value)}
        arrays[key] = _plain(value)
        return {"kind": "tensor"}
    if type_proto.HasField("sequence_type"):
        sequence = onnx.SequenceProto()
        sequence.ParseFromString(content)
        items = numpy_helper.to_list(sequence)
        for j, item in enumerate(items):
            arrays[f"{key}.{j}"] = _plain(item)
        return {"kind": "sequence", "length": len(items)}
    if type_proto.HasField("tensor_type"):
        tensor = onnx.TensorProto()
        tensor.ParseFromString(content)
        arrays[key] = _plain(numpy_helper.to_array(tensor))
        return {"kind": "tensor"}
    raise TypeError(f"{os.path.basename(path)}: a value of a type the backend runner does not load either (map, sparse)")


def export_case(case_dir: str, dest: str) -> dict[str, Any]:
    name = os.path.basename(case_dir)
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    ops = sorted({(f"{n.domain}." if n.domain not in ("", "ai.onnx") else "") + n.op_type for n in model.graph.node})
    entry: dict[str, Any] = {"opset": opset, "ops": ops, "inputs": [], "outputs": []}
    data = os.path.join(case_dir, "test_data_set_0")
    arrays: dict[str, np.ndarray] = {}
    try:
        inputs = sorted(glob.glob(os.path.join(data, "input_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
        outputs = sorted(glob.glob(os.path.join(data, "output_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
        for i, path in enumerate(inputs):
            entry["inputs"].append(_load(path, model.graph.input[i].type, f"in_{i}", arrays))
        for i, path in enumerate(outputs):
            entry["outputs"].append(_load(path, model.graph.output[i].type, f"out_{i}", arrays))
    except (TypeError, ValueError, IndexError) as exc:
        entry["skip"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        entry["inputs"], entry["outputs"] = [], []
        arrays = {}
    os.makedirs(os.path.join(dest, name), exist_ok=True)
    shutil.copyfile(os.path.join(case_dir, "model.onnx"), os.path.join(dest, name, "model.onnx"))
    np.savez(os.path.join(dest, name, "data.npz"), **arrays)  # type: ignore[arg-type]
    return entry


def main(dest: str) -> int:
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    if not os.path.isdir(root):
        print(f"onnx {onnx.__version__} ships no node tests (looked in {root})", file=sys.stderr)
        return 2
    count = export_all(root, dest)
    print(f"{count} cases from onnx {onnx.__version__}")
    return 0


def export_all(root: str, dest: str) -> int:
    """Every case folder under `root` into `dest`, then the manifest; how many cases."""
    cases: dict[str, Any] = {}
    for name in sorted(os.listdir(root)):
        case_dir = os.path.join(root, name)
        if os.path.isfile(os.path.join(case_dir, "model.onnx")) and os.path.isdir(os.path.join(case_dir, "test_data_set_0")):
            cases[name] = export_case(case_dir, dest)
    manifest = {"onnx_version": onnx.__version__, "source": root, "rtol": 1e-3, "atol": 1e-7, "cases": cases}
    with open(os.path.join(dest, "manifest.json.tmp"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    os.replace(os.path.join(dest, "manifest.json.tmp"), os.path.join(dest, "manifest.json"))
    return len(cases)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
