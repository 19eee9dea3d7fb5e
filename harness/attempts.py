"""A framework that cannot run here is recorded by running, again, what was tried to get it.

frameworks/<name>/attempts.toml lists the attempts: each a shell command, what it tries, and whether the row needs it
to succeed. `showdown run --framework <name>` runs them (on the host, each in a scratch folder, with a time limit)
and writes a document of kind "unavailable" holding every command, its exit status and the end of its output, so a
reader can run the same commands and check. The verdict is drawn from what the commands answered, never written down
beforehand: the row is unavailable because the attempts it needs failed, and if they all succeed the document says
that instead (the framework could be installed; what is missing is an adapter). The file also names a recipe (a
Dockerfile or script) that would build the framework where its sources are reachable; it is shown, never run here.

Hosts are elided from the recorded output (`<host>`): a document names no package registry or mirror. The commands
reach them through the machine's own configuration ($DEBIAN_MIRROR is read from apt's sources; pip's default index).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.registry import SOURCE_ROOT, FrameworkInfo

OUTPUT_TAIL = 1500
_URL_HOST = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/@\s]+@)?[^/\s:]+(:\d+)?")
_BARE_HOST = re.compile(r"(?i)\b(?:[a-z0-9-]+\.)+(?:org|com|net|io|dev|edu|gov|info|cloud)\b")


class AttemptsError(Exception):
    """A malformed attempts.toml (one line)."""


@dataclass(frozen=True)
class Attempt:
    what: str
    command: str
    needed: bool
    timeout_s: float


@dataclass(frozen=True)
class Attempts:
    framework: str
    attempts: list[Attempt]
    recipe: Path | None
    recipe_note: str


def path_for(info: FrameworkInfo) -> Path:
    return info.directory / "attempts.toml"


def load(info: FrameworkInfo) -> Attempts:
    path = path_for(info)
    if not path.exists():
        raise AttemptsError(f"{info.name} has no adapter and no {path.name} ({path}): nothing to run or record")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AttemptsError(f"{path}: not valid TOML ({exc})") from None
    items = data.get("attempt")
    if not isinstance(items, list) or not items:
        raise AttemptsError(f"{path}: no [[attempt]] tables")
    out = []
    for i, item in enumerate(items, 1):
        what, command = item.get("what"), item.get("command")
        if not isinstance(what, str) or not what.strip() or not isinstance(command, str) or not command.strip():
            raise AttemptsError(f"{path}: attempt {i} needs a non-empty 'what' and 'command'")
        timeout = item.get("timeout_s", 300)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise AttemptsError(f"{path}: attempt {i}: timeout_s must be a positive number")
        out.append(Attempt(what.strip(), command.strip(), bool(item.get("needed", True)), float(timeout)))
    if not any(a.needed for a in out):
        raise AttemptsError(f"{path}: no attempt is marked needed, so none could show why the row cannot run")
    recipe = data.get("recipe")
    recipe_path = (info.directory / recipe) if isinstance(recipe, str) else None
    if recipe_path is not None and not recipe_path.exists():
        raise AttemptsError(f"{path}: its recipe {recipe} does not exist")
    return Attempts(info.name, out, recipe_path, str(data.get("recipe_note", "")))


def elide_hosts(text: str) -> str:
    """Host names out of recorded output: URLs keep their scheme and path, bare domain names become <host>."""
    return _BARE_HOST.sub("<host>", _URL_HOST.sub(lambda m: f"{m.group(1)}<host>", text))


def debian_mirror() -> str:
    """The mirror this machine's apt uses; empty on a machine without one (the attempts that read it then fail, and
    say so in their output)."""
    from harness.runners.base import EnvironmentBuildError
    from harness.runners.images import _apt_mirror

    try:
        return _apt_mirror()
    except EnvironmentBuildError:
        return ""


def _tail(text: str) -> str:
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("[notice]"))  # pip's upgrade advice
    text = elide_hosts(text.strip())
    return text if len(text) <= OUTPUT_TAIL else "..." + text[-OUTPUT_TAIL:]


def run_one(attempt: Attempt, scratch: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one attempt in its own process group; a command that outlives its limit is killed with its children."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", attempt.command], cwd=scratch, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        raw, _ = proc.communicate(timeout=attempt.timeout_s)
        code: int | None = proc.returncode
        outcome = "succeeded" if code == 0 else f"failed (exit status {code})"
    except subprocess.TimeoutExpired:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raw, _ = proc.communicate()
        code = None
        outcome = f"timed out after {attempt.timeout_s:g} s"
    seconds = round(time.perf_counter() - t0, 2)
    return {"what": attempt.what, "command": attempt.command, "needed": attempt.needed, "outcome": outcome,
            "exit_code": code, "seconds": seconds, "output": _tail(raw.decode("utf-8", "replace"))}


def run_attempts(spec: Attempts, say: Callable[[str], None] = lambda _t: None) -> tuple[str, list[dict[str, Any]]]:
    """Run every attempt in order, in one scratch folder (a later attempt may use what an earlier one made), and draw
    the reason from what they answered."""
    tried = []
    with tempfile.TemporaryDirectory(prefix=f"showdown-attempts-{spec.framework}-") as tmp:
        env = {**os.environ, "PYTHON": sys.executable, "DEBIAN_MIRROR": debian_mirror(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        scratch = Path(tmp)
        for i, attempt in enumerate(spec.attempts, 1):
            say(f"{spec.framework}: attempt {i}/{len(spec.attempts)}: {attempt.what}")
            rec = run_one(attempt, scratch, {**env, "ATTEMPT_DIR": str(scratch)})
            say(f"{spec.framework}:   {rec['outcome']} in {rec['seconds']:.1f} s")
            tried.append(rec)
    return reason(spec, tried), tried


def reason(spec: Attempts, tried: list[dict[str, Any]]) -> str:
    failed = [t for t in tried if t["needed"] and t["exit_code"] != 0]
    if failed:
        return (f"{spec.framework} cannot run here: {len(failed)} of {sum(t['needed'] for t in tried)} needed attempts "
                "failed: " + "; ".join(f"{t['what']} ({t['outcome']})" for t in failed))
    return (f"every needed attempt succeeded, so {spec.framework} may be installable here, but showdown has no adapter "
            "for it yet: nothing was measured")


def recipe_entry(spec: Attempts) -> dict[str, Any] | None:
    """The recipe as a 'tried' entry of its own: shown, with how to run it, and marked as not run here."""
    if spec.recipe is None:
        return None
    rel = spec.recipe.relative_to(SOURCE_ROOT) if spec.recipe.is_relative_to(SOURCE_ROOT) else spec.recipe
    return {"what": f"recipe (not run here): {rel}" + (f": {spec.recipe_note}" if spec.recipe_note else ""),
            "command": None, "needed": False, "outcome": "not run: it needs sources this machine cannot reach",
            "exit_code": None, "seconds": 0.0, "output": None}


def shown_command(command: str) -> str:
    """A command as one line for a terminal summary."""
    one = " ".join(command.split())
    return one if len(one) <= 100 else one[:97] + "..."


