"""Which installed distributions' code ran during a call, and the one rule that makes a converter "built in".

The ONNX criteria of the rubric give 2 to a framework whose exporter (or importer) is built in and 1 to one that
needs a separate package. An adapter does not get to say which: the harness watches the conversion (a profile
hook notes the file of every Python function that runs, and the module of every C function called from Python),
maps each file to the installed distribution that owns it, and applies one rule to every framework alike:

    built in  <=>  every distribution whose code ran is the framework's own distribution, one of the packages it
                   requires (what installing the framework installs), or the ONNX format's own library (onnx,
                   onnxruntime, and what they require) -- so no converter package outside the framework ran.

Code of the Python standard library and of the harness itself is not counted. A conversion that runs in a child
process is counted by the module the child runs (python -m X, import X); one that cannot be told is counted as
outside the framework: what was not observed is never scored as built in.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FORMAT_LIBRARIES = ("onnx", "onnxruntime")
HARNESS_ROOT = Path(__file__).resolve().parent.parent.parent
RULE = ("built in = no code from outside the framework's own distribution, the packages it requires, and the ONNX "
        "format's libraries (onnx, onnxruntime) ran during the conversion")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _top_level_owners() -> dict[str, list[str]]:
    from importlib import metadata

    owners: dict[str, list[str]] = {}
    for dist in metadata.distributions():  # what packages_distributions() does (3.10+), written out for Python 3.9
        name = dist.metadata["Name"]
        if not name:
            continue
        tops = (dist.read_text("top_level.txt") or "").split()
        if not tops:
            tops = [Path(str(f)).parts[0].removesuffix(".py") for f in (dist.files or [])
                    if Path(str(f)).parts and not str(f).startswith("..")]
        for top in dict.fromkeys(t for t in tops if t and t != "__pycache__" and not t.endswith((".dist-info", ".egg-info"))):
            if _canonical(name) not in owners.setdefault(top, []):
                owners[top].append(_canonical(name))
    return owners


@lru_cache(maxsize=1)
def _site_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib") if k in sysconfig.get_paths()}
    roots |= {p for p in sys.path if p.endswith("site-packages") or p.endswith("dist-packages")}
    return tuple(sorted((str(Path(r).resolve()) for r in roots if r), key=len, reverse=True))


@lru_cache(maxsize=1)
def _stdlib_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(str(Path(paths[k]).resolve()) for k in ("stdlib", "platstdlib") if k in paths)


@lru_cache(maxsize=4096)
def _owner_of_file(filename: str) -> str | None:
    """The distribution that installed `filename` ('' for standard library, harness and unknown files)."""
    if not filename or filename.startswith("<"):
        return None
    try:
        path = str(Path(filename).resolve())
    except OSError:
        return None
    if path.startswith(str(HARNESS_ROOT) + "/") and "site-packages" not in path:
        return None
    for root in _site_roots():
        if path.startswith(root + "/"):
            top = path[len(root) + 1 :].split("/", 1)[0]
            top = top.removesuffix(".py").split(".", 1)[0] if top.endswith(".py") or top.endswith(".so") else top
            owners = _top_level_owners().get(top)
            return owners[0] if owners else f"unknown:{top}"
    return None  # the standard library, or code outside any site-packages


def _owner_of_module(module: str | None) -> str | None:
    if not module:
        return None
    owners = _top_level_owners().get(module.split(".", 1)[0])
    return owners[0] if owners else None


_CHILD_EVENTS = {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.system", "os.spawn", "os.fork", "os.forkpty"}
_children: list[list[str]] | None = None  # the watch in progress collects child processes here


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _children is not None and event in _CHILD_EVENTS:
        argv: Any = args[1] if event in ("subprocess.Popen", "os.posix_spawn", "os.exec") and len(args) > 1 else args[:1]
        try:
            _children.append([str(a) for a in (argv if isinstance(argv, (list, tuple)) else [argv])][:32])
        except Exception:
            _children.append([event])


def _child_owners(argv: list[str]) -> set[str]:
    """The distributions a child Python process runs (python -m X, python -c '... import X ...'); the profile hook
    cannot see into another process, so a child whose code cannot be told is counted as outside the framework."""
    text = " ".join(argv)
    modules = re.findall(r"(?:^|\s)-m\s+([A-Za-z_][\w.]*)", text)
    modules += re.findall(r"(?:^|[\s;\"'(])from\s+([A-Za-z_][\w.]*)\s+import", text)
    for names in re.findall(r"(?:^|[\s;\"'(])import\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)", text):
        modules += [n.strip() for n in names.split(",")]
    owners = {o for o in (_owner_of_module(m) for m in modules) if o}
    return owners or {f"unobserved child process ({' '.join(argv)[:80]})"}


_audit_installed = False


def watch(call: Callable[[], T]) -> tuple[T, set[str]]:
    """Run call() and return its result and the distributions whose code ran meanwhile (in any thread started
    with threading after the watch began, too). A child process the call starts is counted by the module it runs
    (python -m X / import X), or, when that cannot be told, as unobserved code outside the framework."""
    global _children, _audit_installed
    if not _audit_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed; this one does nothing outside a watch
        _audit_installed = True
    seen_files: set[str] = set()
    seen_modules: set[str] = set()
    _children = []

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            seen_files.add(frame.f_code.co_filename)
        elif event == "c_call":
            seen_modules.add(getattr(arg, "__module__", None) or "")

    previous = sys.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        result = call()
    finally:
        sys.setprofile(previous)
        threading.setprofile(None)
        children, _children = _children, None
    owners = {o for o in (_owner_of_file(f) for f in seen_files) if o}
    owners |= {o for o in (_owner_of_module(m) for m in seen_modules) if o}
    for argv in children or []:
        owners |= _child_owners(argv)
    return result, owners


@lru_cache(maxsize=64)
def requirement_closure(distributions: tuple[str, ...]) -> frozenset[str]:
    """The distributions and, transitively, everything they require when installed without extras."""
    from importlib import metadata

    todo = [_canonical(d) for d in distributions]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            spec, _, marker = req.partition(";")
            if "extra" in marker:
                continue
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
            if m:
                todo.append(_canonical(m.group(1)))
    return frozenset(seen)


def classify(ran: Iterable[str], framework_distributions: Iterable[str]) -> dict[str, Any]:
    """Apply the rule to the distributions whose code ran."""
    from importlib import metadata

    own = requirement_closure(tuple(sorted(_canonical(d) for d in framework_distributions)))
    fmt = requirement_closure(FORMAT_LIBRARIES)
    ran = sorted(set(ran))
    outside = [d for d in ran if d not in own and d not in fmt and not d.startswith("unknown:")]  # unobserved children count

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "builtin": not outside,
        "rule": RULE,
        "code_ran_from": {d: version(d) for d in ran if not d.startswith("unknown:")},
        "outside_the_framework": outside,
        "framework_distributions": sorted(_canonical(d) for d in framework_distributions),
    }
