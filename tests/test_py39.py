"""The worker side runs on Python 3.9 (Debian bullseye's, in the caffe image): a cheap guard on the host that no
3.10+ syntax or standard-library name creeps into the modules the worker imports. The run on 3.9 itself is in
tests/test_caffe.py (the whole suite, and an import of every module listed here, in the bullseye image).

The syntax check is ruff's parser with target-version py39 (match, except*, type parameters...); the rest is an AST
walk for what parses on 3.9 but fails there when it runs: zip(strict=), X | Y outside annotations (isinstance, type
aliases), dataclass(slots=/kw_only=), names the standard library gained after 3.9, and modules without
`from __future__ import annotations` that write X | Y or builtin generics in annotations."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: everything the worker imports inside a framework's environment (harness.worker and what it reaches), and the
#: adapters that run on 3.9
WORKER_SIDE = ["harness/__init__.py", "harness/worker.py", "harness/adapter.py", "harness/environment.py",
               "harness/protocol.py", "harness/results.py", "harness/timing.py", "harness/scale_rank.py", "harness/catalog",
               "harness/probes",
               "frameworks/__init__.py", "frameworks/caffe", "frameworks/caffe2"]
#: standard-library names added after Python 3.9 (module -> names)
NEWER_NAMES = {
    "datetime": {"UTC"}, "enum": {"StrEnum", "ReprEnum", "verify", "member", "nonmember", "global_enum"},
    "itertools": {"pairwise", "batched"}, "contextlib": {"chdir", "aclosing"},
    "typing": {"TypeAlias", "ParamSpec", "Concatenate", "TypeGuard", "Self", "Never", "LiteralString", "assert_never",
               "assert_type", "reveal_type", "Required", "NotRequired", "dataclass_transform", "Unpack", "TypeVarTuple",
               "is_typeddict", "get_overloads", "clear_overloads", "override", "TypeIs", "ReadOnly"},
    "inspect": {"get_annotations"}, "asyncio": {"TaskGroup", "timeout", "Runner"},
    "sys": {"orig_argv", "stdlib_module_names", "exception"}, "os": {"EFD_CLOEXEC", "eventfd", "splice"},
    "types": {"EllipsisType", "NoneType", "NotImplementedType", "UnionType"}, "dataclasses": {"KW_ONLY"},
    "math": {"cbrt", "exp2", "sumprod"}, "metadata": {"packages_distributions"}, "statistics": {"correlation", "covariance", "linear_regression"}, "operator": {"call"}, "hashlib": {"file_digest"},
}
NEWER_MODULES = {"tomllib", "wsgiref.types"}
NEWER_BUILTINS = {"aiter", "anext", "ExceptionGroup", "BaseExceptionGroup", "EncodingWarning"}
TYPE_NAMES = {"int", "float", "str", "bytes", "bool", "list", "dict", "tuple", "set", "frozenset", "type", "object"}


def files() -> list[Path]:
    out: list[Path] = []
    for entry in WORKER_SIDE:
        path = ROOT / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (never evaluated under `from __future__ import annotations`)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        anns: list[ast.AST | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            anns += [node.returns, *(x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs])]
            anns += [a.vararg.annotation if a.vararg else None, a.kwarg.annotation if a.kwarg else None]
        elif isinstance(node, ast.AnnAssign):
            anns.append(node.annotation)
        for ann in anns:
            if ann is not None:
                inside |= {id(n) for n in ast.walk(ann)}
    return inside


def _typeish(node: ast.AST) -> bool:
    return ((isinstance(node, ast.Constant) and node.value is None) or isinstance(node, ast.Subscript)
            or (isinstance(node, ast.Name) and (node.id in TYPE_NAMES or node.id[:1].isupper()))
            or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and _typeish(node.left)))


def problems(path: Path) -> list[str]:
    source = path.read_text()
    tree = ast.parse(source)
    rel = path.relative_to(ROOT) if ROOT in path.parents else path.name
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                 for n in tree.body)
    annotations = _annotation_nodes(tree)
    out = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            kws = {k.arg for k in node.keywords}
            if fname == "zip" and "strict" in kws:
                out.append(f"{where}: zip(strict=) is 3.10+")
            if fname == "dataclass" and kws & {"slots", "kw_only", "match_args", "weakref_slot"}:
                out.append(f"{where}: dataclass({', '.join(sorted(kws))}) is 3.10+")
            if fname in ("isinstance", "issubclass") and len(node.args) == 2 and isinstance(node.args[1], ast.BinOp):
                out.append(f"{where}: {fname}(x, A | B) is 3.10+ (use a tuple)")
            if fname in NEWER_BUILTINS and isinstance(fn, ast.Name):
                out.append(f"{where}: {fname} is 3.10+")
            if fname == "bit_count":
                out.append(f"{where}: int.bit_count is 3.10+")
            if fname in ("format_exception", "print_exception") and len(node.args) == 1 and not node.keywords:
                out.append(f"{where}: traceback.{fname}(exc) with one argument is 3.10+")
            if fname in ("bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right") and "key" in kws:
                out.append(f"{where}: bisect's key= is 3.10+")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in annotations:
            if _typeish(node.left) and _typeish(node.right) and not (isinstance(node.left, ast.Name) and isinstance(node.right, ast.Name)
                                                                      and not (node.left.id in TYPE_NAMES or node.right.id in TYPE_NAMES)):
                out.append(f"{where}: X | Y evaluated at run time is 3.10+ (typing.Optional / Union)")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = {"_dt": "datetime", "dt": "datetime"}.get(node.value.id, node.value.id)
            if node.attr in NEWER_NAMES.get(module, set()):
                out.append(f"{where}: {module}.{node.attr} is newer than 3.9")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                out.append(f"{where}: module {node.module} is 3.11+")
            for alias in node.names:
                if alias.name in NEWER_NAMES.get(node.module, set()):
                    out.append(f"{where}: {node.module}.{alias.name} is newer than 3.9")
        elif isinstance(node, ast.Import):
            out += [f"{where}: module {a.name} is 3.11+" for a in node.names if a.name in NEWER_MODULES]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.AnnAssign)) and not future:
            for n in ast.walk(node):
                if id(n) in annotations and isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
                    out.append(f"{where}: X | Y in an annotation needs `from __future__ import annotations` on 3.9")
                    break
    return out


def test_worker_side_parses_as_python_39() -> None:
    targets = [str(p.relative_to(ROOT)) for p in files()]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--target-version", "py39",
                           "--select", "E9", "--output-format", "concise", *targets], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_worker_side_uses_nothing_newer_than_python_39() -> None:
    found = [p for f in files() for p in problems(f)]
    assert found == []


@pytest.mark.parametrize("snippet, expected", [
    ("zip(a, b, strict=True)", "zip(strict=)"),
    ("isinstance(x, int | str)", "isinstance(x, A | B)"),
    ("Alias = dict[str, int] | None", "X | Y evaluated"),
    ("import datetime as _dt\n_dt.datetime.now(_dt.UTC)", "datetime.UTC"),
    ("from itertools import pairwise", "itertools.pairwise"),
    ("import tomllib", "module tomllib"),
    ("import traceback\ntraceback.format_exception(ValueError())", "with one argument"),
    ("from dataclasses import dataclass\n@dataclass(slots=True)\nclass A:\n    x: int", "dataclass("),
    ("def f(x: int | None) -> None: ...", "needs `from __future__"),
])
def test_the_guard_catches(tmp_path: Path, snippet: str, expected: str) -> None:
    path = tmp_path / "probe.py"
    path.write_text(snippet + "\n")
    assert any(expected in p for p in problems(path)), problems(path)


def test_the_guard_lets_through_what_39_runs(tmp_path: Path) -> None:
    path = tmp_path / "ok.py"
    path.write_text("from __future__ import annotations\nflags = 1 | 2\nmerged = {} | {}\n"
                    "def f(x: int | None) -> dict[str, int] | None: ...\n")
    assert problems(path) == []
