"""`showdown batch ...`: the command-line side of harness.runners.batch (arguments, tables, exit codes)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import registry
from harness.runners import batch as b
from harness.runners import batch_runs as r
from harness.timing import rounds_argument

ACTIONS = ("plan", "setup", "push", "submit", "status", "collect", "teardown", "prices", "job")

WALKTHROUGH = """\
a run, start to end (an AWS account with credentials in the environment or a profile):
  showdown batch plan --region us-east-1             what would be created, and a cost bound; creates nothing
  showdown batch setup --region us-east-1            bucket, ECR repositories, roles, compute environment, queue
  showdown batch push --framework torch,jax          build each framework's batch image and push it to ECR
  showdown batch submit --framework torch,jax        one job per framework; prints the run id
  showdown batch status RUN --watch                  follow the jobs until they end
  showdown batch collect RUN                         documents into results/RUN/, validated, and the report
  showdown batch teardown --yes                      remove what setup created (results kept unless --delete-results)

Options given to setup are remembered (.showdown/batch/<stack>.json); later commands need none of them.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("batch", help="run the suite as AWS Batch jobs on cloud GPU (or CPU) instances",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=WALKTHROUGH,
                       description=(b.__doc__ or "").split("\n\n")[0])
    p.add_argument("action", choices=ACTIONS, metavar="ACTION", help=", ".join(ACTIONS))
    p.add_argument("run", nargs="?", default=None, help="status/collect: the run id submit printed (default: the newest submitted here)")
    p.add_argument("--stack", default="showdown", help="name of this set of resources (default showdown)")
    p.add_argument("--region", default=None, help="AWS region (default: saved by setup, else AWS_REGION or the profile's)")
    p.add_argument("--device", choices=["cuda", "cpu"], default=None, help="cuda (default: GPU instances) or cpu")
    p.add_argument("--framework", "-f", default="all", help="framework(s), comma-separated, or all (default)")
    p.add_argument("--bucket", default=None, help="S3 bucket for documents and logs (default <stack>-results-<account>-<region>)")
    p.add_argument("--prefix", default=None, help="key prefix in the bucket (default runs)")
    p.add_argument("--registry", default=None, help="push to and run from this registry (host:port) instead of ECR")
    g = p.add_argument_group("setup and plan")
    g.add_argument("--instance-types", default=None,
                   help=f"comma-separated EC2 types (default cuda: {','.join(b.DEFAULT_TYPES['cuda'])}; cpu: {','.join(b.DEFAULT_TYPES['cpu'])})")
    g.add_argument("--max-vcpus", type=int, default=None, help="the compute environment's ceiling (default 64)")
    g.add_argument("--spot", action="store_true", default=None, help="spot instances (cheaper, can be reclaimed: such a job is retried)")
    g.add_argument("--subnets", default=None, help="comma-separated subnet ids (default: the default VPC's)")
    g.add_argument("--security-groups", default=None, help="comma-separated security group ids (default: the default VPC's default group)")
    g.add_argument("--compute-environment", default=None, help="use this existing compute environment instead of creating one")
    g.add_argument("--job-queue", default=None, help="use this existing job queue instead of creating one")
    g.add_argument("--job-role", default=None, help="use this existing IAM role (name or ARN) for the jobs")
    s = p.add_argument_group("submit")
    s.add_argument("--repeat", type=int, default=1, help="children per framework (an array job; each writes its own document)")
    s.add_argument("--timeout", type=int, default=7200, help="seconds a job may run before Batch stops it (default 7200)")
    s.add_argument("--vcpus", type=int, default=None, help="vCPUs a job asks for (default 4)")
    s.add_argument("--memory", type=int, default=None, help="MiB a job asks for (default 14000)")
    s.add_argument("--suite", action="append", default=None, help="passed to `showdown run` in the job")
    s.add_argument("--probe", action="append", default=None, help="passed to `showdown run` in the job (repeatable)")
    s.add_argument("--quick", action="store_true", help="passed to `showdown run` in the job")
    s.add_argument("--budget", type=float, default=None, help="passed to `showdown run` in the job (seconds)")
    s.add_argument("--rounds", type=rounds_argument, default=None, metavar="N",
                   help="passed to `showdown run` in the job: timed rounds per measurement (at least 5)")
    s.add_argument("--env", action="append", default=None, metavar="NAME=VALUE", help="extra environment for the jobs (repeatable)")
    w = p.add_argument_group("status, collect, teardown, prices")
    w.add_argument("--watch", action="store_true", help="status: poll until every job has ended")
    w.add_argument("--interval", type=float, default=5.0, help="status --watch: first polling interval in seconds (backs off to 60)")
    w.add_argument("--tail", type=int, default=20, help="status: log lines shown for a failed job (default 20)")
    w.add_argument("--out", type=Path, default=Path("results"), help="collect: documents go to OUT/<run>/ (default results)")
    w.add_argument("--yes", action="store_true", help="teardown: really remove (without it, only list what would go)")
    w.add_argument("--delete-results", action="store_true", help="teardown: also empty and remove the bucket")
    w.add_argument("--refresh", action="store_true", help="prices: read today's prices from the AWS Price List API")
    w.add_argument("--base-image", default=None, help="push: base image of the framework images (default $SHOWDOWN_BASE_IMAGE, "
                                                       "else python:3.11-slim or showdown/debian:bookworm-py3.11, whichever the engine has)")


def _frameworks(text: str) -> list[str]:
    names = registry.select(text)  # an unknown name is a one-line error
    if not names:
        raise b.BatchError(f"no framework in --framework {text!r}")
    return names


def _csv(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _stack(args: argparse.Namespace) -> b.Stack:
    return b.load_stack(args.stack, region=args.region, device=args.device, bucket=args.bucket, prefix=args.prefix,
                        registry=args.registry, instance_types=_csv(args.instance_types), max_vcpus=args.max_vcpus,
                        spot=args.spot, subnets=_csv(args.subnets), security_groups=_csv(args.security_groups),
                        compute_environment=args.compute_environment, job_queue=args.job_queue, job_role=args.job_role)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _table(title: str, items: list[b.Item]) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for col in ("kind", "name", "state", "note"):
        t.add_column(col)
    for i in items:
        t.add_row(i.kind, i.name, i.state, i.note)
    return t


def main(args: argparse.Namespace, report: Callable[[Path], None]) -> int:
    """`report(folder)` writes the report of a folder of documents (the CLI's own report command)."""
    try:
        return _dispatch(args, report)
    except b.BatchError as exc:
        print(f"showdown: error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, report: Callable[[Path], None]) -> int:
    if args.action == "job":
        from harness.runners import batch_job

        return batch_job.main()
    con = _console()
    stack = _stack(args)
    if args.action == "plan":
        return _plan(con, stack, _frameworks(args.framework), args)
    if args.action == "prices":
        return _prices(con, stack, args)
    if args.action == "setup":
        items = b.setup(stack, _frameworks(args.framework), say=lambda s: con.print(f"[dim]{s}[/dim]"))
        con.print(_table(f"AWS Batch stack {stack.name} in {stack.region}", items))
        made = sum(1 for i in items if i.state == "created")
        con.print(f"{made} created, {len(items) - made} already there; saved to {b.config_path(stack.name)}")
        con.print("The jobs' IAM role needs only this (set on the role setup made):")
        print(json.dumps(b.job_role_policy(stack.bucket or "", stack.prefix), indent=1))
        return 0
    if args.action == "teardown":
        return _teardown(con, stack, args)
    if args.action == "push":
        return _push(con, stack, _frameworks(args.framework), args)
    if args.action == "submit":
        return _submit(con, stack, _frameworks(args.framework), args)
    if args.action == "status":
        return _status(con, stack, args)
    if args.action == "collect":
        return _collect(con, stack, args, report)
    raise b.BatchError(f"unknown action {args.action}")


def _aws_or_none(stack: b.Stack) -> tuple[b.Aws | None, str]:
    """An AWS connection if credentials and a region are configured; else None and what is missing."""
    try:
        aws = b.Aws(stack.region)
    except b.BatchError as exc:
        return None, str(exc)
    if not aws.has_credentials():
        return None, "no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`)"
    return aws, ""


def _plan(con: Any, stack: b.Stack, frameworks: list[str], args: argparse.Namespace) -> int:
    aws, missing = _aws_or_none(stack)
    if aws is not None:
        stack.region = aws.region
    items = b.survey(stack, frameworks, aws)
    con.print(_table(f"AWS Batch plan: stack {stack.name}, {stack.device}, region {stack.region or '(none)'}", items))
    if aws is None:
        con.print(f"[yellow]Nothing was checked against AWS: {missing}.[/yellow]")
        con.print("To run on AWS Batch you need: an AWS account; credentials this machine can use (a profile, SSO, or keys); "
                  "a region (--region or AWS_REGION); permission to create an S3 bucket, ECR repositories, IAM roles, an "
                  "instance profile, a Batch compute environment and a job queue (or existing ones to reuse: --bucket, "
                  "--compute-environment, --job-queue, --job-role); a Docker engine to build and push the images; and, for "
                  "GPU instances, a G or P instance quota in that region. Then: showdown batch setup --region REGION.")
    shape = b.job_shape(stack.device, args.vcpus, args.memory)
    est = b.estimate(stack, len(frameworks) * max(1, args.repeat), args.timeout, shape, b.load_prices())
    _print_estimate(con, est)
    return 0


def _print_estimate(con: Any, est: dict[str, Any]) -> None:
    prices = ", ".join(f"{t} ${p:.4g}/h" for t, p in est["per_hour"].items()) or "none"
    con.print(f"Cost: {est['jobs']} job(s), each stopped after {est['hours_per_job_at_most']:.2f} h at most. "
              f"On-demand prices ({est['region']}, as of {est['as_of']}): {prices}.")
    if est["unknown"]:
        con.print(f"  no price for {', '.join(est['unknown'])} in the table: `showdown batch prices --refresh` reads them")
    if est["too_small"]:
        con.print(f"  too small for one job: {', '.join(est['too_small'])}")
    if est["bound_usd"] is not None:
        con.print(f"  at most ${est['bound_usd']:.2f} (every job to its timeout on the dearest type that fits; "
                  f"{'spot is usually far below this' if est['spot'] else 'a run that ends sooner costs less'}; "
                  "storage and transfer are cents)")
    con.print(f"  prices: {est['source']}")


def _prices(con: Any, stack: b.Stack, args: argparse.Namespace) -> int:
    from rich.table import Table

    if args.refresh:
        aws = b.Aws(stack.region)
        types = sorted(set(stack.instance_types) | set(b.load_prices()["prices"]))
        table = b.refresh_prices(aws, types, str(aws.region))
    else:
        table = b.load_prices()
    t = Table(title=f"EC2 on-demand, {table.get('region')}, as of {table.get('as_of')}")
    for col in ("type", "USD/hour", "vCPUs", "memory GiB", "GPUs", "GPU"):
        t.add_column(col)
    for name, p in sorted(table["prices"].items(), key=lambda kv: kv[1]["usd_per_hour"]):
        t.add_row(name, f"{p['usd_per_hour']:.4f}", str(p["vcpus"]), f"{p['memory_gib']:g}", str(p["gpus"]), p.get("gpu") or "-")
    con.print(t)
    con.print(f"source: {table.get('source')}")
    return 0


def _teardown(con: Any, stack: b.Stack, args: argparse.Namespace) -> int:
    frameworks = _frameworks(args.framework)
    if not args.yes:
        aws = b.Aws(stack.region)
        stack.region = aws.region
        with b.aws_errors("surveying"):
            stack.bucket = b.default_bucket(stack, aws)
        items = [i for i in b.survey(stack, frameworks, aws) if i.state == "exists"]
        con.print(_table(f"would remove (if tagged {b.TAG_KEY}={stack.name})", items))
        con.print("Nothing removed: add --yes to remove them" + ("" if args.delete_results else
                  " (the bucket only if empty, unless --delete-results)"))
        return 0
    items = b.teardown(stack, frameworks, args.delete_results, say=lambda s: con.print(f"[dim]{s}[/dim]"))
    con.print(_table(f"teardown of stack {stack.name}", items))
    removed = sum(1 for i in items if i.state == "removed")
    con.print(f"{removed} removed, {len(items) - removed} kept")
    return 0


def _push(con: Any, stack: b.Stack, frameworks: list[str], args: argparse.Namespace) -> int:
    import os

    from harness.runners import images
    from harness.runners.batch_image import build_batch_image

    docker = images.client()
    aws = None if stack.registry else b.Aws(stack.region)
    host, auth = (stack.registry or "", None) if stack.registry else b.ecr_login(aws)  # type: ignore[arg-type]
    say = lambda s: con.print(f"[dim]{s}[/dim]")  # noqa: E731
    for name in frameworks:
        info = registry.get(name)
        # the framework image from the current source (nothing is built if it is up to date), then the batch layer
        base = args.base_image or os.environ.get("SHOWDOWN_BASE_IMAGE") or next(
            (t for t in (images.DEFAULT_BASE, images.LOCAL_BASE) if images._image(docker, t) is not None), images.DEFAULT_BASE)
        images.build(info, stack.device, base, say)
        built = build_batch_image(info, stack.device, say=say)
        repo = b.registry_repository(stack, aws, name)
        digest = b.push_image(docker, built.tag, repo, [stack.device, f"{stack.device}-{built.image_id.split(':')[-1][:12]}"],
                              auth, say=say)
        con.print(f"{name}: {repo}@{digest}")
    con.print(f"pushed {len(frameworks)} image(s) to {host}; next: showdown batch submit --framework {','.join(frameworks)}")
    return 0


def _run_args(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for s in args.suite or []:
        out += ["--suite", s]
    for p in args.probe or []:
        out += ["--probe", p]
    if args.quick:
        out.append("--quick")
    if args.budget:
        out += ["--budget", f"{args.budget:g}"]
    if args.rounds is not None:
        out += ["--rounds", str(args.rounds)]
    return out


def _submit(con: Any, stack: b.Stack, frameworks: list[str], args: argparse.Namespace) -> int:
    env: dict[str, str] = {}
    for item in args.env or []:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise b.BatchError(f"--env {item!r}: NAME=VALUE")
        env[name] = value
    if args.timeout < 60:
        raise b.BatchError(f"--timeout {args.timeout}: at least 60 seconds (AWS Batch's minimum)")
    shape = b.job_shape(stack.device, args.vcpus, args.memory)
    sub = r.submit(stack, frameworks, _run_args(args), repeat=args.repeat, timeout_s=args.timeout, env=env, shape=shape,
                   say=lambda s: con.print(f"[dim]{s}[/dim]"))
    con.print(f"run {sub.run}: {len(frameworks)} job(s) in {sub.manifest['queue']}, documents to "
              f"s3://{sub.manifest['bucket']}/{sub.manifest['prefix']}")
    con.print(f"follow it: showdown batch status {sub.run} --watch")
    con.print(f"then:      showdown batch collect {sub.run}")
    print(sub.run)
    return 0


def _run_id(args: argparse.Namespace) -> str:
    if args.run:
        return str(args.run)
    runs = r.recent_runs()
    if not runs:
        raise b.BatchError("no run id given and none submitted from this machine: `showdown batch status RUN`")
    return runs[0]


def _status(con: Any, stack: b.Stack, args: argparse.Namespace) -> int:
    from rich.table import Table

    aws = b.Aws(stack.region)
    run = _run_id(args)
    manifest = r.manifest_for(stack, run, aws)
    if args.watch:
        states = r.watch(aws, manifest, say=lambda s: con.print(s), interval=args.interval, tail=args.tail)
    else:
        states = r.job_states(aws, manifest, tail=args.tail)
    t = Table(title=f"run {run} ({manifest['region']}, queue {manifest['queue']})")
    for col in ("job", "status", "exit", "reason", "job id"):
        t.add_column(col)
    for st in states:
        t.add_row(st.key, st.status, "" if st.exit_code is None else str(st.exit_code), st.reason, st.job_id)
    con.print(t)
    for st in states:
        if st.status == "FAILED":
            con.print(f"[red]{st.key} failed[/red]: {st.reason or 'no reason given'}")
            for line in st.log_tail:
                con.print(f"  | {line}", markup=False)
    counts = {s: sum(1 for st in states if st.status == s) for s in {st.status for st in states}}
    con.print(", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())))
    if any(st.status == "FAILED" for st in states):
        return 1
    return 0 if all(st.status == "SUCCEEDED" for st in states) else 3


def _collect(con: Any, stack: b.Stack, args: argparse.Namespace, report: Callable[[Path], None]) -> int:
    run = _run_id(args)
    got = r.collect(stack, run, args.out, say=lambda s: con.print(f"[dim]{s}[/dim]"))
    if got.documents or got.missing:  # the report shows missing children under "Did not run here"
        report(got.folder)
    for st in got.missing:
        con.print(f"[yellow]missing[/yellow] {st.key}: job {st.status}" + (f" ({st.reason})" if st.reason else ""))
    for line in got.invalid:
        con.print(f"[red]invalid[/red] {line}")
    whole = not got.missing and not got.invalid
    con.print(f"run {run}: {len(got.documents)} document(s) in {got.folder}" +
              ("" if whole else f"; partial: {len(got.missing)} missing, {len(got.invalid)} invalid"))
    return 0 if whole else 3
