"""The docker runner: the worker runs in the framework's image, through the Docker Engine API.

The container has no network, runs as a non-root user with every capability dropped and no-new-privileges, on a
read-only root file system with a writable /tmp, under CPU (below the whole machine), memory and process-count
limits; the run's work folder is its only writable mount, and records come back through it. The host never trusts
what the container left there: it reads and writes that folder only through harness.safefs (no link is followed,
nothing outside the folder is opened). GPUs are passed only when a CUDA device is asked for, and the engine must
have the NVIDIA runtime for that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import safefs
from harness.registry import FrameworkInfo
from harness.runners import images
from harness.runners.base import EnvironmentBuildError, Interpreter, Runner

CONTAINER_WORKDIR = "/work"
RUN_LABEL = "org.showdown.run"
PIDS_LIMIT = 4096  # a compiler's worker pool fits; a fork bomb does not
IN_CONTAINER_ENV = "SHOWDOWN_IN_CONTAINER"  # set by this runner; the worker's environment record reads it


def default_cpus() -> float:
    """Every core but one (at least one): a container never gets the whole machine."""
    return float(max(1, (os.cpu_count() or 1) - 1))


class ContainerProcess:
    """A worker in a container, seen the way the supervisor sees a local process."""

    def __init__(self, container: Any, workdir: Path, log: str = "logs/worker.out") -> None:
        self.container = container
        self.workdir = workdir
        self.log = log
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.container.reload()
            state = self.container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                self._finish(int(state.get("ExitCode", 1)), bool(state.get("OOMKilled")))
        return self.returncode

    def _finish(self, code: int, oom: bool) -> None:
        # tini (--init) reports a worker killed by signal N as 128 + N: give it back as -N, as subprocess does
        self.returncode = -(code - 128) if code > 128 else code
        if oom and code == 137:
            self.returncode = -9
        try:  # appended without following links: the container could have planted one at that path
            safefs.ensure_dir(self.workdir, str(Path(self.log).parent))
            with safefs.open_fresh_append(self.workdir, self.log) as fh:
                fh.write(self.container.logs(stdout=True, stderr=True)[-200_000:])
        except Exception:
            pass

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("container", timeout or 0)
            time.sleep(0.1)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        try:
            self.container.kill()
        except Exception:
            pass
        self.wait(timeout=60)

    def close(self) -> None:
        if self.poll() is None:
            self.kill()
        try:
            self.container.remove(force=True)
        except Exception:
            pass


class DockerInterpreter(Interpreter):
    def __init__(self, image: Any, device: str, cpus: float, memory: str, describe: dict[str, Any]) -> None:
        super().__init__([], {}, describe)
        self.image = image
        self.device = device
        self.cpus = cpus
        self.memory = memory

    def worker_path(self, host_path: Path) -> str:
        return CONTAINER_WORKDIR

    def spawn(self, worker_args: list[str], workdir: Path) -> ContainerProcess:
        import docker

        c = images.client()
        workdir.mkdir(parents=True, exist_ok=True)
        uid = os.getuid()
        user = "10001:10001" if uid == 0 else f"{uid}:{os.getgid()}"
        if uid == 0:
            safefs.chown_tree(workdir, 10001, 10001)  # never through a link the container left
        requests = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if self.device.startswith("cuda") else None
        container = c.containers.run(
            self.image.id, command=worker_args, detach=True, init=True, user=user,
            network_mode="none", read_only=True, tmpfs={"/tmp": "rw,exec,nosuid,size=8g"},
            volumes={str(workdir.resolve()): {"bind": CONTAINER_WORKDIR, "mode": "rw"}},
            nano_cpus=int(self.cpus * 1e9), mem_limit=self.memory, memswap_limit=self.memory, device_requests=requests,
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=PIDS_LIMIT,
            labels={RUN_LABEL: str(os.getpid())}, environment={"HOME": "/tmp", IN_CONTAINER_ENV: "docker"},
        )
        return ContainerProcess(container, workdir)


def gpu_passthrough(info: dict[str, Any]) -> str | None:
    """How `--gpus` (a device request for "gpu") can work on this engine, or None: a registered NVIDIA runtime, the
    Container Device Interface (CDI specification folders the engine reads), or the NVIDIA container toolkit's hook
    on the host, which Docker calls for device requests without a runtime of its own."""
    if "nvidia" in (info.get("Runtimes") or {}):
        return "the registered nvidia runtime"
    for folder in info.get("CDISpecDirs") or []:
        if Path(folder).is_dir() and any(Path(folder).glob("*nvidia*")):
            return f"CDI ({folder})"
    for tool in ("nvidia-container-runtime-hook", "nvidia-ctk"):
        if shutil.which(tool):
            return f"the NVIDIA container toolkit ({tool})"
    return None


def reap_orphans() -> None:
    """Remove containers left by a host that died (their owner process is gone)."""
    c = images.client()
    for container in c.containers.list(all=True, filters={"label": RUN_LABEL}):
        owner = container.labels.get(RUN_LABEL, "")
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            container.remove(force=True)


class DockerRunner(Runner):
    name = "docker"

    def __init__(self, base: str | None = None, cpus: float | None = None, memory: str = "8g", rebuild: bool = False,
                 flavour: str | None = None) -> None:
        self.base = base or os.environ.get("SHOWDOWN_BASE_IMAGE", images.DEFAULT_BASE)
        self.flavour = flavour  # None: the device's own (cpu image for cpu, cuda image for cuda)
        self.cpus = min(cpus or default_cpus(), default_cpus())
        self.memory = memory
        self.rebuild = rebuild

    def prepare(self, info: FrameworkInfo, device: str, say: Callable[[str], None]) -> Interpreter:
        c = images.client()
        reap_orphans()
        if device.startswith("cuda"):
            how = gpu_passthrough(c.info())
            if how is None:
                raise EnvironmentBuildError(
                    "this Docker engine shows no way to pass a GPU to a container: no NVIDIA runtime registered, no CDI "
                    "specification folder, no nvidia-container-runtime-hook or nvidia-ctk on the host (install the NVIDIA "
                    "container toolkit, or run with --runner venv)")
            say(f"GPUs reach the container through {how}")
        flavour = self.flavour or images.flavour(device)
        if flavour == "cpu" and device.startswith("cuda"):
            raise EnvironmentBuildError("the cpu image has no CUDA build of the framework; use the cuda flavour for --device cuda")
        tag = images.image_tag(info, flavour)
        # Build every time: with nothing changed Docker's layer cache makes it a few seconds, and a change to the
        # pins, the system packages or the harness source can never run in a stale image.
        try:
            images.build(info, flavour, self.base, say, nocache=self.rebuild)
        except EnvironmentBuildError as exc:
            try:
                c.images.get(tag)
            except Exception:
                raise exc from None
            say(f"could not rebuild {tag} ({str(exc)[:160]}); using the image already built")
        image = c.images.get(tag)
        desc = {"name": "docker", "python": "/opt/venv/bin/python", "environment_path": tag,
                "image": {**images.describe(image), "network": "none", "read_only_rootfs": True,
                          "user": "non-root", "cpus": self.cpus, "memory": self.memory, "capabilities": "none",
                          "no_new_privileges": True, "pids_limit": PIDS_LIMIT}}
        return DockerInterpreter(image, device, self.cpus, self.memory, desc)
