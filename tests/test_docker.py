"""Docker: the suite inside per-framework images agrees with the virtualenv runs, and the container is locked down.

Needs a Docker engine. In CI (`.ci/run` sets SHOWDOWN_REQUIRE_DOCKER=1 and starts dockerd) a missing engine FAILS
these tests; on a machine without Docker they are skipped with the reason shown by `pytest -ra`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.probes import plan
from harness.results import validate_document
from harness.runners import images
from harness.runners.docker import IN_CONTAINER_ENV, PIDS_LIMIT, DockerInterpreter, DockerRunner
from harness.runners.run import RunRequest, execute
from harness.runners.venv import VenvRunner

REQUIRED = os.environ.get("SHOWDOWN_REQUIRE_DOCKER") == "1"
FRAMEWORKS = [f for f in os.environ.get("SHOWDOWN_DOCKER_FRAMEWORKS", "torch").split(",") if f]
SUITES = ["layers", "onnx", "graphs"]
COMPILED = ["throughput/mlp_train/compiled"]  # the compiled path, in the image and in the venv
REPO = Path(__file__).resolve().parent.parent


def engine() -> Any:
    try:
        return images.client()
    except images.DockerUnavailable as exc:
        if REQUIRED:
            pytest.fail(f"a Docker engine is required here (SHOWDOWN_REQUIRE_DOCKER=1): {exc}")
        pytest.skip(reason=f"no Docker engine on this machine ({exc}); CI runs these with SHOWDOWN_REQUIRE_DOCKER=1")


@pytest.fixture(scope="module")
def base_image() -> str:
    """The base image: $SHOWDOWN_BASE_IMAGE or python:3.11-slim if present, else a local Debian one built now."""
    c = engine()
    wanted = os.environ.get("SHOWDOWN_BASE_IMAGE", images.DEFAULT_BASE)
    for tag in (wanted, images.LOCAL_BASE):
        try:
            c.images.get(tag)
            return tag
        except Exception:
            continue
    return images.base_image(images.LOCAL_BASE, say=lambda text: None)


@pytest.fixture(scope="module")
def unrelated_image(base_image: str) -> str:
    """An untagged image that is not the harness's: no build may delete it."""
    c = engine()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(f"FROM {base_image}\nLABEL org.example.unrelated=1\n")
        image, _ = c.images.build(path=tmp, network_mode="none", pull=False)
    return str(image.id)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def pair(request: pytest.FixtureRequest, base_image: str, unrelated_image: str,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    info = registry.get(request.param)
    docs = []
    for runner in (VenvRunner(), DockerRunner(base=base_image)):
        out = tmp_path_factory.mktemp(f"{info.name}-{runner.name}")
        probes = [*plan(SUITES), *COMPILED]
        docs.append(execute(RunRequest(info, "cpu", SUITES, out, runner, quick=True, probes=probes)).document)
    return docs[0], docs[1]


def verdicts(doc: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for probe, rec in doc["records"].items():
        d = rec["data"]
        if probe.startswith("layers/"):
            out[probe] = (rec["status"], d.get("implementation"), d.get("variant"), d.get("convention"))
        elif probe.startswith("onnx/"):
            out[probe] = (rec["status"], d.get("builtin"))
        elif probe.startswith("graphs/"):
            out[probe] = (rec["status"], tuple(sorted(p for p, r in (d.get("paths") or {}).items() if r.get("ok"))))
        elif probe.startswith("throughput/"):
            out[probe] = (rec["status"], d.get("compile_scope"), (d.get("graphs_captured") or 0) > 0,
                          (d.get("first_step") or {}).get("ok"))
    return out


def test_image_run_is_valid_and_from_the_image(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, in_image = pair
    assert validate_document(in_image) == []
    assert in_image["complete"] and in_image["runner"]["name"] == "docker"
    image = in_image["runner"]["image"]
    assert image["id"].startswith("sha256:") and image["size_bytes"] > 0
    assert in_image["environment"]["in_container"] is True


def test_image_and_virtualenv_agree(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    venv_doc, image_doc = pair
    assert venv_doc["environment"]["framework_version"] == image_doc["environment"]["framework_version"]
    compared = verdicts(venv_doc)
    assert verdicts(image_doc) == compared
    # it compared something: every op, both ONNX directions, the graph probes and the compiled training step
    assert len([p for p in compared if p.startswith("layers/")]) == 32
    assert {"onnx/export/mlp", "onnx/import/cnn", "graphs/compiled", *COMPILED} <= set(compared)
    assert compared[COMPILED[0]][0] in ("ok", "unsupported")
    assert sum(1 for v in compared.values() if v[0] == "ok") >= 30


def test_builds_leave_no_install_stage_and_delete_no_other_image(pair: tuple[dict[str, Any], dict[str, Any]],
                                                                  unrelated_image: str, base_image: str) -> None:
    c = engine()
    assert c.images.list(all=True, filters={"label": f"{images.STAGE_LABEL}=install"}) == []
    c.images.get(unrelated_image)  # still there
    info = registry.get(FRAMEWORKS[0])
    again = images.build(info, "cpu", base_image, lambda text: None)
    assert again.up_to_date and again.seconds < 60  # nothing changed: nothing built


def test_the_image_build_refuses_to_run_with_network(base_image: str) -> None:
    """The install stage's first step fails the build when any interface but loopback exists, so a build that passes
    had no network while pip ran."""
    c = engine()
    dockerfile = (REPO / "containers" / "Dockerfile").read_text()
    check = dockerfile[dockerfile.index("RUN python3 -c \"import os, sys;"):dockerfile.index("COPY wheels/")]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(f"FROM {base_image}\n{check}")
        c.images.build(path=tmp, network_mode="none", pull=False, nocache=True, rm=True, forcerm=True)
        with pytest.raises(Exception, match="must have no network"):
            c.images.build(path=tmp, network_mode="host", pull=False, nocache=True, rm=True, forcerm=True)


def test_container_is_locked_down(base_image: str, tmp_path: Path) -> None:
    interp = DockerRunner(base=base_image).prepare(registry.get(FRAMEWORKS[0]), "cpu", lambda text: None)
    proc = interp.spawn(["--help"], tmp_path)
    try:
        proc.wait(timeout=120)
        attrs = proc.container.attrs
        host = attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        user = attrs["Config"]["User"]
        assert user and not user.startswith("0") and user.split(":")[0] != "root"
        assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
        assert 0 < host["NanoCpus"] < (os.cpu_count() or 1) * 1e9 or (os.cpu_count() or 1) == 1
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
        assert host["PidsLimit"] == PIDS_LIMIT
        assert f"{IN_CONTAINER_ENV}=docker" in attrs["Config"]["Env"]
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        assert set(mounts) == {"/work"} and mounts["/work"]["RW"] is True
        assert "/tmp" in host["Tmpfs"]
    finally:
        proc.close()


def test_cuda_is_refused_without_a_way_to_pass_gpus(base_image: str) -> None:
    from harness.runners.docker import gpu_passthrough

    c = engine()
    if gpu_passthrough(c.info()) is not None:
        pytest.skip(reason="this engine can pass GPUs; the refusal cannot be shown here")
    from harness.runners.base import EnvironmentBuildError

    with pytest.raises(EnvironmentBuildError, match="no way to pass a GPU"):
        DockerRunner(base=base_image).prepare(registry.get("torch"), "cuda", lambda text: None)


def test_a_container_that_plants_links_changes_and_reads_nothing_outside(pair: tuple[dict[str, Any], dict[str, Any]],
                                                                          tmp_path: Path) -> None:
    """A hostile worker in a real container plants links in its work folder to host files (its log, a record, the
    worker.out the host appends to, a folder for the host's chown) and dies; the host follows none of them."""
    from harness.runners.base import Runner
    from tests.fakes.adapters import VICTIM, register_all

    c = engine()
    image_doc = pair[1]
    victim = Path(VICTIM)
    shutil.rmtree(victim, ignore_errors=True)
    victim.mkdir()
    secret = "top secret: the host must never read this back"
    (victim / "secret").write_text(secret)
    (victim / "appended").write_text("original\n")
    (victim / "owned").write_text("mine\n")
    before = {p.name: (p.read_text(), p.stat().st_uid, p.stat().st_mode) for p in victim.iterdir()}
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copytree(REPO / "tests", Path(ctx) / "tests", ignore=shutil.ignore_patterns("__pycache__", "data"))
        (Path(ctx) / "Dockerfile").write_text(f"FROM {image_doc['runner']['image']['id']}\nCOPY tests /opt/showdown/tests\n")
        image, _ = c.images.build(path=ctx, network_mode="none", pull=False, rm=True, forcerm=True)

    class Hostile(Runner):
        name = "docker"

        def prepare(self, info: Any, device: str, say: Any) -> Any:
            return DockerInterpreter(image, device, 1.0, "2g", {"name": "docker", "image": {"id": image.id}})

    register_all()
    try:
        doc = execute(RunRequest(registry.get("fake_symlink_planter"), "cpu", ["layers"], tmp_path / "results", Hostile(),
                                 quick=True, probes=["layers/dense", "layers/sgd"])).document
    finally:
        registry.reset()
        try:
            c.images.remove(image.id, force=True)
        except Exception:
            pass
    crash = doc["records"]["layers/dense"]
    assert crash["status"] == "crashed" and secret not in (crash["log_tail"] or "") and secret not in str(doc)
    assert doc["records"]["layers/sgd"]["status"] == "ok"
    after = {p.name: (p.read_text(), p.stat().st_uid, p.stat().st_mode) for p in victim.iterdir()}
    shutil.rmtree(victim, ignore_errors=True)
    assert after == before
