"""Release history of a distribution from the Python package index's JSON API.

The index's address is never written here: it is read at run time from pip (an index URL configured for pip,
`global.index-url` or $PIP_INDEX_URL, when one is set, else pip's own default), and the JSON endpoint is derived from
it. The fetcher is a parameter, so the parsing runs offline on recorded answers.

A release is dated by the earliest upload among its files that are not yanked; a release whose files are all yanked
(or that has none) is left out. Pre-releases and development releases (PEP 440) are counted apart from final ones.
"""

from __future__ import annotations

import datetime as _dt
import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from packaging.version import InvalidVersion, Version

WINDOW_DAYS = 365

Fetch = Callable[[str], Any]


class IndexActivityError(Exception):
    """The index could not be read, or answered with something that is not a release history."""


def configured_index_url() -> str | None:
    """The index URL configured for pip (its config files or $PIP_INDEX_URL), or None when none is set."""
    try:
        from pip._internal.configuration import Configuration
    except ImportError:
        return None
    conf = Configuration(isolated=False)
    try:
        conf.load()
    except Exception:  # a broken pip configuration: fall back to pip's default, as pip itself would not
        return None
    for key, value in conf.items():
        if key.split(".", 1)[-1] == "index-url" and value:
            return str(value).split()[0]
    return None


def json_api_base() -> str:
    """The base of the index's JSON API (<base>/<project>/json), from pip."""
    configured = configured_index_url()
    if configured:
        parts = urllib.parse.urlsplit(configured.rstrip("/"))
        path = parts.path
        path = path[: -len("/simple")] if path.endswith("/simple") else path
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + "/pypi", "", ""))
    try:
        from pip._internal.models.index import PyPI
    except ImportError:
        raise IndexActivityError("pip is not importable here: the package index's address is taken from pip") from None
    return str(PyPI.pypi_url).rstrip("/")


def http_json(url: str) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "showdown", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read().decode())
    except Exception as exc:  # urllib raises several kinds; all mean the index could not be read
        raise IndexActivityError(f"{urllib.parse.urlsplit(url).path}: {exc}") from None


def _upload_date(f: Mapping[str, Any]) -> _dt.date | None:
    stamp = f.get("upload_time_iso_8601") or f.get("upload_time")
    if not stamp:
        return None
    moment = _dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.astimezone(_dt.UTC).date()


def release_dates(answer: Mapping[str, Any]) -> dict[str, _dt.date]:
    """{version: date of its first non-yanked upload} from a JSON API answer."""
    releases = answer.get("releases")
    if not isinstance(releases, Mapping):
        raise IndexActivityError("the index's answer has no 'releases' table")
    out = {}
    for version, files in releases.items():
        days = [d for f in files or [] if not f.get("yanked") and (d := _upload_date(f)) is not None]
        if days:
            out[str(version)] = min(days)
    return out


def parse_release_history(name: str, answer: Mapping[str, Any], today: _dt.date) -> dict[str, Any]:
    """The release figures of a distribution as of `today` (uploads after it are ignored)."""
    dated = {v: d for v, d in release_dates(answer).items() if d <= today}
    final: dict[str, _dt.date] = {}
    pre: dict[str, _dt.date] = {}
    unparsed = []
    for v, d in dated.items():
        try:
            parsed = Version(v)
        except InvalidVersion:
            unparsed.append(v)
            continue
        (pre if parsed.is_prerelease else final)[v] = d
    if not final and not pre:
        raise IndexActivityError(f"{name}: no release with an upload that is not yanked")
    recent = [v for v, d in final.items() if 0 <= (today - d).days <= WINDOW_DAYS]
    newest = max(final, key=Version) if final else None
    last = max(final.values()) if final else None
    return {
        "distribution": str(answer.get("info", {}).get("name") or name),
        "as_of": today.isoformat(),
        "window_days": WINDOW_DAYS,
        "releases_last_12_months": len(recent),
        "prereleases_last_12_months": sum(1 for d in pre.values() if 0 <= (today - d).days <= WINDOW_DAYS),
        "releases_total": len(final),
        "prereleases_total": len(pre),
        "latest_version": newest,
        "latest_version_date": final[newest].isoformat() if newest else None,
        "last_release_date": last.isoformat() if last else None,
        "days_since_last_release": (today - last).days if last else None,
        "first_release_date": min(dated.values()).isoformat(),
        "versions_not_pep440": sorted(unparsed),
    }


def index_activity(name: str, today: _dt.date | None = None, fetch: Fetch = http_json,
                   base: str | None = None) -> dict[str, Any]:
    """Read `name`'s release history from the index (through `fetch`) and compute its figures."""
    today = today or _dt.datetime.now(_dt.UTC).date()
    url = f"{base or json_api_base()}/{urllib.parse.quote(name)}/json"
    answer = fetch(url)
    if not isinstance(answer, Mapping):
        raise IndexActivityError(f"{name}: the index's answer is not a JSON object")
    figures = parse_release_history(name, answer, today)
    figures["endpoint"] = f"{urllib.parse.urlsplit(url).path} of the package index's JSON API (the index pip uses)"
    return figures
