"""AWS Batch without AWS: moto's server on the loopback address, the real boto3 talking HTTP to it.

moto runs in this process (a thread), in its simple Batch mode here (a job succeeds, or fails when
MOTO_SIMPLE_BATCH_FAIL_AFTER is set, without running a container); tests/test_batch_docker.py runs real images
through moto's Docker mode. No traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import cli, registry
from harness.results import load_document, validate_document
from harness.runners import batch as b
from harness.runners import batch_job
from harness.runners import batch_runs as r
from harness.runners.venv import VenvRunner

REGION = "us-east-1"
RESULTS = Path(__file__).parent.parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session, on 127.0.0.1 only."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # the AWS managed policies setup attaches
        mp.setenv("MOTO_DOCKER_NETWORK_MODE", "host")  # Docker mode: a job's container reaches moto on 127.0.0.1
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        yield f"http://127.0.0.1:{port}"
        server.stop()


def moto_config(url: str, use_docker: bool) -> None:
    req = urllib.request.Request(f"{url}/moto-api/config", data=json.dumps({"batch": {"use_docker": use_docker}}).encode(),
                                 method="POST")
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 (loopback)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh mocked account: AWS_ENDPOINT_URL sends boto3 to moto; credentials are dummies."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).read()  # noqa: S310
    moto_config(moto_url, use_docker=False)
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "MOTO_SIMPLE_BATCH_FAIL_AFTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("SHOWDOWN_HOME", str(tmp_path / "home"))
    return moto_url


def client(service: str, region: str = REGION) -> Any:
    import boto3

    return boto3.session.Session(region_name=region).client(service)


def sd(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["batch", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("showdown: error: "), err
    return lines[0]


def fake_push(frameworks: list[str], device: str = "cuda") -> None:
    """An image manifest under the device tag in each repository: what `batch push` leaves in ECR (the push itself is
    tested apart, and for real in test_batch_docker)."""
    ecr = client("ecr")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                                      "digest": "sha256:" + "a" * 64}, "layers": []})
    for f in frameworks:
        ecr.put_image(repositoryName=f"showdown/{f}", imageManifest=manifest, imageTag=device)


def inventory() -> dict[str, Any]:
    """Everything of interest in the mocked account, to compare before and after."""
    iam, ecr, batch, s3 = client("iam"), client("ecr"), client("batch"), client("s3")
    return {
        "buckets": sorted(x["Name"] for x in s3.list_buckets()["Buckets"]),
        "repositories": sorted(x["repositoryName"] for x in ecr.describe_repositories()["repositories"]),
        "roles": sorted(x["RoleName"] for x in iam.list_roles()["Roles"] if x["RoleName"].startswith("showdown")),
        "profiles": sorted(x["InstanceProfileName"] for x in iam.list_instance_profiles()["InstanceProfiles"]),
        "compute": sorted(x["computeEnvironmentName"] for x in batch.describe_compute_environments()["computeEnvironments"]),
        "queues": sorted(x["jobQueueName"] for x in batch.describe_job_queues()["jobQueues"]),
        "definitions": sorted(f"{x['jobDefinitionName']}:{x['revision']}" for x in
                              batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]),
    }


EMPTY = {"buckets": [], "repositories": [], "roles": [], "profiles": [], "compute": [], "queues": [], "definitions": []}


# ------------------------------------------------------------------------------------------------ plan
def test_plan_without_any_aws_configuration_explains_what_is_needed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("SHOWDOWN_HOME", str(tmp_path / "home"))
    code, out, err = sd(capsys, "plan")
    assert code == 0, err
    assert "Nothing was checked against AWS: no AWS region" in " ".join(out.split())
    assert "showdown batch setup" in out and "credentials" in out
    assert "at most $" in out and "2026-06-17" in out  # the bound, from the dated price table
    assert "showdown/torch" in out and "showdown-cuda" in out


def test_plan_after_setup_shows_what_exists(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch")[0] == 0
    stack = b.load_stack("showdown")
    items = {(i.kind, i.name): i.state for i in b.survey(stack, ["torch", "jax"], b.Aws(REGION))}
    assert items[("ecr repository", "showdown/torch")] == "exists"
    assert items[("ecr repository", "showdown/jax")] == "create"
    assert items[("compute environment", "showdown-cuda")] == "exists"
    assert items[("job definition", "showdown-torch-cuda")] == "create"  # registered by submit


def test_the_cost_bound_takes_the_dearest_type_that_fits_and_names_the_unknown() -> None:
    prices = {"as_of": "2026-01-01", "region": REGION, "source": "test", "prices": {
        "small.gpu": {"usd_per_hour": 1.0, "vcpus": 2, "memory_gib": 8, "gpus": 1},
        "mid.gpu": {"usd_per_hour": 2.0, "vcpus": 4, "memory_gib": 16, "gpus": 1},
        "big.cpu": {"usd_per_hour": 9.0, "vcpus": 64, "memory_gib": 256, "gpus": 0}}}
    shape = b.job_shape("cuda")
    est = b.estimate(b.Stack(instance_types=["small.gpu", "mid.gpu", "big.cpu"]), 3, 1800, shape, prices)
    assert est["per_hour"] == {"mid.gpu": 2.0} and set(est["too_small"]) == {"small.gpu", "big.cpu"}
    assert est["bound_usd"] == pytest.approx(3 * 0.5 * 2.0)
    unknown = b.estimate(b.Stack(instance_types=["mid.gpu", "p9.huge"]), 3, 1800, shape, prices)
    assert unknown["unknown"] == ["p9.huge"] and unknown["bound_usd"] is None  # no bound from half the facts


def test_the_price_table_is_dated_sourced_and_complete() -> None:
    table = b.load_prices()
    assert table["as_of"] and table["source"] and table["region"] == REGION
    for name in b.DEFAULT_TYPES["cuda"] + b.DEFAULT_TYPES["cpu"]:
        p = table["prices"][name]
        assert p["usd_per_hour"] > 0 and p["vcpus"] > 0 and p["memory_gib"] > 0
        assert (p["gpus"] >= 1) == (name in b.DEFAULT_TYPES["cuda"])


def test_refresh_reads_the_price_list_api(tmp_path: Path) -> None:
    from botocore.stub import Stubber

    product = {"product": {"attributes": {"vcpu": "4", "memory": "16 GiB", "gpu": "1", "physicalProcessor": "AMD EPYC",
                                          "gpuMemory": "24 GiB"}},
               "terms": {"OnDemand": {"X": {"priceDimensions": {"Y": {"pricePerUnit": {"USD": "0.8048000000"}}}}}}}
    pricing = b.boto3_module().session.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y").client("pricing")
    stub = Stubber(pricing)
    stub.add_response("get_products", {"PriceList": [json.dumps(product)], "FormatVersion": "aws_v1"})
    stub.activate()

    class Fake:
        class session:  # noqa: N801 (stands in for a boto3 session)
            @staticmethod
            def client(name: str, region_name: str) -> Any:
                assert name == "pricing" and region_name == "us-east-1"
                return pricing

    path = tmp_path / "prices.json"
    table = b.refresh_prices(Fake(), ["g6.xlarge"], "eu-west-1", path)  # type: ignore[arg-type]
    assert table["prices"]["g6.xlarge"]["usd_per_hour"] == pytest.approx(0.8048) and table["region"] == "eu-west-1"
    assert json.loads(path.read_text())["source"].startswith("AWS Price List API")
    stub.assert_no_pending_responses()


# ------------------------------------------------------------------------------------------------ setup / teardown
def test_setup_creates_everything_tagged_and_a_second_run_changes_nothing(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sd(capsys, "setup", "--region", REGION, "--framework", "torch,jax")
    assert code == 0, err
    assert "9 created, 0 already there" in out
    first = inventory()
    assert first["repositories"] == ["showdown/jax", "showdown/torch"]
    assert first["roles"] == ["showdown-batch-execution", "showdown-batch-instance", "showdown-batch-job"]
    assert first["compute"] == ["showdown-cuda"] and first["queues"] == ["showdown-cuda"]
    bucket = first["buckets"][0]
    tag = {"Key": b.TAG_KEY, "Value": "showdown"}
    s3, ecr, iam, batch = client("s3"), client("ecr"), client("iam"), client("batch")
    assert tag in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    for repo in ecr.describe_repositories()["repositories"]:
        assert tag in [{"Key": t["Key"], "Value": t["Value"]} for t in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]]
    for role in first["roles"]:
        assert tag in iam.list_role_tags(RoleName=role)["Tags"]
    ce = batch.describe_compute_environments()["computeEnvironments"][0]
    assert ce["tags"][b.TAG_KEY] == "showdown" and ce["computeResources"]["minvCpus"] == 0
    assert ce["computeResources"]["instanceTypes"] == b.DEFAULT_TYPES["cuda"]
    assert batch.describe_job_queues()["jobQueues"][0]["tags"][b.TAG_KEY] == "showdown"
    # the jobs' role may write under the prefix and do nothing else
    policy = json.loads(json.dumps(iam.get_role_policy(RoleName="showdown-batch-job", PolicyName="showdown-run-outputs")["PolicyDocument"]))
    assert policy["Statement"] == [{"Sid": "WriteRunOutputs", "Effect": "Allow", "Action": ["s3:PutObject"],
                                    "Resource": [f"arn:aws:s3:::{bucket}/runs/*"]}]
    assert '"s3:PutObject"' in out  # and setup printed it

    code, out, err = sd(capsys, "setup", "--framework", "torch,jax")  # the region comes from the saved stack
    assert code == 0, err
    assert "0 created, 9 already there" in out
    assert inventory() == first


def test_setup_that_fails_half_way_removes_what_it_created(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sd(capsys, "setup", "--region", REGION, "--framework", "torch", "--instance-types", "zz9.huge")
    assert code == 2
    assert "zz9.huge" in one_line_error(err)
    assert "rolled back: bucket" in out and "rolled back: ECR repository showdown/torch" in out
    assert inventory() == EMPTY


def test_a_bucket_in_another_region_is_refused_before_anything_is_created(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    client("s3", "eu-west-1").create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    code, _, err = sd(capsys, "setup", "--region", REGION, "--bucket", "elsewhere", "--framework", "torch")
    assert code == 2
    assert "elsewhere is in eu-west-1, not us-east-1" in one_line_error(err)
    assert inventory() == {**EMPTY, "buckets": ["elsewhere"]}


@pytest.mark.parametrize("missing", ["credentials", "region"])
def test_missing_credentials_or_region_is_one_line_and_creates_nothing(aws: str, missing: str, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["setup", "--framework", "torch"]
    if missing == "credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        args += ["--region", REGION]
    code, _, err = sd(capsys, *args)
    assert code == 2
    assert f"no AWS {missing}" in one_line_error(err)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert inventory() == EMPTY


def test_teardown_removes_only_what_carries_the_stack_tag(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = inventory()
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch")[0] == 0
    ecr = client("ecr")
    ecr.create_repository(repositoryName="showdown/mxnet")  # same prefix, not tagged: someone else's
    client("iam").create_role(RoleName="showdown-unrelated", AssumeRolePolicyDocument="{}")
    bucket = inventory()["buckets"][0]
    client("s3").put_object(Bucket=bucket, Key="runs/x/manifest.json", Body=b"{}")

    code, out, _ = sd(capsys, "teardown")  # without --yes: a list, nothing removed
    assert code == 0 and "Nothing removed" in out
    assert "showdown/torch" in inventory()["repositories"]

    code, out, err = sd(capsys, "teardown", "--yes")
    assert code == 0, err
    left = inventory()
    assert left["repositories"] == ["showdown/mxnet"]
    assert left["roles"] == ["showdown-unrelated"]
    assert left["compute"] == [] and left["queues"] == [] and left["profiles"] == []
    assert left["buckets"] == [bucket]  # it holds results
    assert "holds 1 objects" in " ".join(out.split())

    code, out, _ = sd(capsys, "teardown", "--yes", "--delete-results")
    assert code == 0 and inventory()["buckets"] == before["buckets"]


# ------------------------------------------------------------------------------------------------ push
class FakeDocker:
    """Records what push does with the engine: tags, pushes and the credentials given."""

    def __init__(self, fail: bool = False) -> None:
        self.tags: list[tuple[str, str]] = []
        self.pushes: list[tuple[str, str, Any]] = []
        self.fail = fail
        outer = self

        class Image:
            def tag(self, repo: str, tag: str) -> bool:
                outer.tags.append((repo, tag))
                return True

        class Images:
            def get(self, ref: str) -> Image:
                return Image()

        class Api:
            def push(self, repo: str, tag: str, stream: bool, decode: bool, auth_config: Any) -> Iterator[dict[str, Any]]:
                outer.pushes.append((repo, tag, auth_config))
                yield {"status": "Pushing"}
                if outer.fail:
                    yield {"errorDetail": {"message": "denied"}, "error": "denied: not authorized"}
                yield {"aux": {"Tag": tag, "Digest": "sha256:" + "b" * 64}}

        self.images = Images()
        self.api = Api()


def test_push_logs_in_with_the_ecr_token_and_pushes_every_tag(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch")[0] == 0
    stack = b.load_stack("showdown")
    aws_ = b.Aws(REGION)
    host, auth = b.ecr_login(aws_)
    token = client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert f"{auth['username']}:{auth['password']}" == base64.b64decode(token).decode()
    assert host.endswith(".amazonaws.com") and not host.startswith("http")
    repo = b.registry_repository(stack, aws_, "torch")
    docker = FakeDocker()
    digest = b.push_image(docker, "showdown/torch:cuda-batch", repo, ["cuda", "cuda-0123"], auth, say=lambda s: None)
    assert digest == "sha256:" + "b" * 64
    assert docker.tags == [(repo, "cuda"), (repo, "cuda-0123")]
    assert [(p[0], p[1]) for p in docker.pushes] == [(repo, "cuda"), (repo, "cuda-0123")] and docker.pushes[0][2] == auth
    with pytest.raises(b.BatchError, match="denied"):
        b.push_image(FakeDocker(fail=True), "showdown/torch:cuda-batch", repo, ["cuda"], auth, say=lambda s: None)


# ------------------------------------------------------------------------------------------------ submit / status
def test_submit_makes_one_job_per_framework_with_gpu_timeout_and_retry(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch,jax")[0] == 0
    fake_push(["torch", "jax"])
    code, out, err = sd(capsys, "submit", "--framework", "torch,jax", "--timeout", "900", "--probe", "layers/dense",
                        "--rounds", "9")
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    assert r.RUN_ID.match(run)
    batch = client("batch")
    defs = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
    assert set(defs) == {"showdown-torch-cuda", "showdown-jax-cuda"}
    for name, d in defs.items():
        reqs = {x["type"]: x["value"] for x in d["containerProperties"]["resourceRequirements"]}
        assert reqs["GPU"] == "1" and int(reqs["VCPU"]) >= 1 and int(reqs["MEMORY"]) > 0
        assert d["timeout"]["attemptDurationSeconds"] == 900
        assert d["retryStrategy"]["attempts"] >= 2
        rules = [(x.get("onStatusReason"), x["action"].upper()) for x in d["retryStrategy"]["evaluateOnExit"]]
        assert rules[0] == ("Host EC2*", "RETRY")  # an instance that went away (spot reclaim); a failing suite is not retried
        pushed = client("ecr").describe_images(repositoryName=f"showdown/{name.split('-')[1]}")["imageDetails"][0]["imageDigest"]
        assert d["containerProperties"]["image"].endswith(f"/showdown/{name.split('-')[1]}@{pushed}")  # by digest: what was pushed
        assert d["containerProperties"]["command"] == ["batch", "job"]
        assert d["tags"][b.TAG_KEY] == "showdown"
    manifest = json.loads(client("s3").get_object(Bucket=inventory()["buckets"][0], Key=f"runs/{run}/manifest.json")["Body"].read())
    assert [c["framework"] for c in manifest["children"]] == ["torch", "jax"]
    jobs = batch.describe_jobs(jobs=[c["job_id"] for c in manifest["children"]])["jobs"]
    assert len(jobs) == 2
    env = {e["name"]: e["value"] for e in jobs[0]["container"]["environment"]}
    assert env["SHOWDOWN_FRAMEWORK"] == "torch" and env["SHOWDOWN_DEVICE"] == "cuda"
    assert env["SHOWDOWN_BATCH_OUTPUT"] == f"s3://{manifest['bucket']}/runs/{run}/"
    assert env["SHOWDOWN_RUN_ARGS"] == "--probe layers/dense --rounds 9"  # what the job's `showdown run` gets

    # the same definition is not registered again; --repeat makes an array job of that many children
    code, out, err = sd(capsys, "submit", "--framework", "torch", "--timeout", "900", "--probe", "layers/dense", "--repeat", "3")
    assert code == 0, err
    assert len(batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]) == 2
    run2 = out.strip().splitlines()[-1]
    children = r.child_jobs(r.manifest_for(b.load_stack("showdown"), run2, b.Aws(REGION)))
    assert [(i, job_id.rsplit(":", 1)[1]) for _, i, job_id in children] == [(0, "0"), (1, "1"), (2, "2")]
    assert len(batch.describe_jobs(jobs=[j for _, _, j in children])["jobs"]) == 3

    code, out, _ = sd(capsys, "status", run2, "--watch", "--interval", "0.2")
    assert code == 0 and "3 succeeded" in out and "torch-cuda-2" in out


def test_status_shows_a_failed_job_with_its_reason_and_log(aws: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch", "--device", "cpu")[0] == 0
    fake_push(["torch"], "cpu")
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails the job at once
    code, out, _ = sd(capsys, "submit", "--framework", "torch")
    run = out.strip().splitlines()[-1]
    manifest = r.manifest_for(b.load_stack("showdown"), run, b.Aws(REGION))
    client("s3").put_object(Bucket=manifest["bucket"], Key=f"{manifest['prefix']}torch-cpu/run.log",
                            Body=b"starting\nTraceback (most recent call last)\nRuntimeError: the worker crashed\n")
    code, out, _ = sd(capsys, "status", run, "--watch", "--interval", "0.2")
    assert code == 1
    assert "torch-cpu failed" in out and "FAILED" in out
    assert "| RuntimeError: the worker crashed" in out  # the tail of its log


def test_submit_refuses_a_missing_queue_an_unpushed_image_and_submits_nothing(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch")[0] == 0
    code, _, err = sd(capsys, "submit", "--framework", "torch", "--job-queue", "nope")
    assert code == 2 and "job queue nope does not exist" in one_line_error(err)
    code, _, err = sd(capsys, "submit", "--framework", "torch")
    assert code == 2 and "showdown batch push --framework torch" in one_line_error(err)
    assert inventory()["definitions"] == []
    assert client("batch").list_jobs(jobQueue="showdown-cuda", jobStatus="SUCCEEDED")["jobSummaryList"] == []
    assert r.recent_runs() == []


@pytest.mark.parametrize("run", ["20990101T000000Z-abcdef", "not-a-run"])
def test_status_and_collect_of_a_run_that_does_not_exist(aws: str, run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch")[0] == 0
    for action in ("status", "collect"):
        code, _, err = sd(capsys, action, run)
        assert code == 2
        line = one_line_error(err)
        assert ("no run 20990101T000000Z-abcdef" in line) if run[0] == "2" else ("is not a run id" in line)


def test_an_unknown_framework_is_one_line(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = sd(capsys, "plan", "--framework", "torch,keras9")
    assert code == 2 and "keras9" in one_line_error(err)


# ------------------------------------------------------------------------------------------------ collect
def stored_cpu_document() -> tuple[str, bytes]:
    for path in sorted(RESULTS.glob("*-cpu-*.json")):
        doc = json.loads(path.read_text())
        if doc.get("device") == "cpu" and doc.get("kind", "run") == "run" and not validate_document(doc):
            return f"{doc['framework']}-cpu-20261130T000000Z.json", path.read_bytes()
    raise AssertionError("results/ holds a valid CPU document")


def test_collect_validates_every_document_and_a_partial_run_says_what_is_missing(aws: str, tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert sd(capsys, "setup", "--region", REGION, "--framework", "torch,jax", "--device", "cpu")[0] == 0
    fake_push(["torch", "jax"], "cpu")
    run = sd(capsys, "submit", "--framework", "torch,jax")[1].strip().splitlines()[-1]
    manifest = r.manifest_for(b.load_stack("showdown"), run, b.Aws(REGION))
    name, body = stored_cpu_document()
    s3, pre = client("s3"), manifest["prefix"]
    s3.put_object(Bucket=manifest["bucket"], Key=f"{pre}torch-cpu/{name}", Body=body)
    s3.put_object(Bucket=manifest["bucket"], Key=f"{pre}jax-cpu/jax-cpu-20261130T000000Z.json", Body=b'{"schema": "nonsense"')
    s3.put_object(Bucket=manifest["bucket"], Key=f"{pre}torch-cpu/deeper/evil.json", Body=body)  # not a child's document
    s3.put_object(Bucket=manifest["bucket"], Key=f"{pre}elsewhere/{name}", Body=body)  # not a child of this run
    sd(capsys, "status", run, "--watch", "--interval", "0.2")

    out_root = tmp_path / "results"
    code, out, err = sd(capsys, "collect", run, "--out", str(out_root))
    assert code == 3, err  # partial
    folder = out_root / run
    got = sorted(p.name for p in folder.glob("*.json"))
    assert got == sorted([name, f"jax-cpu-{run[:16]}-missing.json"])
    assert not validate_document(load_document(folder / name))
    missing = load_document(folder / f"jax-cpu-{run[:16]}-missing.json")
    assert missing["kind"] == "unavailable" and not validate_document(missing)
    assert "SUCCEEDED" in missing["reason"]  # the job ended, yet its document did not arrive whole
    assert "invalid" in out and "jax-cpu/jax-cpu-20261130T000000Z.json" in out
    report = (folder / "report.md").read_text()
    assert "Did not run here" in report and "jax" in report
    assert (folder / "report.html").exists()


# ------------------------------------------------------------------------------------------------ the job itself
@pytest.fixture(scope="module")
def torch_python() -> str:
    """The interpreter of torch's own virtualenv (built on first use): stands in for the image's /opt/venv."""
    return str(VenvRunner().prepare(registry.get("torch"), "cpu", lambda text: None).argv[0])


def job_env(aws: str, bucket: str, python: str, args: str, job_id: str) -> dict[str, str]:
    return {**os.environ, "SHOWDOWN_FRAMEWORK": "torch", "SHOWDOWN_DEVICE": "cpu", "SHOWDOWN_FRAMEWORK_PYTHON": python,
            "SHOWDOWN_BATCH_OUTPUT": f"s3://{bucket}/runs/R/", "SHOWDOWN_RUN_ARGS": args, "AWS_BATCH_JOB_ID": job_id,
            "SHOWDOWN_BATCH_REGION": REGION}


def test_the_job_is_a_local_run_whose_documents_validate(aws: str, torch_python: str, tmp_path: Path) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="out")
    env = job_env(aws, "out", torch_python, "--probe layers/dense --probe graphs/define_by_run --quick", "abc:2")
    assert batch_job.run_command(env, tmp_path)[2:4] == ["harness", "run"]  # the CLI's own run, nothing else
    assert batch_job.main(env) == 0
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="out")["Contents"])
    docs = [k for k in keys if k.endswith(".json") and not k.endswith("status.json")]
    assert keys == sorted([*docs, "runs/R/torch-cpu-2/run.log", "runs/R/torch-cpu-2/status.json"]) and len(docs) == 1
    local = tmp_path / "doc.json"
    local.write_bytes(s3.get_object(Bucket="out", Key=docs[0])["Body"].read())
    doc = load_document(local)
    assert not validate_document(doc) and doc["complete"] and doc["runner"]["name"] == "system"
    assert set(doc["records"]) == {"layers/dense", "graphs/define_by_run"}
    assert cli.main(["validate", str(local)]) == 0
    status = json.loads(s3.get_object(Bucket="out", Key="runs/R/torch-cpu-2/status.json")["Body"].read())
    assert status["exit_code"] == 0 and status["documents"] == [docs[0].rsplit("/", 1)[1]]


def test_a_stopped_job_uploads_what_it_measured(aws: str, torch_python: str) -> None:
    """Batch stops a job with SIGTERM (timeout, cancel): the probes completed so far still reach the bucket."""
    s3 = client("s3")
    s3.create_bucket(Bucket="out")
    env = job_env(aws, "out", torch_python, "--suite layers,graphs,throughput --quick", "abc")
    # started with SIGINT ignored, as a job started in the background of a shell script is: the job's interrupt of
    # its run (SIGINT) must still work
    proc = subprocess.Popen([sys.executable, "-m", "harness", "batch", "job"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout is not None
    first = proc.stdout.readline()
    scratch = Path(first.split(" in ", 1)[1].split(" -> ")[0])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the run saves its document after every probe: stop it after the third
        done = 0
        for path in scratch.glob("torch-cpu-*.json"):
            with contextlib.suppress(ValueError, OSError):
                done = len(json.loads(path.read_text())["records"])
        if done >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, first + rest
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="out").get("Contents", [])]
    docs = [k for k in keys if k.endswith(".json") and not k.endswith("status.json")]
    assert len(docs) == 1, first + rest
    doc = json.loads(s3.get_object(Bucket="out", Key=docs[0])["Body"].read())
    assert not validate_document(doc) and not doc["complete"]
    assert 3 <= len(doc["records"]) < 40, first + rest
    assert "runs/R/torch-cpu/run.log" in keys


# ------------------------------------------------------------------------------------------------ end to end, in Docker
@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker registry on 127.0.0.1 (Debian's docker-registry; .ci/run installs it): `batch push --registry` pushes
    there and moto's Docker mode runs the jobs from it. Missing, it FAILS the test."""
    import shutil

    exe = shutil.which("docker-registry") or shutil.which("registry")
    if exe is None:
        pytest.fail("the end-to-end Batch test needs Debian's docker-registry (apt-get install docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).read()  # noqa: S310 (loopback)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the local registry did not start")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)
    from harness.runners import images

    c = images.client()  # the tags push made for this registry go with it (the images stay under their own tags)
    for image in c.images.list():
        for tag in image.tags:
            if tag.startswith(f"127.0.0.1:{port}/"):
                with contextlib.suppress(Exception):
                    c.images.remove(tag, noprune=False)


def test_end_to_end_two_frameworks_run_in_their_images_and_come_back_as_documents(
        aws: str, local_registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """setup, push (the real batch images, to a registry on 127.0.0.1), submit, status, collect, with moto running
    each job's container through the local Docker engine on the host network (so the job reaches moto's S3 on
    127.0.0.1 and nothing else). One more job fails inside its container: status shows it with its log."""
    from tests.conftest import framework_image

    for name in ("torch", "chainer"):
        framework_image(name)
    moto_config(aws, use_docker=True)
    code, _, err = sd(capsys, "setup", "--region", REGION, "--device", "cpu", "--framework", "torch,chainer",
                      "--registry", local_registry)
    assert code == 0, err
    code, out, err = sd(capsys, "push", "--framework", "torch,chainer")
    assert code == 0, err
    assert f"{local_registry}/showdown/torch@sha256:" in out and f"{local_registry}/showdown/chainer@sha256:" in out
    to_moto = ["--env", f"AWS_ENDPOINT_URL={aws}", "--env", "AWS_ACCESS_KEY_ID=testing", "--env", "AWS_SECRET_ACCESS_KEY=testing"]
    code, out, err = sd(capsys, "submit", "--framework", "torch,chainer", "--probe", "layers/dense", "--probe",
                        "graphs/define_by_run", "--quick", "--timeout", "600", *to_moto)
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    code, out, err = sd(capsys, "status", run, "--watch", "--interval", "1")
    assert code == 0, out + err
    assert "2 succeeded" in out

    code, out, err = sd(capsys, "collect", run, "--out", str(tmp_path / "results"))
    assert code == 0, out + err
    folder = tmp_path / "results" / run
    docs = {load_document(p)["framework"]: load_document(p) for p in folder.glob("*-cpu-*.json")}
    assert set(docs) == {"torch", "chainer"}
    for name, doc in docs.items():
        assert not validate_document(doc) and doc["complete"]
        assert doc["records"]["layers/dense"]["status"] == "ok", name
        assert doc["runner"]["name"] == "system" and doc["runner"]["python"] == "/opt/venv/bin/python"
    assert cli.main(["validate", str(folder)]) == 0
    report = (folder / "report.md").read_text()
    assert "torch" in report and "chainer" in report

    # a job whose suite fails inside its container: FAILED, and the end of its log says why
    code, out, err = sd(capsys, "submit", "--framework", "torch", "--probe", "layers/no_such_op", "--timeout", "600", *to_moto)
    assert code == 0, err
    bad = out.strip().splitlines()[-1]
    code, out, _ = sd(capsys, "status", bad, "--watch", "--interval", "1")
    assert code == 1
    assert "torch-cpu failed" in out and "unknown probe 'layers/no_such_op'" in out


def test_a_role_batch_cannot_see_yet_is_retried_and_any_other_refusal_is_not() -> None:
    calls: list[int] = []

    def late_role() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("ClientException: instanceRole arn:aws:iam::1:instance-profile/x is not authorized yet")
        return "made"

    assert b._fresh_iam_retry(late_role, pause_s=0) == "made" and len(calls) == 3

    def bad_types() -> str:
        calls.append(1)
        raise RuntimeError("ClientException: instance type g9.huge is invalid")

    calls.clear()
    with pytest.raises(RuntimeError, match=r"g9\.huge"):
        b._fresh_iam_retry(bad_types, pause_s=0)
    assert len(calls) == 1

    def never() -> str:
        calls.append(1)
        raise RuntimeError("role x cannot be assumed")

    calls.clear()
    with pytest.raises(RuntimeError, match="cannot be assumed"):
        b._fresh_iam_retry(never, tries=4, pause_s=0)
    assert len(calls) == 4


def test_submit_refuses_too_few_rounds(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        sd(capsys, "submit", "--framework", "torch", "--rounds", "3")
    assert exc.value.code == 2 and "at least 5 rounds" in capsys.readouterr().err
