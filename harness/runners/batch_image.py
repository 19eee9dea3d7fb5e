"""The AWS Batch layer: a framework's image plus the harness's host side, for jobs that run the suite in the image.

The framework image (images.build) holds the framework in /opt/venv and the harness source; its entrypoint is the
worker. A Batch job also needs the host side (`python -m harness run` supervises the worker; the batch entrypoint
talks to AWS), whose packages must not go into /opt/venv, where the framework's pins rule. So a thin layer on top adds
a second virtualenv, /opt/host, from the exact pins in containers/batch-host.txt: the host downloads those wheels
once, writes a lock with a sha256 per wheel, and containers/Dockerfile.batch installs them with `--no-index
--require-hashes` in a build with no network, on the same base the framework image was built from (so the venv's
interpreter is the one the image has).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from harness.registry import SOURCE_ROOT, FrameworkInfo, home
from harness.runners.base import EnvironmentBuildError
from harness.runners.images import (
    BuildResult,
    _build_error,
    _image,
    client,
    finish_build,
    flavour,
    image_tag,
    lock_lines,
    remove_stage_images,
)

HOST_REQUIREMENTS = SOURCE_ROOT / "containers" / "batch-host.txt"
BATCH_DOCKERFILE = SOURCE_ROOT / "containers" / "Dockerfile.batch"
BATCH_CONTENT_LABEL = "org.showdown.batch-content"
BASE_LABEL = "org.showdown.base"  # on a framework image: what it was built FROM
# The wheels must suit the image's interpreter (CPython 3.11, glibc Linux on x86_64), not the host's.
WHEEL_TARGET = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                *(arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                                  "manylinux1_x86_64") for arg in ("--platform", tag))]


def host_dir() -> Path:
    """Where the host side's wheels and lock live, keyed by batch-host.txt: a new pin makes a new folder."""
    digest = hashlib.sha256(HOST_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return home() / "images" / f"batch-host-{digest}"


def host_wheels(say: Callable[[str], None] = print) -> Path:
    """The wheels pinned in batch-host.txt, downloaded once (host.lock beside the folder); a ready folder is reused.

    pip runs with this machine's configuration, as pip_isolation leaves it for CPU environments: these are plain
    wheels, pinned exactly and hashed as downloaded, so a configured mirror or wheel folder can serve them."""
    folder = host_dir()
    wheels, ready = folder / "wheels", folder / ".ready"
    if ready.exists():
        return wheels
    if folder.exists():
        shutil.rmtree(folder)  # what an interrupted download left
    wheels.mkdir(parents=True)
    say(f"downloading the batch host side's wheels ({HOST_REQUIREMENTS.name})")
    # --no-deps: batch-host.txt pins the whole closure itself (the image's `pip check` proves it is whole)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
                           *WHEEL_TARGET, "-r", str(HOST_REQUIREMENTS), "-d", str(wheels)], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        raise EnvironmentBuildError(f"downloading the batch host side's wheels failed: {' '.join(tail) or f'pip exited {proc.returncode}'}")
    (folder / "host.lock").write_text("\n".join(lock_lines(wheels)) + "\n")
    ready.write_text(HOST_REQUIREMENTS.read_text())
    return wheels


def batch_tag(info: FrameworkInfo, device: str) -> str:
    return f"showdown/{info.name}:{flavour(device)}-batch"


def build_batch_image(info: FrameworkInfo, device: str, say: Callable[[str], None] = print,
                      nocache: bool = False) -> BuildResult:
    """Build (or find up to date) the Batch layer on the framework's existing image. The build has no network; the
    host stage's intermediate image of this build is removed afterwards, and the image this tag named before if
    nothing else uses it. The framework image is never built here."""
    c = client()
    t0 = time.perf_counter()
    tag, framework_tag = batch_tag(info, device), image_tag(info, device)
    framework = _image(c, framework_tag)
    if framework is None:
        raise EnvironmentBuildError(f"building {tag} needs the image {framework_tag}, which is not on this engine: run "
                                    f"`showdown images build --framework {info.name} --device {device}` first")
    base = (framework.labels or {}).get(BASE_LABEL)
    if not base or _image(c, base) is None:
        named = base or f"it has no {BASE_LABEL} label"
        raise EnvironmentBuildError(f"building {tag} needs the base image {framework_tag} was built from ({named}), "
                                    f"which is not on this engine: rebuild {framework_tag}")
    reused = (host_dir() / ".ready").exists()
    wheels = host_wheels(say)
    lock = wheels.parent / "host.lock"
    digest = hashlib.sha256()
    for part in (framework.id.encode(), BATCH_DOCKERFILE.read_bytes(), lock.read_bytes()):
        digest.update(part + b"\0")
    content = digest.hexdigest()[:24]
    previous = _image(c, tag)
    if previous is not None and not nocache and (previous.labels or {}).get(BATCH_CONTENT_LABEL) == content:
        return BuildResult(tag, previous.id, int(previous.attrs.get("Size", 0)), time.perf_counter() - t0, reused, up_to_date=True)
    build_id = uuid.uuid4().hex
    say(f"building {tag} on {framework_tag} (no network)")
    with tempfile.TemporaryDirectory(prefix="showdown-batch-") as ctx:
        shutil.copy2(BATCH_DOCKERFILE, Path(ctx) / "Dockerfile")
        shutil.copytree(wheels, Path(ctx) / "wheels")
        shutil.copy2(lock, Path(ctx) / "host.lock")
        try:
            # FROM the framework image's id, not its tag: the content hash names that id, so a tag moved meanwhile
            # cannot slip another image under the label
            image, _logs = c.images.build(
                path=ctx, tag=tag, rm=True, forcerm=True, pull=False, nocache=nocache, network_mode="none",
                buildargs={"FRAMEWORK_IMAGE": framework.id, "BASE_IMAGE": base, "CONTENT": content, "BUILD_ID": build_id},
            )
        except Exception as exc:
            raise EnvironmentBuildError(f"building {tag} failed: {_build_error(exc)}") from None
        finally:
            remove_stage_images(c, build_id)
    return finish_build(c, previous, image, tag, t0, reused)
