"""AWS Batch runs: submit the jobs of one run, follow them, collect their documents (harness.runners.batch makes the
resources they run on).

A run is one submission: a job per framework (or an array job of --repeat children), all writing under
s3://<bucket>/<prefix>/<run>/, and a manifest there (and a copy in .showdown/batch/runs/) naming every job, so status
and collect work from any machine with access to the bucket.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.registry import home
from harness.results import ResultError, device_slug, load_document, validate_document, write_json_atomic
from harness.runners.batch import (
    Aws,
    BatchError,
    Stack,
    _code,
    _queue,
    aws_errors,
    bucket_region,
    default_bucket,
    job_shape,
    pushed_digest,
    registry_repository,
)

JOB_COMMAND = ["batch", "job"]  # arguments to the batch image's entry point, `python -m harness`
LOG_GROUP = "/aws/batch/job"
TERMINAL = ("SUCCEEDED", "FAILED")
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
DOCUMENT_KEY = re.compile(r"^[A-Za-z0-9_.-]+\.json$")
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


# ------------------------------------------------------------------------------------------------ submit
@dataclass
class Submission:
    run: str
    manifest: dict[str, Any]
    manifest_uri: str


def new_run_id() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def child_key(framework: str, device: str, index: int | None = None) -> str:
    """Where one child's outputs go under the run's prefix: <framework>-<device>[-<index>]/."""
    return f"{framework}-{device_slug(device)}" + ("" if index is None else f"-{index}")


def job_definition_spec(stack: Stack, framework: str, image: str, role_arns: dict[str, str], timeout_s: int,
                        shape: dict[str, int]) -> dict[str, Any]:
    """The job definition of one framework: its image by digest, what it asks for, a timeout and a retry strategy
    (retry when the instance went away, e.g. a spot reclaim; a failure of the suite itself is not retried)."""
    requirements = [{"type": "VCPU", "value": str(shape["vcpus"])}, {"type": "MEMORY", "value": str(shape["memory_mib"])}]
    if shape["gpus"]:
        requirements.append({"type": "GPU", "value": str(shape["gpus"])})
    container: dict[str, Any] = {
        "image": image, "command": list(JOB_COMMAND), "resourceRequirements": requirements,
        "jobRoleArn": role_arns["job"], "environment": [
            {"name": "SHOWDOWN_FRAMEWORK", "value": framework}, {"name": "SHOWDOWN_DEVICE", "value": stack.device}],
        "linuxParameters": {"sharedMemorySize": 2048, "initProcessEnabled": True},
    }
    if role_arns.get("execution"):
        container["executionRoleArn"] = role_arns["execution"]
    return {
        "jobDefinitionName": stack.job_definition(framework), "type": "container", "containerProperties": container,
        "timeout": {"attemptDurationSeconds": int(timeout_s)}, "platformCapabilities": ["EC2"],
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]},
        "propagateTags": True, "tags": stack.tags,
    }


def _same_definition(existing: dict[str, Any], spec: dict[str, Any]) -> bool:
    have = existing.get("containerProperties", {})
    want = spec["containerProperties"]
    keys = ("image", "command", "jobRoleArn", "executionRoleArn")
    return (all(have.get(k) == want.get(k) for k in keys)
            and _pairs(have.get("resourceRequirements"), "type") == _pairs(want["resourceRequirements"], "type")
            and _pairs(have.get("environment"), "name") == _pairs(want["environment"], "name")
            and existing.get("timeout", {}).get("attemptDurationSeconds") == spec["timeout"]["attemptDurationSeconds"])


def _pairs(items: list[dict[str, str]] | None, key: str) -> dict[str, str]:
    return {str(x[key]): str(x["value"]) for x in items or []}


def register_definition(aws: Aws, spec: dict[str, Any]) -> str:
    """The ARN of an active definition identical to `spec`, registering a new revision only if none is."""
    found = aws.batch.describe_job_definitions(jobDefinitionName=spec["jobDefinitionName"], status="ACTIVE")["jobDefinitions"]
    for jd in sorted(found, key=lambda d: -int(d["revision"])):
        if _same_definition(jd, spec):
            return str(jd["jobDefinitionArn"])
    return str(aws.batch.register_job_definition(**spec)["jobDefinitionArn"])


def _role_arn(aws: Aws, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    with aws_errors(f"reading IAM role {name_or_arn}"):
        return str(aws.iam.get_role(RoleName=name_or_arn)["Role"]["Arn"])


def submit(stack: Stack, frameworks: list[str], run_args: list[str], repeat: int = 1, timeout_s: int = 7200,
           env: dict[str, str] | None = None, shape: dict[str, int] | None = None,
           say: Callable[[str], None] = print) -> Submission:
    """Check everything first (queue, bucket, images, roles), then register definitions and submit a job per
    framework; if a submission fails, the jobs already submitted are terminated and no manifest is written."""
    aws = Aws(stack.region)
    shape = shape or job_shape(stack.device)
    if repeat < 1 or repeat > 10_000:
        raise BatchError(f"--repeat {repeat}: 1 to 10000")
    with aws_errors("checking the job queue"):
        queue_name = stack.job_queue or stack.queue_name
        q = _queue(aws, queue_name)
    if q is None:
        raise BatchError(f"job queue {queue_name} does not exist in {aws.region}: run `showdown batch setup` (or pass --job-queue)")
    if q.get("state") != "ENABLED" or q.get("status") not in ("VALID", "UPDATING"):
        raise BatchError(f"job queue {queue_name} is {q.get('state')}/{q.get('status')}: jobs would not start")
    with aws_errors("checking the bucket"):
        bucket = default_bucket(stack, aws)
        region = bucket_region(aws, bucket)
    if region is None:
        raise BatchError(f"bucket {bucket} does not exist: run `showdown batch setup` (or pass --bucket)")
    if region != aws.region:
        raise BatchError(f"bucket {bucket} is in {region}, not {aws.region}: choose --bucket in {aws.region}")
    images = {f: f"{registry_repository(stack, aws, f)}@{pushed_digest(stack, aws, f)}" for f in frameworks}
    roles = {"job": _role_arn(aws, stack.job_role or stack.role_name("job"))}
    if not stack.registry:  # pulling from ECR and writing awslogs needs the execution role
        roles["execution"] = _role_arn(aws, stack.role_name("execution"))
    run = new_run_id()
    base = f"{stack.prefix}/{run}/" if stack.prefix else f"{run}/"
    common_env = {"SHOWDOWN_BATCH_OUTPUT": f"s3://{bucket}/{base}", "SHOWDOWN_BATCH_RUN": run,
                  "SHOWDOWN_RUN_ARGS": " ".join(_quote(a) for a in run_args), "SHOWDOWN_BATCH_REGION": str(aws.region),
                  **(env or {})}
    children: list[dict[str, Any]] = []
    submitted: list[str] = []
    try:
        with aws_errors("submitting"):
            for f in frameworks:
                arn = register_definition(aws, job_definition_spec(stack, f, images[f], roles, timeout_s, shape))
                kwargs: dict[str, Any] = {
                    "jobName": f"{stack.name}-{f}-{stack.device}-{run[:15]}", "jobQueue": queue_name, "jobDefinition": arn,
                    "containerOverrides": {"environment": [{"name": k, "value": v} for k, v in common_env.items()]},
                    "tags": {**stack.tags, "showdown:run": run}, "propagateTags": True,
                }
                if repeat > 1:
                    kwargs["arrayProperties"] = {"size": repeat}
                job = aws.batch.submit_job(**kwargs)
                submitted.append(job["jobId"])
                children.append({"framework": f, "device": stack.device, "job_id": job["jobId"], "job_name": job["jobName"],
                                 "array_size": repeat if repeat > 1 else None, "image": images[f], "job_definition": arn})
                say(f"submitted {f} ({stack.device}): job {job['jobId']}" + (f" (array of {repeat})" if repeat > 1 else ""))
            manifest = {"schema": "showdown-batch-run", "version": 1, "run": run, "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                        "stack": stack.name, "region": aws.region, "queue": queue_name, "bucket": bucket, "prefix": base,
                        "device": stack.device, "run_args": run_args, "timeout_s": timeout_s, "children": children}
            aws.s3.put_object(Bucket=bucket, Key=base + "manifest.json", Body=json.dumps(manifest, indent=1).encode(),
                              ContentType="application/json")
    except BaseException:
        for job_id in submitted:
            with contextlib.suppress(Exception):
                aws.batch.terminate_job(jobId=job_id, reason="showdown batch submit failed before the run was recorded")
        raise
    write_json_atomic(home() / "batch" / "runs" / f"{run}.json", manifest)
    return Submission(run, manifest, f"s3://{bucket}/{base}manifest.json")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# ------------------------------------------------------------------------------------------------ status
def manifest_for(stack: Stack, run: str, aws: Aws) -> dict[str, Any]:
    """The run's manifest: the local copy if this machine submitted it, else the one in the bucket."""
    if not RUN_ID.match(run):
        raise BatchError(f"{run!r} is not a run id (like 20261130T120000Z-a1b2c3; `showdown batch status` lists recent runs)")
    local = home() / "batch" / "runs" / f"{run}.json"
    if local.exists():
        try:
            data: dict[str, Any] = json.loads(local.read_text())
            return data
        except ValueError:
            pass
    with aws_errors("reading the run's manifest"):
        bucket = default_bucket(stack, aws)
        key = (f"{stack.prefix}/" if stack.prefix else "") + f"{run}/manifest.json"
        try:
            body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404", "NoSuchBucket"):
                raise BatchError(f"no run {run} in s3://{bucket}/{key.rsplit('/', 2)[0]}/ (nothing was submitted under that id)") from None
            raise
    try:
        data = json.loads(body)
    except ValueError:
        raise BatchError(f"the manifest of run {run} is not JSON") from None
    return data


def recent_runs() -> list[str]:
    folder = home() / "batch" / "runs"
    return sorted((p.stem for p in folder.glob("*.json") if RUN_ID.match(p.stem)), reverse=True) if folder.is_dir() else []


@dataclass
class ChildState:
    framework: str
    device: str
    index: int | None
    job_id: str
    status: str
    reason: str = ""
    exit_code: int | None = None
    log_stream: str | None = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return child_key(self.framework, self.device, self.index)


def child_jobs(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], int | None, str]]:
    """(entry, array index, job id) of every job that writes a document: the children of an array job (their ids are
    <array job id>:<index>), else the job itself."""
    out: list[tuple[dict[str, Any], int | None, str]] = []
    for entry in manifest["children"]:
        size = entry.get("array_size")
        if size:
            out += [(entry, i, f"{entry['job_id']}:{i}") for i in range(int(size))]
        else:
            out.append((entry, None, entry["job_id"]))
    return out


def job_states(aws: Aws, manifest: dict[str, Any], tail: int = 0) -> list[ChildState]:
    jobs = child_jobs(manifest)
    described: dict[str, dict[str, Any]] = {}
    with aws_errors("describing the run's jobs"):
        ids = [job_id for _, _, job_id in jobs]
        for i in range(0, len(ids), 100):
            for d in aws.batch.describe_jobs(jobs=ids[i:i + 100])["jobs"]:
                described[d["jobId"]] = d
    states = []
    for entry, index, job_id in jobs:
        d = described.get(job_id)
        if d is None:
            states.append(ChildState(entry["framework"], entry["device"], index, job_id, "UNKNOWN", "AWS Batch no longer knows this job"))
            continue
        container = d.get("container") or {}
        attempts = d.get("attempts") or []
        stream = container.get("logStreamName") or (attempts[-1].get("container", {}).get("logStreamName") if attempts else None)
        reason = "; ".join(x for x in (d.get("statusReason"), container.get("reason"),
                                       (attempts[-1].get("statusReason") if attempts else None)) if x)
        code = container.get("exitCode")
        if code is None and attempts:
            code = attempts[-1].get("container", {}).get("exitCode")
        st = ChildState(entry["framework"], entry["device"], index, job_id, d.get("status", "UNKNOWN"), reason, code, stream)
        if tail and st.status == "FAILED":
            st.log_tail = log_tail(aws, manifest, st, tail)
        states.append(st)
    return states


def log_tail(aws: Aws, manifest: dict[str, Any], st: ChildState, lines: int) -> list[str]:
    """The end of a job's log: CloudWatch (the container's output), else the run.log it wrote to the bucket."""
    if st.log_stream:
        with contextlib.suppress(Exception):
            events = aws.logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=st.log_stream, limit=lines,
                                             startFromHead=False)["events"]
            if events:
                return [str(e["message"]) for e in events][-lines:]
    with contextlib.suppress(Exception):
        body = aws.s3.get_object(Bucket=manifest["bucket"], Key=f"{manifest['prefix']}{st.key}/run.log")["Body"].read()
        return body.decode("utf-8", "replace").splitlines()[-lines:]
    return []


def watch(aws: Aws, manifest: dict[str, Any], say: Callable[[str], None], interval: float = 5.0, max_interval: float = 60.0,
          timeout_s: float | None = None, tail: int = 20) -> list[ChildState]:
    """Poll until every job is SUCCEEDED or FAILED (Batch has no waiter), backing off while nothing changes and saying
    each change."""
    seen: dict[str, str] = {}
    delay = interval
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        states = job_states(aws, manifest)
        changed = False
        for st in states:
            if seen.get(st.job_id) != st.status:
                seen[st.job_id] = st.status
                changed = True
                say(f"{st.key}: {st.status}" + (f" ({st.reason})" if st.reason and st.status in TERMINAL else ""))
        if all(st.status in TERMINAL for st in states):
            return job_states(aws, manifest, tail=tail)
        if deadline is not None and time.monotonic() > deadline:
            return job_states(aws, manifest, tail=tail)
        delay = interval if changed else min(delay * 1.5, max_interval)
        time.sleep(delay)


# ------------------------------------------------------------------------------------------------ collect
@dataclass
class Collected:
    folder: Path
    documents: list[Path]
    missing: list[ChildState]
    invalid: list[str]


def collect(stack: Stack, run: str, out_root: Path, say: Callable[[str], None] = print) -> Collected:
    """Download the run's documents into out_root/<run>/ and validate each; a child without a document gets an
    'unavailable' document saying what its job did, so the report shows it; nothing is fetched that is not a
    result document of this run."""
    from harness.results import new_unavailable_document
    from harness.runners.run import harness_identity

    aws = Aws(stack.region)
    manifest = manifest_for(stack, run, aws)
    folder = out_root / run
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*-missing.json"):  # this command's own notes of a previous collect, made afresh below
        old.unlink()
    states = {st.key: st for st in job_states(aws, manifest, tail=20)}
    docs: list[Path] = []
    invalid: list[str] = []
    have: set[str] = set()
    with aws_errors(f"listing s3://{manifest['bucket']}/{manifest['prefix']}"):
        pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=manifest["bucket"], Prefix=manifest["prefix"])
        objects = [o for page in pages for o in page.get("Contents", [])]
    for obj in objects:
        rel = obj["Key"][len(manifest["prefix"]):]
        parts = rel.split("/")
        if len(parts) != 2 or parts[0] not in states or not DOCUMENT_KEY.match(parts[1]) or parts[1] == "status.json":
            continue
        if obj.get("Size", 0) > MAX_DOCUMENT_BYTES:
            invalid.append(f"{rel}: {obj['Size']} bytes, over the {MAX_DOCUMENT_BYTES} limit; not fetched")
            continue
        with aws_errors(f"downloading {rel}"):
            body = aws.s3.get_object(Bucket=manifest["bucket"], Key=obj["Key"])["Body"].read()
        target = folder / parts[1]
        tmp = folder / f".{parts[1]}.part"
        tmp.write_bytes(body)
        try:
            errors = validate_document(load_document(tmp))
        except ResultError as exc:
            errors = [str(exc)]
        if errors:
            tmp.unlink()
            invalid.append(f"{rel}: {errors[0]}")
            say(f"invalid: {rel}: {errors[0]}")
            continue
        os.replace(tmp, target)
        docs.append(target)
        have.add(parts[0])
        say(f"fetched {rel}")
    missing = [st for key, st in states.items() if key not in have]
    for st in missing:
        why = (f"batch job {st.job_id} {st.status}" + (f": {st.reason}" if st.reason else "")
               + (f" (exit code {st.exit_code})" if st.exit_code is not None else ""))
        if st.status not in TERMINAL:
            why += "; not finished: collect again later"
        tried = [{"what": f"AWS Batch job {st.job_id} in {manifest['region']} ({manifest['queue']})",
                  "outcome": why + (f"; log: {' | '.join(st.log_tail[-5:])}" if st.log_tail else "")}]
        stamp = manifest["run"][:16]
        doc = new_unavailable_document(run_id=f"{st.key}-{stamp}", framework=st.framework, device=st.device,
                                       reason=f"{st.framework}: no document from AWS Batch ({why})", tried=tried,
                                       runner={"name": "batch"}, harness=harness_identity((out_root,)), machine=None)
        write_json_atomic(folder / f"{st.key}-{stamp}-missing.json", doc)
    return Collected(folder, docs, missing, invalid)
