"""AWS Batch: the framework images as jobs on cloud instances, results collected back as the same documents.

    showdown batch plan      what would be created or used, with a cost bound; creates nothing
    showdown batch setup     creates what is missing (tagged), idempotently; prints the job role's policy
    showdown batch push      builds each framework's batch image and pushes it (ECR, or --registry)
    showdown batch submit    one job per framework (an array job of --repeat children), documents to S3
    showdown batch status    each job's state; for a failed one its reason and the tail of its log
    showdown batch collect   documents into results/<run>/, validated, and the report; partial runs say what is missing
    showdown batch teardown  removes what setup created (found by its tag), nothing else

Everything goes through boto3; its usual configuration applies (credentials from the environment, a profile or SSO;
AWS_ENDPOINT_URL for a stand-in such as moto). Resource names derive from the stack name and the device flavour, so
every command finds what setup made without a local state file; setup also remembers its options in
.showdown/batch/<stack>.json so later commands need none.

Why one job per framework rather than one array job for all: every child of an AWS Batch array job runs the same job
definition, so the same image (container overrides cannot change it), and each framework has an image of its own.
An array job is used for repeats of one framework (--repeat N: N children, N documents).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.registry import home
from harness.results import write_json_atomic

TAG_KEY = "showdown:stack"
PRICES = Path(__file__).parent / "data" / "aws-prices.json"
DEFAULT_TYPES = {"cuda": ["g6.xlarge", "g6.2xlarge", "g5.xlarge"], "cpu": ["c7i.2xlarge", "m7i.2xlarge"]}
MANAGED_POLICIES = {
    "execution": "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    "instance": "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
}
TRUST = {"job": "ecs-tasks.amazonaws.com", "execution": "ecs-tasks.amazonaws.com", "instance": "ec2.amazonaws.com"}


class BatchError(Exception):
    """Bad input or an AWS refusal, said in one line."""


# ------------------------------------------------------------------------------------------------ configuration
@dataclass
class Stack:
    """What one set of Batch resources is called and how it is shaped."""

    name: str = "showdown"
    device: str = "cuda"
    region: str | None = None
    bucket: str | None = None
    prefix: str = "runs"
    instance_types: list[str] = field(default_factory=list)
    max_vcpus: int = 64
    spot: bool = False
    subnets: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    compute_environment: str | None = None  # reuse this one (name or ARN) instead of creating one
    job_queue: str | None = None  # reuse this one
    job_role: str | None = None  # reuse this role ARN for the jobs
    registry: str | None = None  # push to and run from this registry instead of ECR (host[:port])

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", self.name):
            raise BatchError(f"stack name {self.name!r}: lower-case letters, digits and '-', 2-31 characters")
        if self.device not in ("cpu", "cuda"):
            raise BatchError(f"device {self.device!r}: cpu or cuda")
        if not self.instance_types:
            self.instance_types = list(DEFAULT_TYPES[self.device])
        self.prefix = self.prefix.strip("/")

    @property
    def ce_name(self) -> str:
        return f"{self.name}-{self.device}"

    @property
    def queue_name(self) -> str:
        return f"{self.name}-{self.device}"

    def role_name(self, kind: str) -> str:
        return f"{self.name}-batch-{kind}"

    def repository(self, framework: str) -> str:
        return f"{self.name}/{framework}"

    def job_definition(self, framework: str) -> str:
        return f"{self.name}-{framework}-{self.device}"

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_KEY: self.name}


def config_path(name: str) -> Path:
    return home() / "batch" / f"{name}.json"


def load_stack(name: str, **given: Any) -> Stack:
    """The stack as setup saved it, with every option the user gave now taking precedence."""
    saved: dict[str, Any] = {}
    path = config_path(name)
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BatchError(f"{path}: unreadable saved stack ({exc}); remove it or pass every option") from None
    fields = set(Stack.__dataclass_fields__)
    merged = {k: v for k, v in saved.items() if k in fields}
    merged.update({k: v for k, v in given.items() if k in fields and v not in (None, [], "")})
    merged["name"] = name
    return Stack(**merged)


def save_stack(stack: Stack) -> Path:
    path = config_path(stack.name)
    write_json_atomic(path, asdict(stack))
    return path


# ------------------------------------------------------------------------------------------------ AWS access
def boto3_module() -> Any:
    try:
        import boto3
    except ImportError:
        raise BatchError("boto3 is not installed: pip install -e '.[aws]'") from None
    return boto3


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """AWS's exceptions as one line that says what was being done."""
    from botocore import exceptions as bx

    try:
        yield
    except bx.NoCredentialsError:
        raise BatchError(f"{what}: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                         "or run `aws sso login`)") from None
    except bx.NoRegionError:
        raise BatchError(f"{what}: no AWS region (pass --region or set AWS_REGION)") from None
    except bx.EndpointConnectionError as exc:
        raise BatchError(f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}") from None
    except bx.ClientError as exc:
        err = exc.response.get("Error", {})
        raise BatchError(f"{what}: {err.get('Code', 'error')}: {err.get('Message', str(exc))}") from None
    except bx.BotoCoreError as exc:
        raise BatchError(f"{what}: {exc}") from None


class Aws:
    """The clients of one region, made on first use."""

    def __init__(self, region: str | None) -> None:
        boto3 = boto3_module()
        self.session = boto3.Session(region_name=region) if region else boto3.Session()
        self.region = self.session.region_name
        if not self.region:
            raise BatchError("no AWS region: pass --region or set AWS_REGION (or a region in your AWS profile)")
        self._clients: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def has_credentials(self) -> bool:
        return self.session.get_credentials() is not None

    def account(self) -> str:
        with aws_errors("reading the AWS account (sts get-caller-identity)"):
            return str(self.sts.get_caller_identity()["Account"])


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def default_bucket(stack: Stack, aws: Aws) -> str:
    return stack.bucket or f"{stack.name}-results-{aws.account()}-{aws.region}"


# ------------------------------------------------------------------------------------------------ what exists
@dataclass
class Item:
    kind: str
    name: str
    state: str  # exists | create | reuse | missing | unchecked
    note: str = ""


def bucket_region(aws: Aws, bucket: str) -> str | None:
    """The bucket's region, or None if no such bucket. Another account's bucket is an error."""
    try:
        loc = aws.s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except Exception as exc:
        code = _code(exc)
        if code in ("NoSuchBucket", "404", "NotFound"):
            return None
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            raise BatchError(f"bucket {bucket} exists but this account cannot use it (another owner?): choose --bucket") from None
        raise
    return loc or "us-east-1"


def _iam_exists(lookup: Callable[[], Any]) -> bool:
    """Whether an IAM lookup finds its entity (NoSuchEntity: no; any other error is raised)."""
    try:
        lookup()
        return True
    except Exception as exc:
        if _code(exc) == "NoSuchEntity":
            return False
        raise


def _role_exists(aws: Aws, name: str) -> bool:
    return _iam_exists(lambda: aws.iam.get_role(RoleName=name))


def _profile_exists(aws: Aws, name: str) -> bool:
    return _iam_exists(lambda: aws.iam.get_instance_profile(InstanceProfileName=name))


def _repository(aws: Aws, name: str) -> dict[str, Any] | None:
    try:
        repos = aws.ecr.describe_repositories(repositoryNames=[name])["repositories"]
    except Exception as exc:
        if _code(exc) == "RepositoryNotFoundException":
            return None
        raise
    return repos[0] if repos else None


def _compute_environment(aws: Aws, name: str) -> dict[str, Any] | None:
    found = aws.batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    return found[0] if found else None


def _queue(aws: Aws, name: str) -> dict[str, Any] | None:
    found = aws.batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    return found[0] if found else None


def survey(stack: Stack, frameworks: list[str], aws: Aws | None) -> list[Item]:
    """Every resource a run needs and whether it exists. Without an AWS connection, nothing is checked."""
    bucket = stack.bucket or (f"{stack.name}-results-<account>-{stack.region or '<region>'}" if aws is None else None)
    want: list[tuple[str, str]] = [("s3 bucket", bucket or "")]
    want += [("ecr repository", stack.repository(f)) for f in frameworks] if not stack.registry else []
    want += [("iam role", stack.role_name("job"))] if not stack.job_role else [("iam role", stack.job_role)]
    want += [("iam role", stack.role_name("execution")), ("iam role", stack.role_name("instance")),
             ("instance profile", stack.role_name("instance"))]
    want += [("compute environment", stack.compute_environment or stack.ce_name), ("job queue", stack.job_queue or stack.queue_name)]
    want += [("job definition", stack.job_definition(f)) for f in frameworks]
    if aws is None:
        return [Item(kind, name, "unchecked") for kind, name in want]
    items: list[Item] = []
    with aws_errors("surveying what exists"):
        bucket = default_bucket(stack, aws)
        region = bucket_region(aws, bucket)
        if region is None:
            items.append(Item("s3 bucket", bucket, "create", f"{stack.prefix}/<run>/ for documents and logs"))
        elif region != aws.region:
            items.append(Item("s3 bucket", bucket, "wrong region", f"in {region}, not {aws.region}"))
        else:
            items.append(Item("s3 bucket", bucket, "exists", f"{stack.prefix}/<run>/ for documents and logs"))
        for f in frameworks if not stack.registry else []:
            items.append(Item("ecr repository", stack.repository(f), "exists" if _repository(aws, stack.repository(f)) else "create"))
        if stack.job_role:
            items.append(Item("iam role", stack.job_role, "reuse", "the jobs' role (given)"))
        else:
            items.append(Item("iam role", stack.role_name("job"), "exists" if _role_exists(aws, stack.role_name("job")) else "create",
                              "the jobs' role: writes to the bucket prefix only"))
        items.append(Item("iam role", stack.role_name("execution"),
                          "exists" if _role_exists(aws, stack.role_name("execution")) else "create", "pulls the image, writes logs"))
        items.append(Item("iam role", stack.role_name("instance"),
                          "exists" if _role_exists(aws, stack.role_name("instance")) else "create", "the ECS agent on each instance"))
        items.append(Item("instance profile", stack.role_name("instance"),
                          "exists" if _profile_exists(aws, stack.role_name("instance")) else "create"))
        ce_name = stack.compute_environment or stack.ce_name
        ce = _compute_environment(aws, ce_name)
        shape = f"{'spot' if stack.spot else 'on-demand'} {','.join(stack.instance_types)}, 0-{stack.max_vcpus} vCPUs"
        items.append(Item("compute environment", ce_name, ("reuse" if ce else "missing") if stack.compute_environment else
                          ("exists" if ce else "create"), ce.get("status", "") if ce else shape))
        q_name = stack.job_queue or stack.queue_name
        q = _queue(aws, q_name)
        items.append(Item("job queue", q_name, ("reuse" if q else "missing") if stack.job_queue else ("exists" if q else "create"),
                          q.get("status", "") if q else ""))
        for f in frameworks:
            found = aws.batch.describe_job_definitions(jobDefinitionName=stack.job_definition(f), status="ACTIVE")["jobDefinitions"]
            items.append(Item("job definition", stack.job_definition(f), "exists" if found else "create", "registered by submit"))
    return items


# ------------------------------------------------------------------------------------------------ cost
def load_prices(path: Path = PRICES) -> dict[str, Any]:
    try:
        table: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BatchError(f"{path}: unreadable price table ({exc})") from None
    return table


def job_shape(device: str, vcpus: int | None = None, memory_mib: int | None = None) -> dict[str, int]:
    """What one job asks for: a whole small GPU instance (4 vCPUs, 1 GPU), or 4 vCPUs on the CPU."""
    return {"vcpus": vcpus or 4, "memory_mib": memory_mib or 14_000, "gpus": 1 if device == "cuda" else 0}


def estimate(stack: Stack, jobs: int, timeout_s: int, shape: dict[str, int], prices: dict[str, Any]) -> dict[str, Any]:
    """An upper bound: every job runs to its timeout, each on the dearest allowed type that can hold it."""
    table = prices.get("prices", {})
    fits, unknown, too_small = [], [], []
    for t in stack.instance_types:
        p = table.get(t)
        if p is None:
            unknown.append(t)
        elif p["vcpus"] >= shape["vcpus"] and p["memory_gib"] * 1024 * 0.95 >= shape["memory_mib"] and p["gpus"] >= shape["gpus"]:
            fits.append((t, float(p["usd_per_hour"])))
        else:
            too_small.append(t)
    hours = timeout_s / 3600
    bound = jobs * hours * max(price for _, price in fits) if fits and not unknown else None
    return {"jobs": jobs, "hours_per_job_at_most": hours, "per_hour": dict(fits), "unknown": unknown, "too_small": too_small,
            "bound_usd": bound, "as_of": prices.get("as_of"), "region": prices.get("region"), "source": prices.get("source"),
            "spot": stack.spot}


def refresh_prices(aws: Aws, types: list[str], region: str, path: Path = PRICES) -> dict[str, Any]:
    """Read today's on-demand Linux prices of `types` in `region` from the AWS Price List API into the table."""
    client = aws.session.client("pricing", region_name="us-east-1")  # the API's own endpoint region
    table = load_prices(path) if path.exists() else {"prices": {}}
    out: dict[str, Any] = {}
    with aws_errors("reading the AWS Price List"):
        for t in types:
            filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in (
                ("instanceType", t), ("regionCode", region), ("operatingSystem", "Linux"), ("tenancy", "Shared"),
                ("preInstalledSw", "NA"), ("capacitystatus", "Used"))]
            products = client.get_products(ServiceCode="AmazonEC2", Filters=filters, MaxResults=10)["PriceList"]
            for raw in products:
                product = json.loads(raw) if isinstance(raw, str) else raw
                attrs = product["product"]["attributes"]
                for term in product.get("terms", {}).get("OnDemand", {}).values():
                    for dim in term["priceDimensions"].values():
                        usd = float(dim["pricePerUnit"]["USD"])
                        if usd > 0:
                            out[t] = {"usd_per_hour": usd, "vcpus": int(attrs.get("vcpu", 0)),
                                      "memory_gib": float(str(attrs.get("memory", "0")).split()[0].replace(",", "")),
                                      "gpus": int(attrs.get("gpu", 0) or 0), "gpu": attrs.get("gpuMemory") and attrs.get("physicalProcessor")}
                if t in out:
                    break
    missing = [t for t in types if t not in out]
    if missing:
        raise BatchError(f"the Price List has no on-demand Linux price for {', '.join(missing)} in {region}")
    table = {"what": table.get("what", "EC2 on-demand prices"), "region": region,
             "as_of": _dt.date.today().isoformat(), "source": "AWS Price List API (pricing get-products), read by "
             "`showdown batch prices --refresh`", "prices": {**table.get("prices", {}), **out}}
    write_json_atomic(path, table)
    return table


# ------------------------------------------------------------------------------------------------ setup
def job_role_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """The least the jobs need: write their documents and logs under the prefix, nothing else."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "WriteRunOutputs", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*"]},
    ]}


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def _default_network(aws: Aws) -> tuple[list[str], list[str]]:
    vpcs = aws.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise BatchError(f"no default VPC in {aws.region}: pass --subnets and --security-groups")
    vpc = vpcs[0]["VpcId"]
    subnets = [s["SubnetId"] for s in aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    groups = aws.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}])
    sgs = [g["GroupId"] for g in groups["SecurityGroups"]]
    if not subnets or not sgs:
        raise BatchError(f"the default VPC {vpc} has no subnets or no default security group: pass --subnets and --security-groups")
    return subnets, sgs


def _wait(what: str, probe: Callable[[], str | None], ok: tuple[str, ...], timeout_s: float = 600, say: Callable[[str], None] = print) -> None:
    """Poll until probe() returns one of `ok` (None: gone), with backoff; a status outside them stops it."""
    delay, deadline = 1.0, time.monotonic() + timeout_s
    while True:
        state = probe()
        if state in ok:
            return
        if state is not None and state.startswith("INVALID"):
            raise BatchError(f"{what} is {state}")
        if time.monotonic() > deadline:
            raise BatchError(f"{what} still {state} after {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 15.0)


class Undo:
    """What this invocation created, removed again in reverse order if a later step fails."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.steps: list[tuple[str, Callable[[], None]]] = []
        self.say = say

    def add(self, what: str, fn: Callable[[], None]) -> None:
        self.steps.append((what, fn))

    def run(self) -> None:
        for what, fn in reversed(self.steps):
            try:
                fn()
                self.say(f"  rolled back: {what}")
            except Exception as exc:  # keep going: remove as much as possible, and say what is left
                self.say(f"  could not roll back {what}: {str(exc)[:160]} (teardown removes it)")


def setup(stack: Stack, frameworks: list[str], say: Callable[[str], None] = print) -> list[Item]:
    """Create what is missing; a second run changes nothing. Everything checked before anything is created; if a
    creation fails, what this run created is removed again."""
    aws = Aws(stack.region)
    stack.region = aws.region
    with aws_errors("checking the AWS account"):
        stack.bucket = default_bucket(stack, aws)
    items = survey(stack, frameworks, aws)
    for item in items:
        if item.state == "wrong region":
            raise BatchError(f"bucket {item.name} is {item.note}: jobs would write across regions; choose --bucket in "
                             f"{aws.region} or --region to match")
        if item.state == "missing":
            raise BatchError(f"{item.kind} {item.name} does not exist in {aws.region} (given to reuse)")
    if stack.job_role:
        with aws_errors(f"checking the job role {stack.job_role}"):
            aws.iam.get_role(RoleName=stack.job_role.rsplit("/", 1)[-1])
    if not stack.compute_environment and not (stack.subnets and stack.security_groups):
        with aws_errors("finding the default VPC"):
            subnets, sgs = _default_network(aws)
        stack.subnets = stack.subnets or subnets
        stack.security_groups = stack.security_groups or sgs
    undo = Undo(say)
    created: list[Item] = []
    tags = stack.tags
    try:
        _setup_steps(stack, frameworks, aws, items, undo, created, tags, say)
    except BatchError:
        undo.run()
        raise
    except Exception as exc:
        undo.run()
        raise BatchError(f"setup failed ({str(exc)[:200]}); what this run created was removed") from None
    save_stack(stack)
    return [Item(i.kind, i.name, "created" if any(c.kind == i.kind and c.name == i.name for c in created) else i.state, i.note)
            for i in items if i.kind != "job definition"]


def _setup_steps(stack: Stack, frameworks: list[str], aws: Aws, items: list[Item], undo: Undo, created: list[Item],
                 tags: dict[str, str], say: Callable[[str], None]) -> None:
    todo = {(i.kind, i.name) for i in items if i.state == "create"}
    bucket = stack.bucket or ""
    with aws_errors(f"creating bucket {bucket}"):
        if ("s3 bucket", bucket) in todo:
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if aws.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
            aws.s3.create_bucket(**kwargs)
            undo.add(f"bucket {bucket}", lambda: aws.s3.delete_bucket(Bucket=bucket))
            aws.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
            aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
            created.append(Item("s3 bucket", bucket, "created"))
            say(f"created s3 bucket {bucket}")
    for f in frameworks:
        repo = stack.repository(f)
        if ("ecr repository", repo) in todo:
            with aws_errors(f"creating ECR repository {repo}"):
                aws.ecr.create_repository(repositoryName=repo, tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                                          imageTagMutability="MUTABLE")
                undo.add(f"ECR repository {repo}", functools.partial(aws.ecr.delete_repository, repositoryName=repo, force=True))
                created.append(Item("ecr repository", repo, "created"))
                say(f"created ECR repository {repo}")
    iam_tags = [{"Key": k, "Value": v} for k, v in tags.items()]
    for kind in ("job", "execution", "instance"):
        name = stack.role_name(kind)
        if kind == "job" and stack.job_role:
            continue
        if ("iam role", name) in todo:
            with aws_errors(f"creating IAM role {name}"):
                aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(TRUST[kind]), Tags=iam_tags,
                                    Description=f"showdown batch ({stack.name}): {kind}")
                undo.add(f"IAM role {name}", functools.partial(_delete_role, aws, name))
                if kind == "job":
                    aws.iam.put_role_policy(RoleName=name, PolicyName="showdown-run-outputs",
                                            PolicyDocument=json.dumps(job_role_policy(bucket, stack.prefix)))
                else:
                    aws.iam.attach_role_policy(RoleName=name, PolicyArn=MANAGED_POLICIES[kind])
                created.append(Item("iam role", name, "created"))
                say(f"created IAM role {name}")
    profile = stack.role_name("instance")
    if ("instance profile", profile) in todo:
        with aws_errors(f"creating instance profile {profile}"):
            aws.iam.create_instance_profile(InstanceProfileName=profile, Tags=iam_tags)
            undo.add(f"instance profile {profile}", lambda: _delete_profile(aws, profile))
            aws.iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=profile)
            created.append(Item("instance profile", profile, "created"))
            say(f"created instance profile {profile}")
    if ("compute environment", stack.ce_name) in todo:
        with aws_errors(f"creating compute environment {stack.ce_name}"):
            service_role = _batch_service_role(aws)
            profile_arn = aws.iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Arn"]
            resources: dict[str, Any] = {
                "type": "SPOT" if stack.spot else "EC2", "minvCpus": 0, "maxvCpus": stack.max_vcpus, "desiredvCpus": 0,
                "instanceTypes": stack.instance_types, "subnets": stack.subnets, "securityGroupIds": stack.security_groups,
                "instanceRole": profile_arn, "tags": tags,
                "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED" if stack.spot else "BEST_FIT_PROGRESSIVE",
            }
            if stack.device == "cuda":
                resources["ec2Configuration"] = [{"imageType": "ECS_AL2_NVIDIA"}]
            _fresh_iam_retry(lambda: aws.batch.create_compute_environment(
                computeEnvironmentName=stack.ce_name, type="MANAGED", state="ENABLED", computeResources=resources,
                serviceRole=service_role, tags=tags))
            undo.add(f"compute environment {stack.ce_name}", lambda: _delete_ce(aws, stack.ce_name))
            created.append(Item("compute environment", stack.ce_name, "created"))
            _wait(f"compute environment {stack.ce_name}", lambda: (_compute_environment(aws, stack.ce_name) or {}).get("status"),
                  ("VALID",), say=say)
            say(f"created compute environment {stack.ce_name}")
    if ("job queue", stack.queue_name) in todo:
        with aws_errors(f"creating job queue {stack.queue_name}"):
            ce = _compute_environment(aws, stack.compute_environment or stack.ce_name) or {}
            aws.batch.create_job_queue(jobQueueName=stack.queue_name, state="ENABLED", priority=1, tags=tags,
                                       computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}])
            undo.add(f"job queue {stack.queue_name}", lambda: _delete_queue(aws, stack.queue_name))
            created.append(Item("job queue", stack.queue_name, "created"))
            _wait(f"job queue {stack.queue_name}", lambda: (_queue(aws, stack.queue_name) or {}).get("status"), ("VALID",), say=say)
            say(f"created job queue {stack.queue_name}")


def _fresh_iam_retry(call: Callable[[], Any], tries: int = 12, pause_s: float = 5.0) -> Any:
    """IAM is eventually consistent: a role or instance profile made a moment ago may not be visible to Batch yet.
    Such a refusal is retried for about a minute; any other is raised at once."""
    for attempt in range(tries):
        try:
            return call()
        except Exception as exc:
            text = str(exc).lower()
            about_iam = any(w in text for w in ("instance profile", "instancerole", "role"))
            not_yet = any(w in text for w in ("not authorized", "cannot be assumed", "invalid", "does not exist", "not found"))
            if attempt == tries - 1 or not (about_iam and not_yet):
                raise
            time.sleep(pause_s)
    return None


def _batch_service_role(aws: Aws) -> str:
    """Batch's service-linked role (account-wide, shared by every Batch user: created if missing, never removed)."""
    name = "AWSServiceRoleForBatch"
    try:
        return str(aws.iam.get_role(RoleName=name)["Role"]["Arn"])
    except Exception as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    return str(aws.iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]["Arn"])


def _delete_role(aws: Aws, name: str) -> None:
    for p in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        aws.iam.detach_role_policy(RoleName=name, PolicyArn=p["PolicyArn"])
    for p in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        aws.iam.delete_role_policy(RoleName=name, PolicyName=p)
    for prof in aws.iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        aws.iam.remove_role_from_instance_profile(InstanceProfileName=prof["InstanceProfileName"], RoleName=name)
    aws.iam.delete_role(RoleName=name)


def _delete_profile(aws: Aws, name: str) -> None:
    for role in aws.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]:
        aws.iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
    aws.iam.delete_instance_profile(InstanceProfileName=name)


def _delete_queue(aws: Aws, name: str) -> None:
    q = _queue(aws, name)
    if q is None:
        return
    if q.get("state") != "DISABLED":
        aws.batch.update_job_queue(jobQueue=name, state="DISABLED")
        _wait(f"job queue {name}", lambda: (_queue(aws, name) or {}).get("status"), ("VALID",))
    aws.batch.delete_job_queue(jobQueue=name)
    _wait(f"job queue {name} deletion", lambda: (_queue(aws, name) or {}).get("status"), (None, "DELETED"))  # type: ignore[arg-type]


def _delete_ce(aws: Aws, name: str) -> None:
    ce = _compute_environment(aws, name)
    if ce is None:
        return
    if ce.get("state") != "DISABLED":
        aws.batch.update_compute_environment(computeEnvironment=name, state="DISABLED")
        _wait(f"compute environment {name}", lambda: (_compute_environment(aws, name) or {}).get("status"), ("VALID",))
    aws.batch.delete_compute_environment(computeEnvironment=name)
    _wait(f"compute environment {name} deletion", lambda: (_compute_environment(aws, name) or {}).get("status"),
          (None, "DELETED"))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ teardown
def _tagged(tags: Any, stack: Stack) -> bool:
    if isinstance(tags, list):
        tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
    return bool(tags) and tags.get(TAG_KEY) == stack.name


def teardown(stack: Stack, frameworks: list[str], delete_results: bool = False, say: Callable[[str], None] = print) -> list[Item]:
    """Remove every resource of this stack that carries its tag; anything untagged (given to reuse, or made by
    someone else under the same name) is left alone and listed."""
    aws = Aws(stack.region)
    out: list[Item] = []

    def gone(kind: str, name: str) -> None:
        out.append(Item(kind, name, "removed"))
        say(f"removed {kind} {name}")

    def kept(kind: str, name: str, why: str) -> None:
        out.append(Item(kind, name, "kept", why))

    with aws_errors("tearing down"):
        for jd in aws.batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]:
            if jd["jobDefinitionName"].startswith(f"{stack.name}-") and _tagged(jd.get("tags"), stack):
                aws.batch.deregister_job_definition(jobDefinition=jd["jobDefinitionArn"])
                gone("job definition", f"{jd['jobDefinitionName']}:{jd['revision']}")
        q = _queue(aws, stack.queue_name)
        if q is not None:
            if _tagged(q.get("tags"), stack):
                _delete_queue(aws, stack.queue_name)
                gone("job queue", stack.queue_name)
            else:
                kept("job queue", stack.queue_name, "not tagged by this stack")
        ce = _compute_environment(aws, stack.ce_name)
        if ce is not None:
            if _tagged(ce.get("tags"), stack):
                _delete_ce(aws, stack.ce_name)
                gone("compute environment", stack.ce_name)
            else:
                kept("compute environment", stack.ce_name, "not tagged by this stack")
        profile = stack.role_name("instance")
        if _profile_exists(aws, profile):
            prof = aws.iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
            if _tagged(prof.get("Tags") or aws.iam.list_instance_profile_tags(InstanceProfileName=profile)["Tags"], stack):
                _delete_profile(aws, profile)
                gone("instance profile", profile)
            else:
                kept("instance profile", profile, "not tagged by this stack")
        for kind in ("job", "execution", "instance"):
            name = stack.role_name(kind)
            if _role_exists(aws, name):
                if _tagged(aws.iam.list_role_tags(RoleName=name)["Tags"], stack):
                    _delete_role(aws, name)
                    gone("iam role", name)
                else:
                    kept("iam role", name, "not tagged by this stack")
        for repo in aws.ecr.describe_repositories()["repositories"]:
            name = repo["repositoryName"]
            if name.startswith(f"{stack.name}/"):
                if _tagged(aws.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"], stack):
                    aws.ecr.delete_repository(repositoryName=name, force=True)
                    gone("ecr repository", name)
                else:
                    kept("ecr repository", name, "not tagged by this stack")
        bucket = stack.bucket
        if bucket and bucket_region(aws, bucket) is not None:
            try:
                tagset = aws.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
            except Exception as exc:
                if _code(exc) != "NoSuchTagSet":
                    raise
                tagset = []
            if not _tagged(tagset, stack):
                kept("s3 bucket", bucket, "not tagged by this stack")
            else:
                keys = [o["Key"] for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]
                if keys and not delete_results:
                    kept("s3 bucket", bucket, f"holds {len(keys)} objects (results): --delete-results removes them and the bucket")
                else:
                    for i in range(0, len(keys), 1000):
                        aws.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
                    aws.s3.delete_bucket(Bucket=bucket)
                    gone("s3 bucket", bucket)
    path = config_path(stack.name)
    if path.exists() and not any(i.state == "kept" and i.kind != "s3 bucket" for i in out):
        path.unlink()
    return out


# ------------------------------------------------------------------------------------------------ push
def ecr_login(aws: Aws) -> tuple[str, dict[str, str]]:
    """ECR's registry host and the Docker credentials its authorization token holds."""
    import base64

    with aws_errors("getting an ECR authorization token"):
        data = aws.ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = re.sub(r"^https?://", "", data["proxyEndpoint"]).rstrip("/")
    return host, {"username": user, "password": password}


def push_image(docker_client: Any, local_tag: str, repository: str, tags: list[str], auth: dict[str, str] | None,
               say: Callable[[str], None] = print) -> str:
    """Tag the local image as repository:tag for each tag and push; return the digest the registry reports."""
    image = docker_client.images.get(local_tag)
    digest = ""
    for tag in tags:
        image.tag(repository, tag=tag)
        say(f"pushing {repository}:{tag}")
        for chunk in docker_client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in chunk or "errorDetail" in chunk:
                raise BatchError(f"pushing {repository}:{tag} failed: {chunk.get('error') or chunk.get('errorDetail')}")
            aux = chunk.get("aux") or {}
            digest = aux.get("Digest", digest)
    if not digest:
        raise BatchError(f"pushing {repository} reported no digest")
    return str(digest)


def registry_repository(stack: Stack, aws: Aws | None, framework: str) -> str:
    if stack.registry:
        return f"{stack.registry}/{stack.repository(framework)}"
    assert aws is not None
    with aws_errors(f"reading ECR repository {stack.repository(framework)}"):
        repo = _repository(aws, stack.repository(framework))
    if repo is None:
        raise BatchError(f"no ECR repository {stack.repository(framework)} in {aws.region}: run `showdown batch setup` first")
    return str(repo["repositoryUri"])


def pushed_digest(stack: Stack, aws: Aws | None, framework: str) -> str:
    """The digest of the pushed image that jobs will run, or a one-line error if it was never pushed."""
    hint = f"run `showdown batch push --framework {framework}`"
    if stack.registry:
        import urllib.error
        import urllib.request

        url = f"http://{stack.registry}/v2/{stack.repository(framework)}/manifests/{stack.device}"
        req = urllib.request.Request(url, method="HEAD", headers={"Accept": ", ".join((
            "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"))})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (a registry the user named)
                digest = resp.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            raise BatchError(f"{stack.registry}/{stack.repository(framework)}:{stack.device} was never pushed "
                             f"(registry says {exc.code}): {hint}") from None
        except OSError as exc:
            raise BatchError(f"cannot reach the registry {stack.registry}: {exc}") from None
        if not digest:
            raise BatchError(f"the registry {stack.registry} gave no digest for {stack.repository(framework)}:{stack.device}")
        return str(digest)
    assert aws is not None
    try:
        with aws_errors(f"reading ECR images of {stack.repository(framework)}"):
            found = aws.ecr.describe_images(repositoryName=stack.repository(framework),
                                            imageIds=[{"imageTag": stack.device}])["imageDetails"]
    except BatchError as exc:
        if "ImageNotFound" in str(exc) or "RepositoryNotFound" in str(exc):
            raise BatchError(f"{stack.repository(framework)}:{stack.device} is not in ECR ({aws.region}): {hint}") from None
        raise
    if not found:
        raise BatchError(f"{stack.repository(framework)}:{stack.device} is not in ECR ({aws.region}): {hint}")
    return str(found[0]["imageDigest"])
