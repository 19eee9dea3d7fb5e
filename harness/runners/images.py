"""Per-framework Docker images, built hermetically from the same pins as the virtualenvs.

The host resolves the framework's pinned requirements into wheels (with pip, in the framework's own virtualenv, so
sdists are built the way the venv runner builds them), writes a lock with a sha256 per wheel, and hands Docker a
context with the wheels, the lock, the harness source and `containers/Dockerfile`. The image installs with
`--no-index --require-hashes`, and the build runs with no network at all (the Dockerfile fails it otherwise); the
Debian packages a framework needs come from a separate system image whose build is the only one with network. Everything talks to the Docker Engine through its
API (the `docker` Python SDK), not the CLI.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.registry import SOURCE_ROOT, FrameworkInfo, home
from harness.runners.base import EnvironmentBuildError
from harness.runners.locking import lock_path, pip_isolation
from harness.runners.venv import VenvRunner

DOCKERFILE = SOURCE_ROOT / "containers" / "Dockerfile"
SYSTEM_DOCKERFILE = SOURCE_ROOT / "containers" / "Dockerfile.system"
DEFAULT_BASE = "python:3.11-slim"
LOCAL_BASE = "showdown/debian:bookworm-py3.11"
LABEL = "org.showdown.framework"
CONTENT_LABEL = "org.showdown.content"
BUILD_LABEL = "org.showdown.build"
STAGE_LABEL = "org.showdown.stage"


@dataclass(frozen=True)
class Release:
    """A Debian release `showdown images base` can build: the Python it ships and the glibc its wheels must fit."""

    name: str
    python: str
    glibc: tuple[int, int]
    tag: str


#: the local Debian bases; a row with image_base names one of their tags (bullseye: frameworks Debian dropped after it)
RELEASES = {r.name: r for r in (Release("bookworm", "3.11", (2, 36), LOCAL_BASE),
                                Release("bullseye", "3.9", (2, 31), "showdown/debian:bullseye-py3.9"))}


class DockerUnavailable(Exception):
    """No Docker engine answers; the message says how to get one."""


def client() -> Any:
    try:
        import docker
    except ImportError:
        raise DockerUnavailable("the docker Python package is not installed (pip install -e '.[docker]')") from None
    try:
        c = docker.from_env(timeout=600)
        c.ping()
    except Exception as exc:
        raise DockerUnavailable(f"no Docker engine answers ({str(exc)[:120]}); start dockerd or set DOCKER_HOST") from None
    return c


def flavour(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def image_tag(info: FrameworkInfo, device: str) -> str:
    return f"showdown/{info.name}:{flavour(device)}"


@dataclass
class BuildResult:
    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    context_reused: bool
    up_to_date: bool = False  # the image was already built from the same content: nothing was built


_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def lock_lines(wheels: Path) -> list[str]:
    """`name==version --hash=sha256:...` for every wheel, sorted: the image installs exactly these files."""
    lines = []
    for whl in sorted(wheels.glob("*.whl")):
        m = _WHEEL.match(whl.name)
        if not m:
            raise EnvironmentBuildError(f"cannot read name and version from wheel file name {whl.name}")
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        lines.append(f"{m['name'].replace('_', '-').lower()}=={m['version']} --hash=sha256:{digest}")
    return lines


def release_of(tag: str) -> Release | None:
    return next((r for r in RELEASES.values() if r.tag == tag), None)


def system_site_packages(info: FrameworkInfo) -> bool:
    """Whether the image's virtualenv must see the system's Python packages: when the framework's Debian packages
    include Python modules (python3-*), as Caffe's bindings are."""
    return any(p.startswith("python3-") for p in info.system_packages())


def wheel_platforms(glibc: tuple[int, int], machine: str | None = None) -> list[str]:
    """pip --platform values for a glibc: every manylinux tag up to it (and the legacy aliases), for this machine."""
    import platform

    arch = machine or platform.machine()
    tags = [f"manylinux_{glibc[0]}_{minor}_{arch}" for minor in range(glibc[1], 4, -1)]
    return tags + [f"manylinux{alias}_{arch}" for alias in ("2014", "2010", "1")]


def build_context(info: FrameworkInfo, device: str, say: Callable[[str], None]) -> tuple[Path, bool]:
    """A build context keyed by the requirements' hash; the wheels are resolved once and reused after that."""
    release = release_of(info.image_base) if info.image_base else None
    if release is not None and release.python != "3.11":
        return _foreign_python_context(info, device, release, say)
    venv = VenvRunner()
    env_dir = venv.env_dir(info, device)
    ctx = home() / "images" / f"{env_dir.name}"
    ready = ctx / ".ready"
    reused = ready.exists()
    if not reused:
        interp = venv.prepare(info, device, say)  # the framework's own env: it builds sdists as the venv did
        if ctx.exists():
            shutil.rmtree(ctx)
        wheels = ctx / "wheels"
        wheels.mkdir(parents=True)
        say(f"resolving {info.name} ({flavour(device)}) into wheels for the image")
        cmd = [interp.argv[0], "-m", "pip", "wheel", "--disable-pip-version-check", *pip_isolation(device), "-q", "-w", str(wheels)]
        if info.build_requirements() is not None:
            cmd.append("--no-build-isolation")
        cmd += ["-r", str(info.requirements(device))]
        lock = lock_path(info, device)
        if lock.exists():
            cmd += ["-c", str(lock)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentBuildError(f"resolving wheels for {info.name} failed: {proc.stderr.strip().splitlines()[-1:]}")
        (ctx / "requirements.lock").write_text("\n".join(lock_lines(wheels)) + "\n")
        ready.write_text(info.requirements(device).read_text())
    _copy_source(ctx)
    return ctx, reused


def _foreign_python_context(info: FrameworkInfo, device: str, release: Release, say: Callable[[str], None]) -> tuple[Path, bool]:
    """The context of a framework whose image has another Python than the host (Debian bullseye's 3.9): it has no
    virtualenv of its own here, so pip on the host downloads wheels built for that Python and the release's glibc
    (binary only: nothing is built for a Python the host does not run)."""
    import sys

    req = info.requirements(device)
    lock = lock_path(info, device)
    platforms = wheel_platforms(release.glibc)
    key = hashlib.sha256("\0".join([req.read_text(), lock.read_text() if lock.exists() else "", release.python,
                                     *platforms]).encode()).hexdigest()[:12]
    ctx = home() / "images" / f"{info.name}-{flavour(device)}-py{release.python.replace('.', '')}-{key}"
    ready = ctx / ".ready"
    reused = ready.exists()
    if not reused:
        if ctx.exists():
            shutil.rmtree(ctx)
        wheels = ctx / "wheels"
        wheels.mkdir(parents=True)
        say(f"downloading {info.name}'s wheels for Python {release.python} (Debian {release.name}) for the image")
        abi = "cp" + release.python.replace(".", "")
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", *pip_isolation(device), "-q",
               "--python-version", release.python, "--implementation", "cp", "--abi", abi,
               *(arg for p in platforms for arg in ("--platform", p)), "--only-binary=:all:", "-d", str(wheels),
               "-r", str(req)]
        if lock.exists():
            cmd += ["-c", str(lock)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            err = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("WARNING")]
            raise EnvironmentBuildError(f"downloading {abi} wheels for {info.name} failed: {err[-1:]}")
        (ctx / "requirements.lock").write_text("\n".join(lock_lines(wheels)) + "\n")
        ready.write_text(req.read_text())
    _copy_source(ctx)
    return ctx, reused


def _copy_source(ctx: Path) -> None:
    """The harness source (small) is copied fresh each time; unchanged files keep Docker's layer cache valid."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in ("harness", "frameworks"):
        target = ctx / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(SOURCE_ROOT / name, target, ignore=ignore)
    shutil.copy2(DOCKERFILE, ctx / "Dockerfile")


def framework_version(info: FrameworkInfo, device: str) -> str:
    """The version pinned on the first requirement line: by convention, the framework itself; for a framework from
    a Debian release's packages, its first Debian package and the release."""
    release = release_of(info.image_base) if info.image_base else None
    if release is not None and info.system_packages():
        return f"{info.system_packages()[0]} (Debian {release.name})"
    for line in info.requirements(device).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            return line.partition("==")[2].strip() or "unpinned"
    return "unknown"


def _image(c: Any, ref: str) -> Any | None:
    try:
        return c.images.get(ref)
    except Exception:
        return None


def content_hash(ctx: Path, base_id: str, flavour_name: str, extra: str = "") -> str:
    """What an image is built from: the Dockerfile, the lock, every source file, the base image, the flavour. An
    image labelled with the same hash is up to date and is not built again."""
    digest = hashlib.sha256()
    for part in (base_id, flavour_name, extra):
        digest.update(part.encode() + b"\0")
    for path in sorted([ctx / "Dockerfile", ctx / "requirements.lock", *(ctx / "harness").rglob("*"), *(ctx / "frameworks").rglob("*")]):
        if path.is_file():
            digest.update(str(path.relative_to(ctx)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def system_image(c: Any, base: str, packages: list[str], say: Callable[[str], None], nocache: bool = False) -> str:
    """The base image plus the Debian packages a framework needs, built from containers/Dockerfile.system: the only
    build with network (for apt), kept and reused while the base and the package list are unchanged."""
    base_image = _image(c, base)
    if base_image is None:
        raise EnvironmentBuildError(f"the base image {base!r} is not on this engine (`showdown images base` builds a local one)")
    key = hashlib.sha256((base_image.id + "\0" + " ".join(sorted(packages))).encode()).hexdigest()[:16]
    tag = f"showdown/system:{key}"
    if not nocache and _image(c, tag) is not None:
        return tag
    say(f"building {tag}: {base} with Debian packages {' '.join(packages)} (apt only, with network)")
    with tempfile.TemporaryDirectory(prefix="showdown-system-") as tmp:
        shutil.copy2(SYSTEM_DOCKERFILE, Path(tmp) / "Dockerfile")
        try:
            c.images.build(path=tmp, tag=tag, rm=True, forcerm=True, pull=False, nocache=nocache, network_mode="host",
                           buildargs={"BASE_IMAGE": base, "APT_PACKAGES": " ".join(packages)})
        except Exception as exc:
            raise EnvironmentBuildError(f"building {tag} (apt: {' '.join(packages)}) failed: {_build_error(exc)}") from None
    return tag


def _build_error(exc: Exception) -> str:
    log = getattr(exc, "build_log", None) or []
    tail = " | ".join(str(chunk.get("stream", chunk.get("error", ""))).strip() for chunk in list(log)[-4:] if isinstance(chunk, dict))
    return f"{str(exc)[:200]} {tail[:300]}".strip()


def remove_stage_images(c: Any, build_id: str) -> int:
    """Remove the install stage's image of one build (and its now unused layers); nothing else."""
    removed = 0
    for img in c.images.list(all=True, filters={"label": [f"{BUILD_LABEL}={build_id}", f"{STAGE_LABEL}=install"]}):
        try:
            c.images.remove(img.id, force=False, noprune=False)
            removed += 1
        except Exception:
            pass
    return removed


def build(info: FrameworkInfo, device: str, base: str, say: Callable[[str], None], nocache: bool = False) -> BuildResult:
    """Build (or find up to date) the framework's image. The build itself has no network (containers/Dockerfile
    checks it); Debian packages come from a separate system image (system_image). Afterwards the install stage's
    intermediate image of this build is removed, and the image this tag named before if nothing else uses it;
    no other image and no build cache is touched."""
    c = client()
    t0 = time.perf_counter()
    if info.image_base:  # the row's own base (e.g. Debian bullseye for a framework only that release packages)
        base = info.image_base
        if _image(c, base) is None:
            release = release_of(base)
            how = f"`showdown images base --release {release.name}`" if release else "`showdown images base`"
            raise EnvironmentBuildError(f"{info.name} is built on {base}, which is not on this engine: build it with {how}")
    ctx, reused = build_context(info, device, say)
    tag = image_tag(info, device)
    apt = info.system_packages()
    base_for_image = system_image(c, base, apt, say, nocache) if apt else base
    base_image = _image(c, base_for_image)
    if base_image is None:
        raise EnvironmentBuildError(f"building {tag} failed: the base image {base!r} is not on this engine "
                                    "(`showdown images base` builds a local one)")
    content = content_hash(ctx, base_image.id, flavour(device), " ".join(apt))
    previous = _image(c, tag)
    if previous is not None and not nocache and (previous.labels or {}).get(CONTENT_LABEL) == content:
        return BuildResult(tag, previous.id, int(previous.attrs.get("Size", 0)), time.perf_counter() - t0, reused, up_to_date=True)
    build_id = uuid.uuid4().hex
    say(f"building {tag} from {base_for_image} (no network)")
    try:
        image, _logs = c.images.build(
            path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False, nocache=nocache, network_mode="none",
            buildargs={"BASE_IMAGE": base_for_image, "FRAMEWORK": info.name, "FLAVOUR": flavour(device),
                       "VENV_OPTIONS": "--system-site-packages" if system_site_packages(info) else "",
                       "FRAMEWORK_VERSION": framework_version(info, device), "BUILD_ID": build_id, "CONTENT": content},
        )
    except Exception as exc:
        raise EnvironmentBuildError(f"building {tag} failed: {_build_error(exc)}") from None
    finally:
        remove_stage_images(c, build_id)
    return finish_build(c, previous, image, tag, t0, reused)


def finish_build(c: Any, previous: Any, image: Any, tag: str, t0: float, reused: bool) -> BuildResult:
    """After a build: remove the image this tag named before, if nothing else uses it (a container or another tag
    keeps it), and say what was built."""
    if previous is not None and previous.id != image.id:
        try:
            c.images.remove(previous.id, force=False, noprune=False)
        except Exception:
            pass
    return BuildResult(tag, image.id, int(image.attrs.get("Size", 0)), time.perf_counter() - t0, reused)


def describe(image: Any) -> dict[str, Any]:
    labels = image.labels or {}
    return {
        "id": image.id, "tags": list(image.tags), "size_bytes": int(image.attrs.get("Size", 0)),
        "created": image.attrs.get("Created"), "framework": labels.get(LABEL), "flavour": labels.get("org.showdown.flavour"),
        "framework_version": labels.get("org.showdown.framework-version"), "base": labels.get("org.showdown.base"),
        "repo_digests": list(image.attrs.get("RepoDigests") or []),
        "batch": labels.get("org.showdown.batch") == "1",  # the AWS Batch layer on top (runners/batch_image.py)
    }


def list_images() -> list[dict[str, Any]]:
    c = client()
    return [describe(img) for img in c.images.list(filters={"label": LABEL})]


def base_image(tag: str | None = None, mirror: str | None = None, say: Callable[[str], None] = print,
               release: str = "bookworm") -> str:
    """Build a Debian image (bookworm with Python 3.11 by default; bullseye with Python 3.9 for frameworks that exist
    only as that release's packages) from Debian's packages (debootstrap, then import): for engines that cannot pull
    from a registry."""
    if release not in RELEASES:
        raise EnvironmentBuildError(f"unknown Debian release {release!r}; known: {', '.join(RELEASES)}")
    tag = tag or RELEASES[release].tag
    c = client()
    if shutil.which("debootstrap") is None:
        raise EnvironmentBuildError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise EnvironmentBuildError("debootstrap needs root")
    mirror = mirror or _apt_mirror()
    with tempfile.TemporaryDirectory(prefix="showdown-base-") as tmp:
        root = Path(tmp) / "rootfs"
        say(f"debootstrap {release} from {mirror} (a few minutes)")
        proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                               release, str(root), mirror], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentBuildError(f"debootstrap failed: {(proc.stdout + proc.stderr).strip().splitlines()[-1:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        repo, _, version = tag.partition(":")
        say(f"importing {tag}")
        c.api.import_image_from_file(str(archive), repository=repo, tag=version or "latest",
                                     changes=['CMD ["python3"]', "ENV LANG=C.UTF-8"])
    return tag


def _apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (so the base image comes from where the host's packages do)."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.exists():
            for line in path.read_text().splitlines():
                line = line.strip()
                if line.startswith("URIs:") and "security" not in line:
                    return line.split()[1]
                if line.startswith("deb ") and "security" not in line:
                    return line.split()[1]
    raise EnvironmentBuildError("no Debian mirror in apt's sources (/etc/apt/sources.list.d/debian.sources or "
                                "/etc/apt/sources.list): debootstrap needs one (pass mirror=...)")
