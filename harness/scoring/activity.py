"""Activity and ecosystem figures, kept as dated snapshots (harness/scoring/data/activity-YYYY-MM-DD.json).

Two kinds of snapshot. `showdown activity snapshot` reads sources anyone can read offline or with pip alone: each
framework's git history from a local clone or mirror (activity_git) and its release history from the package index's
JSON API (activity_index); every figure carries its source and date, and the showdown-2026 rubric scores Activity
from them. `showdown activity fetch` is the 2018 rubric's own sources, for users with the network:

The 2018 rubric's Activity is 1 / (weeks since the last commit) + pull requests merged in the last month, and its
Ecosystem is log(GitHub repositories) + log(Stack Overflow questions). These need the network (and, for GitHub's
search API, a token): `showdown activity fetch` gathers them when both are there and writes
harness/scoring/data/activity-YYYY-MM-DD.json, which is committed; scoring offline reads the newest snapshot and
the report prints its date. Without a snapshot the two criteria are left out of the mean.
"""

from __future__ import annotations

import datetime as _dt
import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.scoring import activity_git, activity_index
from harness.scoring.score import DATA_DIR

#: where each framework lives: its main GitHub repository, the search term for repositories using it, and its
#: Stack Overflow tag
SOURCES: dict[str, dict[str, str]] = {
    "torch": {"repo": "pytorch/pytorch", "term": "pytorch", "tag": "pytorch"},
    "tensorflow": {"repo": "tensorflow/tensorflow", "term": "tensorflow", "tag": "tensorflow"},
    "mxnet": {"repo": "apache/mxnet", "term": "mxnet", "tag": "mxnet"},
    "chainer": {"repo": "chainer/chainer", "term": "chainer", "tag": "chainer"},
    "paddle": {"repo": "PaddlePaddle/Paddle", "term": "paddlepaddle", "tag": "paddlepaddle"},
    "jax": {"repo": "jax-ml/jax", "term": "jax", "tag": "jax"},
}

GITHUB = "https://api.github.com"
STACKEXCHANGE = "https://api.stackexchange.com/2.3"

Fetch = Callable[[str, Mapping[str, str]], Any]


class ActivityError(Exception):
    """The APIs could not be reached or answered with an error; the message says which and why."""


def http_json(url: str, headers: Mapping[str, str]) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "showdown", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read().decode())
    except Exception as exc:  # urllib raises several kinds; all mean the same here
        raise ActivityError(f"{url.split('?')[0]}: {exc}") from None


def framework_activity(name: str, today: _dt.date, token: str | None, fetch: Fetch = http_json) -> dict[str, Any]:
    src = SOURCES[name]
    gh = {"Accept": "application/vnd.github+json", **({"Authorization": f"Bearer {token}"} if token else {})}
    commits = fetch(f"{GITHUB}/repos/{src['repo']}/commits?per_page=1", gh)
    last = _dt.datetime.fromisoformat(commits[0]["commit"]["committer"]["date"].replace("Z", "+00:00")).date()
    month_ago = today - _dt.timedelta(days=30)
    merged_q = urllib.parse.quote(f"repo:{src['repo']} is:pr is:merged merged:>={month_ago.isoformat()}")
    merged = fetch(f"{GITHUB}/search/issues?q={merged_q}&per_page=1", gh)["total_count"]
    repos = fetch(f"{GITHUB}/search/repositories?q={urllib.parse.quote(src['term'])}&per_page=1", gh)["total_count"]
    tag = fetch(f"{STACKEXCHANGE}/tags/{urllib.parse.quote(src['tag'])}/info?site=stackoverflow", {})
    questions = tag["items"][0]["count"] if tag.get("items") else 0
    return {
        "last_commit": last.isoformat(),
        "weeks_since_last_commit": round(max((today - last).days, 0) / 7, 2),
        "prs_merged_last_month": int(merged),
        "github_repositories": int(repos),
        "stackoverflow_questions": int(questions),
        "sources": [f"https://github.com/{src['repo']}", f"https://stackoverflow.com/questions/tagged/{src['tag']}"],
    }


def fetch_snapshot(names: list[str], token: str | None, today: _dt.date | None = None, fetch: Fetch = http_json,
                   out_dir: Path = DATA_DIR) -> Path:
    today = today or _dt.datetime.now(_dt.UTC).date()
    snapshot = {name: framework_activity(name, today, token, fetch) for name in names if name in SOURCES}
    path = out_dir / f"activity-{today.isoformat()}.json"
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ git + index snapshot
#: each framework with a row in the registry: the public repository whose history is read, and the package index's
#: distributions of it (none where the framework never shipped there); `note` says why where it is not obvious
REPOSITORIES: dict[str, dict[str, Any]] = {
    "torch": {"repo": "pytorch/pytorch", "dists": ["torch"]},
    "tensorflow": {"repo": "tensorflow/tensorflow", "dists": ["tensorflow"]},
    "mxnet": {"repo": "apache/mxnet", "dists": ["mxnet"]},
    "chainer": {"repo": "chainer/chainer", "dists": ["chainer"]},
    "paddle": {"repo": "PaddlePaddle/Paddle", "dists": ["paddlepaddle"]},
    "jax": {"repo": "jax-ml/jax", "dists": ["jax"]},
    "theano": {"repo": "Theano/Theano", "dists": ["Theano"]},
    "caffe": {"repo": "BVLC/caffe", "dists": [],
              "note": "Caffe never shipped on the package index (it is built from source or taken from Debian's packages)"},
    "bigdl": {"repo": "intel-analytics/BigDL-2.x", "dists": ["bigdl-dllib-spark3"],
              "note": "intel-analytics/BigDL was renamed intel-analytics/ipex-llm (an LLM library); the BigDL 2.x "
                      "history, DLlib included, lives on as intel-analytics/BigDL-2.x; bigdl-dllib-spark3 is the "
                      "distribution the harness installs"},
    "caffe2": {"repo": "facebookarchive/caffe2", "dists": ["caffe2"],
               "note": "Caffe2's own repository was archived when it merged into PyTorch in 2018; pytorch/pytorch no "
                       "longer holds a caffe2/ tree, so the archived repository is read"},
    "cntk": {"repo": "microsoft/CNTK", "dists": ["cntk"]},
    "dl4j": {"repo": "deeplearning4j/deeplearning4j", "dists": [],
             "note": "Deeplearning4J is a Java library, published on Maven Central, not on the Python package index"},
    "neon": {"repo": "NervanaSystems/neon", "dists": [], "unrelated": ["neon"],
             "note": "Nervana's neon was installed from its repository; the package index's 'neon' is an unrelated "
                     "project (read below), so no release figures are recorded"},
    "torch7": {"repo": "torch/torch7", "dists": [],
               "note": "Torch7 is a Lua library (LuaRocks), never on the Python package index"},
}

SNAPSHOT_KIND = "showdown-activity-snapshot"
SNAPSHOT_VERSION = 2


def find_mirror(mirrors: Path, repo: str) -> Path | None:
    """A git directory for owner/name under `mirrors` (owner+name/repo, owner+name, owner/name), or None."""
    owner, name = repo.split("/")
    for cand in (mirrors / f"{owner}+{name}" / "repo", mirrors / f"{owner}+{name}", mirrors / owner / name):
        if (cand / "HEAD").is_file() or (cand / ".git").exists():
            return cand
    return None


def _figure(value: Any, source: str, date: str) -> dict[str, Any]:
    return {"value": value, "source": source, "date": date}


def git_entry(path: Path, repo: str, today: _dt.date) -> dict[str, Any]:
    g = activity_git.git_activity(path, as_of=today, origin=f"github:{repo}")
    src = f"git history of {g['origin']} at {g['head']} (newest commit on HEAD {g['head_date']})"
    keys = ("commits_last_365d", "authors_last_365d", "last_commit", "weeks_since_last_commit", "tags_last_365d",
            "tags_total", "latest_tag", "latest_tag_date")
    return {"origin": g["origin"], "head": g["head"], "head_date": g["head_date"], "as_of": g["as_of"],
            "window_days": g["window_days"], "figures": {k: _figure(g[k], src, g["as_of"]) for k in keys}}


def index_entry(dist: str, today: _dt.date, fetch: activity_index.Fetch, base: str | None) -> dict[str, Any]:
    f = activity_index.index_activity(dist, today, fetch=fetch, base=base)
    src = f"the package index's release history of {f['distribution']} ({f['endpoint']}), read {today.isoformat()}"
    keys = ("releases_last_12_months", "prereleases_last_12_months", "releases_total", "prereleases_total",
            "latest_version", "latest_version_date", "last_release_date", "days_since_last_release",
            "first_release_date")
    return {"distribution": f["distribution"], "as_of": f["as_of"], "figures": {k: _figure(f[k], src, f["as_of"]) for k in keys}}


def take_snapshot(names: list[str], mirrors: Path, today: _dt.date | None = None,
                  fetch: activity_index.Fetch = activity_index.http_json, out_dir: Path = DATA_DIR,
                  why_missing: Mapping[str, str] | None = None, base: str | None = None) -> Path:
    """Read every framework's git mirror (under `mirrors`) and index release history and write the dated snapshot.
    A source that cannot be read is recorded with the reason (`why_missing`: what is known about a missing mirror)."""
    today = today or _dt.datetime.now(_dt.UTC).date()
    frameworks: dict[str, Any] = {}
    for name in names:
        where = REPOSITORIES.get(name)
        if where is None:
            raise ActivityError(f"{name}: no repository is known for it (add it to activity.REPOSITORIES)")
        entry: dict[str, Any] = {"repository": f"github:{where['repo']}", "distributions": list(where["dists"])}
        if where.get("note"):
            entry["note"] = where["note"]
        path = find_mirror(mirrors, where["repo"])
        if path is None:
            entry["git"] = None
            entry["git_unavailable"] = (why_missing or {}).get(name) or f"no mirror of {where['repo']} under {mirrors}"
        else:
            try:
                entry["git"] = git_entry(path, where["repo"], today)
            except activity_git.GitActivityError as exc:
                entry["git"], entry["git_unavailable"] = None, str(exc)
        entry["index"] = None
        for dist in where["dists"]:
            try:
                entry["index"] = index_entry(dist, today, fetch, base)
            except activity_index.IndexActivityError as exc:
                entry["index_unavailable"] = str(exc)
            break
        if not where["dists"]:
            entry["index_unavailable"] = where.get("note", "no distribution on the package index")
        for dist in where.get("unrelated", []):
            try:
                answer = fetch(f"{base or activity_index.json_api_base()}/{dist}/json")
                info = answer.get("info", {})
                first = min(activity_index.release_dates(answer).values(), default=None)
                entry["index_unrelated"] = {
                    "distribution": dist, "summary": info.get("summary"), "home_page": info.get("home_page"),
                    "first_release_date": first.isoformat() if first else None,
                    "source": f"the package index's project {dist} (its JSON API), read {today.isoformat()}"}
            except activity_index.IndexActivityError as exc:
                entry["index_unrelated"] = {"distribution": dist, "error": str(exc)}
        frameworks[name] = entry
    doc = {"kind": SNAPSHOT_KIND, "version": SNAPSHOT_VERSION, "date": today.isoformat(),
           "sources": "git history of each framework's public repository (a local mirror, read with git), and the "
                      "package index's JSON API (its address taken from pip)",
           "frameworks": frameworks}
    errors = validate_snapshot(doc)
    if errors:
        raise ActivityError("the snapshot does not validate: " + "; ".join(errors[:3]))
    path = out_dir / f"activity-{today.isoformat()}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


_FIGURE = {"type": "object", "required": ["value", "source", "date"], "additionalProperties": False,
           "properties": {"value": {"type": ["integer", "number", "string", "null"]},
                          "source": {"type": "string", "minLength": 10},
                          "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}}}
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
#: JSON Schema of a git + index snapshot (version 2)
SNAPSHOT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "version", "date", "frameworks"],
    "properties": {
        "kind": {"const": SNAPSHOT_KIND}, "version": {"const": SNAPSHOT_VERSION}, "date": _DATE,
        "frameworks": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object",
            "required": ["repository", "distributions", "git", "index"],
            "properties": {
                "repository": {"type": "string", "pattern": r"^github:[\w.-]+/[\w.-]+$"},
                "distributions": {"type": "array", "items": {"type": "string"}},
                "git": {"oneOf": [{"type": "null"}, {
                    "type": "object", "required": ["origin", "head", "head_date", "as_of", "figures"],
                    "properties": {"head": {"type": "string", "pattern": "^[0-9a-f]{40}$"}, "head_date": _DATE,
                                   "as_of": _DATE,
                                   "figures": {"type": "object", "minProperties": 1, "additionalProperties": _FIGURE}}}]},
                "index": {"oneOf": [{"type": "null"}, {
                    "type": "object", "required": ["distribution", "as_of", "figures"],
                    "properties": {"as_of": _DATE,
                                   "figures": {"type": "object", "minProperties": 1, "additionalProperties": _FIGURE}}}]},
                "git_unavailable": {"type": "string", "minLength": 5},
                "index_unavailable": {"type": "string", "minLength": 5},
            },
            "allOf": [{"if": {"properties": {"git": {"type": "null"}}}, "then": {"required": ["git_unavailable"]}},
                      {"if": {"properties": {"index": {"type": "null"}}}, "then": {"required": ["index_unavailable"]}}],
        }},
    },
}


def validate_snapshot(doc: Any) -> list[str]:
    """Schema errors of a git + index snapshot (empty when it validates)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SNAPSHOT_SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


# ------------------------------------------------------------------------------------------------ command line
def add_parser(sub: Any) -> None:
    act = sub.add_parser(
        "activity", help="activity figures: a framework's git history, its package-index releases, dated snapshots",
        description="Read activity figures from sources that need no API token: a framework's git history (a local "
                    "clone or mirror, read with git) and its release history on the package index (the index pip "
                    "uses). `snapshot` writes harness/scoring/data/activity-DATE.json for every framework with a row "
                    "(scoring uses the newest); `fetch` is the 2018 rubric's GitHub and Stack Exchange figures, for "
                    "users with the network.")
    acts = act.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = acts.add_parser("git", help="commits, authors, last commit and tags from a git clone or mirror",
                        description="Commits and distinct authors (by e-mail) on HEAD in the 365 days up to the as-of "
                                    "date, the last commit and the weeks since it, tags in the window and in all.")
    g.add_argument("path", type=Path, help="a clone's work tree, or a bare repository / mirror")
    g.add_argument("--framework", help="the framework it belongs to (stated in the output)")
    g.add_argument("--as-of", dest="as_of", metavar="DATE",
                   help="YYYY-MM-DD (default: the date of the newest commit on HEAD)")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    i = acts.add_parser("index", help="release history of a distribution on the package index",
                        description="Releases in the last 12 months (pre-releases apart, yanked files ignored), days "
                                    "since the last, the latest version and its upload date, the first release.")
    i.add_argument("name", help="the distribution's name on the index (e.g. torch, paddlepaddle)")
    i.add_argument("--framework", help="the framework it belongs to (stated in the output)")
    i.add_argument("--as-of", dest="as_of", metavar="DATE", help="YYYY-MM-DD (default: today, UTC)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    s = acts.add_parser("snapshot", help="git + index figures of every framework with a row, into a dated snapshot",
                        description="Reads each framework's repository from a folder of mirrors (owner+name/repo, "
                                    "owner+name or owner/name) and its index release history, and writes "
                                    "activity-DATE.json; a source that cannot be read is recorded with why.")
    s.add_argument("--mirrors", type=Path, required=True, help="folder holding the git mirrors")
    s.add_argument("--date", metavar="DATE", help="the snapshot's as-of date, YYYY-MM-DD (default: today, UTC)")
    s.add_argument("--missing", type=Path, metavar="TOML",
                   help="a TOML table {framework = 'why its mirror is missing'} recorded where a mirror is absent")
    s.add_argument("--out", type=Path, default=DATA_DIR, help="folder for the snapshot (default harness/scoring/data)")
    f = acts.add_parser("fetch", help="the 2018 rubric's GitHub and Stack Exchange figures (needs the network)",
                        description="Needs the network; GitHub's search API wants a token ($GITHUB_TOKEN).")
    import os

    f.add_argument("--token", default=os.environ.get("GITHUB_TOKEN"), help="GitHub token (default $GITHUB_TOKEN)")


def _date(text: str | None, flag: str) -> _dt.date | None:
    if text is None:
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise ActivityError(f"{flag} takes a date as YYYY-MM-DD, not {text!r}") from None


def _print_figures(title: str, figures: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, indent=1, sort_keys=True))
        return
    print(title)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")


def command(args: Any) -> int:
    """`showdown activity ACTION`: 0 on success; bad input or an unreadable source is one line on stderr, 2."""
    import sys
    import tomllib

    from harness import registry

    try:
        if args.action == "git":
            if args.framework:
                registry.get(args.framework)
            g = activity_git.git_activity(args.path, _date(args.as_of, "--as-of"))
            who = f"{args.framework}: " if args.framework else ""
            _print_figures(f"{who}git history of {g['origin']} at {g['head'][:12]} ({g['head_date']}); as of "
                           f"{g['as_of']} ({g['as_of_rule']}), window {g['window_days']} days", g, args.json)
        elif args.action == "index":
            if args.framework:
                registry.get(args.framework)
            today = _date(args.as_of, "--as-of")
            figs = activity_index.index_activity(args.name, today)
            who = f"{args.framework}: " if args.framework else ""
            _print_figures(f"{who}release history of {figs['distribution']} on the package index, as of {figs['as_of']}",
                           figs, args.json)
        elif args.action == "snapshot":
            why = tomllib.loads(args.missing.read_text(encoding="utf-8")) if args.missing else {}
            if not args.mirrors.is_dir():
                raise ActivityError(f"--mirrors {args.mirrors}: no such folder")
            path = take_snapshot(list(registry.frameworks()), args.mirrors, _date(args.date, "--date"),
                                 out_dir=args.out, why_missing={k: str(v) for k, v in why.items()})
            doc = json.loads(path.read_text())
            for name, entry in doc["frameworks"].items():
                git = "git " + ("ok" if entry["git"] else "-")
                index = "index " + ("ok" if entry["index"] else "-")
                print(f"  {name:<11} {git:<6} {index:<8} {entry['repository']}")
            print(f"snapshot: {path}")
        else:
            path = fetch_snapshot(list(registry.frameworks()), args.token)
            print(f"snapshot: {path}")
    except (ActivityError, activity_git.GitActivityError, activity_index.IndexActivityError,
            registry.UnknownFramework, OSError, tomllib.TOMLDecodeError) as exc:
        extra = "; scoring keeps using the newest committed snapshot, if any" if args.action == "fetch" else ""
        print(f"showdown: error: {exc}{extra}", file=sys.stderr)
        return 2
    return 0
