"""What a CUDA run gets right, checked without a GPU: ranks never share a device, paths hold no colon, GPU runs
form their own set, the environment names the GPU used, Docker can pass GPUs without a registered runtime, the
plan times each precision, the system runner uses an interpreter as it is, and the budget stops a run cleanly."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import cli, registry
from harness.adapter import AllReduceResult
from harness.environment import nvidia_smi
from harness.probes import Context, plan, scale
from harness.results import document_name, load_document, validate_document, write_json_atomic
from harness.runners.docker import gpu_passthrough
from harness.runners.local import LocalRunner
from harness.runners.run import RunRequest, execute
from tests.fakes.adapters import NumpyAdapter

REPO = Path(__file__).resolve().parent.parent


class GpuCounting(NumpyAdapter):
    """Says which device each rank's adapter was made for."""

    GPUS = 0

    def gpu_count(self) -> int:
        return int(os.environ.get("SHOWDOWN_FAKE_GPUS", "0"))

    def allreduce(self, rank: int, world: int, host: str, port: int, value: np.ndarray) -> AllReduceResult:
        result = super().allreduce(rank, world, host, port, value)
        result.notes.append(f"rank {rank} on {self.device}")
        return result


@pytest.mark.parametrize("gpus, expected", [(1, ["cpu", "cpu"]), (2, ["cuda:0", "cuda:1"]), (8, ["cuda:0", "cuda:1"])])
def test_all_reduce_ranks_never_share_a_gpu(gpus: int, expected: list[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOWDOWN_FAKE_GPUS", str(gpus))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = scale.run(GpuCounting("cuda"), "allreduce", Context("cuda", tmp_path))
    assert out.status.value == "ok", out.reason
    assert out.data["devices"] == expected
    seen = sorted(n for r in out.data["ranks"] for n in r["notes"])
    assert seen == [f"rank {r} on {d}" for r, d in enumerate(expected)]
    if gpus < 2:
        assert "needs 2 GPUs" in out.data["placement"]


def test_file_and_folder_names_hold_no_colon(tmp_path: Path, fakes: None) -> None:
    name = document_name("torch", "cuda:1", "20261130T000000Z")
    assert ":" not in name and name.startswith("torch-cuda1-")
    from harness.runners.base import Interpreter

    seen: dict[str, Any] = {}

    class Recording(Interpreter):
        def spawn(self, worker_args: list[str], workdir: Path) -> Any:
            seen.setdefault("workdirs", []).append(workdir)
            return super().spawn(worker_args, workdir)

    class Runner(LocalRunner):
        def prepare(self, info: Any, device: str, say: Any) -> Any:
            base = super().prepare(info, device, say)
            return Recording(base.argv, base.env, base.describe)

    from harness.runners.supervisor import FrameworkUnavailable

    with pytest.raises(FrameworkUnavailable):  # the fake sees no CUDA device: the run stops at the environment check
        execute(RunRequest(registry.get("fake_numpy"), "cuda:1", ["layers"], tmp_path / "out", Runner(), quick=True))
    assert seen["workdirs"] and all(":" not in str(p) for p in seen["workdirs"])


def test_cpu_and_gpu_runs_are_separate_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = load_document(REPO / "tests" / "data" / "result-v1-torch-cpu.json")
    write_json_atomic(tmp_path / "torch-cpu.json", base)
    gpu = dict(base, device="cuda", run_id="torch-cuda-x")
    write_json_atomic(tmp_path / "both" / "torch-cuda.json", gpu)
    write_json_atomic(tmp_path / "both" / "torch-cpu.json", base)
    assert cli.main(["report", str(tmp_path / "both")]) == 2
    assert "--device cpu or --device cuda" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "both"), "--device", "cuda", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| device | cuda |" in out and "| device | cpu" not in out
    (tmp_path / "gpu").mkdir()
    write_json_atomic(tmp_path / "gpu" / "torch-cuda.json", gpu)
    assert cli.main(["score", str(tmp_path), "--json"]) == 0  # results/ does not take in results/gpu
    assert [s["device"] for s in json.loads(capsys.readouterr().out)["scores"]] == ["cpu"]


def _fake_smi(folder: Path) -> None:
    script = folder / "nvidia-smi"
    script.write_text("""#!/bin/sh
if [ "$1" = "--query-gpu=index,name,driver_version,memory.total,uuid" ]; then
  echo "0, NVIDIA H200, 580.159.04, 143771 MiB, GPU-aaa"
  echo "1, NVIDIA H200, 580.159.04, 143771 MiB, GPU-bbb"
  echo "2, NVIDIA H200, 580.159.04, 143771 MiB, GPU-ccc"
else
  echo "| NVIDIA-SMI 580.159.04    Driver Version: 580.159.04    CUDA Version: 13.0 |"
fi
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_the_environment_names_the_gpu_in_use_and_the_cuda_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_smi(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    info = nvidia_smi("cuda:1")
    assert info is not None and info["used"]["uuid"] == "GPU-bbb" and info["gpus_on_machine"] == 3
    assert info["driver_cuda_version"] == "13.0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    renumbered = nvidia_smi("cuda:0")
    assert renumbered is not None and renumbered["used"]["uuid"] == "GPU-ccc"
    assert nvidia_smi("cpu") is None


def test_docker_passes_gpus_through_a_runtime_cdi_or_the_toolkit_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no toolkit binaries
    assert gpu_passthrough({"Runtimes": {"runc": {}}}) is None
    assert gpu_passthrough({"Runtimes": {"nvidia": {}}}) == "the registered nvidia runtime"
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    (cdi / "nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    assert gpu_passthrough({"Runtimes": {}, "CDISpecDirs": [str(cdi)]}).startswith("CDI")  # type: ignore[union-attr]
    hook = tmp_path / "nvidia-container-runtime-hook"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    assert "toolkit" in (gpu_passthrough({"Runtimes": {}}) or "")


def test_cuda_plans_time_every_precision_and_cpu_plans_only_fp32() -> None:
    cpu, cuda = plan(["throughput"], "cpu"), plan(["throughput"], "cuda")
    assert all(p.count("/") == 2 for p in cpu)
    assert {p.rsplit("/", 1)[1] for p in cuda if p.count("/") == 3} == {"tf32", "bf16"}
    assert len(cuda) == 3 * len(cpu)


def test_the_system_runner_uses_an_interpreter_as_it_is(tmp_path: Path, fakes: None) -> None:
    from harness.runners.system import SystemRunner

    out = tmp_path / "out"
    doc = execute(RunRequest(registry.get("fake_numpy"), "cpu", ["layers"], out, SystemRunner(sys.executable), quick=True,
                             probes=["layers/dense"])).document
    assert doc["runner"]["name"] == "system" and doc["runner"]["python"] == sys.executable
    assert doc["records"]["layers/dense"]["status"] == "ok" and validate_document(doc) == []


def test_a_framework_the_interpreter_lacks_gets_an_unavailable_document(tmp_path: Path, fakes: None,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = cli.main(["run", "--framework", "fake_unavailable", "--runner", "system", "--python", sys.executable,
                     "--out", str(out), "--suite", "layers", "--record-unavailable"])
    assert code == cli.EXIT_SOME_FAILED and "nosuchframework" in capsys.readouterr().err
    (path,) = out.glob("fake_unavailable-cpu-*.json")
    doc = load_document(path)
    assert doc["kind"] == "unavailable" and validate_document(doc) == [] and "nosuchframework" in doc["tried"][0]["outcome"]
    write_json_atomic(out / "other.json", load_document(REPO / "tests" / "data" / "result-v1-torch-cpu.json"))
    assert cli.main(["report", str(out), "--markdown"]) == 0
    report = capsys.readouterr().out
    assert "## Did not run here" in report and "**fake_unavailable** on cpu" in report


def test_a_budget_stops_starting_probes_and_the_same_command_resumes(tmp_path: Path, fakes: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOWDOWN_FAKE_DELAY", "0.4")
    out = tmp_path / "out"
    req = RunRequest(registry.get("fake_slow"), "cpu", ["layers"], out, LocalRunner(), quick=True, budget_s=1.0)
    said: list[str] = []
    from harness.runners.run import RunHooks

    first = execute(req, RunHooks(say=said.append))
    assert not first.document["complete"] and 1 <= len(first.document["records"]) < 10
    assert any("budget" in s for s in said) and validate_document(first.document) == []
    second = execute(RunRequest(registry.get("fake_slow"), "cpu", ["layers"], out, LocalRunner(), quick=True))
    assert second.path == first.path and second.document["complete"] and len(second.document["records"]) == 32


def _gpu_bench() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_bench", Path(__file__).parent.parent / "benchmarks" / "gpu_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device", ["cuda:0", "cpu"])
def test_the_prepared_gpu_run_plans_every_probe_once_headline_first(device: str) -> None:
    ordered = _gpu_bench().plan(device)
    every = plan(["layers", "graphs", "throughput", "numerics", "scale"], device)
    assert sorted(ordered) == sorted(every)  # none missing, none misspelt, none twice
    lowest = "/bf16" if device.startswith("cuda") else ""
    assert ordered[0] == f"throughput/gemm/eager{lowest}"
    assert ordered.index(f"throughput/resnet50_train/compiled{lowest}") < ordered.index("layers/dense")


def test_carried_wheels_unpack_without_pip_and_a_foreign_binary_is_refused(tmp_path: Path) -> None:
    import zipfile

    gb = _gpu_bench()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "tiny-1.0-py3-none-any.whl", "w") as z:
        z.writestr("tiny/__init__.py", "VALUE = 7\n")
    env = gb.install_wheels(wheels, tmp_path / "site")
    assert (tmp_path / "site" / "tiny" / "__init__.py").read_text() == "VALUE = 7\n"
    assert str(tmp_path / "site") in env["PYTHONPATH"].split(os.pathsep)
    other = "cp39" if sys.version_info[:2] != (3, 9) else "cp310"
    (wheels / f"fast-1.0-{other}-{other}-manylinux2014_x86_64.whl").write_bytes(b"")
    with pytest.raises(SystemExit, match=f"fast-1.0-{other}"):
        gb.install_wheels(wheels, tmp_path / "site2")
