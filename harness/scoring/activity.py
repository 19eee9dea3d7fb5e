"""Activity and ecosystem figures from the GitHub and Stack Exchange APIs, kept as dated snapshots.

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
