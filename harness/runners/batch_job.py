"""What an AWS Batch job runs inside its image: `python -m harness batch job`.

It is a local run: `showdown run` with the system runner (the image's framework environment, /opt/venv) into a
scratch folder, its output teed to the container's log, then the documents and the log copied to
s3://<bucket>/<prefix>/<run>/<framework>-<device>[-<index>]/. There is no second copy of the suite here. On SIGTERM (a
Batch timeout or a cancelled job) the run is interrupted the way Ctrl-C interrupts it, so completed probes are
saved, and whatever was measured is still uploaded before the container is killed.

The job reads its orders from the environment: SHOWDOWN_FRAMEWORK, SHOWDOWN_DEVICE, SHOWDOWN_BATCH_OUTPUT (the
s3:// prefix), SHOWDOWN_RUN_ARGS (more `showdown run` options, shell-quoted), SHOWDOWN_FRAMEWORK_PYTHON (set by the
image). The array index comes from AWS_BATCH_JOB_ARRAY_INDEX, or from the job id (an array child's id is
<array job id>:<index>).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.runners.batch import BatchError, aws_errors, boto3_module
from harness.runners.batch_runs import child_key


def array_index(env: dict[str, str]) -> int | None:
    raw = env.get("AWS_BATCH_JOB_ARRAY_INDEX")
    if raw is None:
        job_id = env.get("AWS_BATCH_JOB_ID", "")
        raw = job_id.rpartition(":")[2] if ":" in job_id else None
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BatchError(f"array index {raw!r} is not a number")
    return int(raw)


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise BatchError(f"SHOWDOWN_BATCH_OUTPUT {uri!r} is not s3://bucket/prefix/")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def run_command(env: dict[str, str], out: Path) -> list[str]:
    framework = env.get("SHOWDOWN_FRAMEWORK")
    if not framework:
        raise BatchError("SHOWDOWN_FRAMEWORK is not set: this command runs inside an AWS Batch job")
    python = env.get("SHOWDOWN_FRAMEWORK_PYTHON") or sys.executable
    return [sys.executable, "-m", "harness", "run", "--framework", framework, "--device", env.get("SHOWDOWN_DEVICE", "cpu"),
            "--runner", "system", "--python", python, "--out", str(out), "--record-unavailable",
            *shlex.split(env.get("SHOWDOWN_RUN_ARGS", ""))]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    framework = env.get("SHOWDOWN_FRAMEWORK", "")
    device = env.get("SHOWDOWN_DEVICE", "cpu")
    bucket, prefix = split_s3(env.get("SHOWDOWN_BATCH_OUTPUT", ""))
    key = child_key(framework, device, array_index(env))
    out = Path(tempfile.mkdtemp(prefix="showdown-batch-"))
    cmd = run_command(env, out)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    log_path = out / "run.log"
    print(f"showdown batch job: {framework} on {device} in {out} -> s3://{bucket}/{prefix}{key}/", flush=True)
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    # the run is interrupted with SIGINT (as Ctrl-C): it must not inherit an ignored SIGINT (a job started in the
    # background of a shell script has one), or Python installs no KeyboardInterrupt handler and the run goes on
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_default_sigint)

    def interrupt(signum: int, _frame: Any) -> None:  # the run saves what it completed, as on Ctrl-C
        print(f"showdown batch job: signal {signum}: interrupting the run, then uploading what it measured", flush=True)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, interrupt)
    assert proc.stdout is not None
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n").encode())
        for line in iter(proc.stdout.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            log.write(line)
    code = proc.wait()
    documents = sorted(p.name for p in out.glob("*.json"))
    status = {"framework": framework, "device": device, "key": key, "exit_code": code, "started_at": started,
              "ended_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "job_id": env.get("AWS_BATCH_JOB_ID"),
              "documents": documents}
    (out / "status.json").write_text(json.dumps(status, indent=1))
    upload(env, bucket, f"{prefix}{key}/", out)
    print(f"showdown batch job: exit {code}; {len(documents)} document(s) uploaded", flush=True)
    return code


def upload(env: dict[str, str], bucket: str, prefix: str, out: Path) -> None:
    """The documents (what `showdown run` wrote at the folder's top level), status.json and run.log."""
    boto3 = boto3_module()
    region = env.get("SHOWDOWN_BATCH_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    s3 = boto3.session.Session(region_name=region).client("s3")
    with aws_errors(f"uploading to s3://{bucket}/{prefix}"):
        for path in sorted(out.iterdir()):
            if path.is_file() and not path.is_symlink() and (path.suffix in (".json", ".log")) and not path.name.startswith("."):
                s3.upload_file(str(path), bucket, prefix + path.name,
                               ExtraArgs={"ContentType": "application/json" if path.suffix == ".json" else "text/plain"})
