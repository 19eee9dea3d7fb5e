"""The report: reproducible output, evidence links, and a real headless-Chromium check of report.html.

The browser test needs Debian's chromium and chromium-driver (installed by .ci/run). In CI a missing browser fails
the test; elsewhere it is skipped with the reason shown by `pytest -ra`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness import cli
from tests.conftest import in_ci

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


def make_report(tmp_path: Path, *extra: str) -> Path:
    src = tmp_path / "results"
    src.mkdir(parents=True, exist_ok=True)
    for p in DATA.glob("result-v1-*.json"):
        shutil.copy(p, src / p.name)
    out = tmp_path / "report"
    assert cli.main(["report", str(src), "--out-dir", str(out), *extra]) == 0
    return out


def test_report_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    a = make_report(tmp_path / "a", "--no-timestamp")
    b = make_report(tmp_path / "b", "--no-timestamp")
    for name in ("report.md", "report.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_every_measured_value_links_to_records_that_exist(tmp_path: Path) -> None:
    page = (make_report(tmp_path) / "report.html").read_text()
    targets = set(re.findall(r'href="#([^"]+)"', page))
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert targets, "the page links to its evidence"
    assert targets <= ids, f"dangling links: {sorted(targets - ids)[:5]}"
    assert 'href="#ev-torch-ootb_ops"' in page and 'id="rec-torch-layers-conv2d"' in page
    # self-contained: no script, no stylesheet, image or frame to fetch (links to sources are plain anchors)
    assert not re.search(r"<(script|link|img|iframe)\b", page) and not re.search(r'\ssrc="', page)


def test_committed_report_is_reproduced_from_committed_results(tmp_path: Path) -> None:
    committed = REPO / "results"
    if not (committed / "report.html").exists():
        pytest.fail("results/report.html is missing: commit the report of the committed results")
    out = tmp_path / "again"
    assert cli.main(["report", str(committed), "--out-dir", str(out)]) == 0
    stamp = re.compile(r"Generated [0-9T:+\-]+\. ?")
    for name in ("report.md", "report.html"):
        want = stamp.sub("", (committed / name).read_text())
        got = stamp.sub("", (out / name).read_text())
        assert got == want, f"{name} differs from the committed one"


def browser() -> str:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium and driver:
        return driver
    why = "Debian's chromium, chromium-driver and the selenium package are needed (apt-get install chromium chromium-driver)"
    if in_ci():
        pytest.fail(why)
    pytest.skip(reason=why)


SECTIONS_WITH_CHARTS = ("scores", "criteria", "ops", "throughput", "numerics", "conformance", "portability-section")


def committed_report(tmp_path: Path) -> Path:
    """The report of a copy of the committed results (with their conformance and portability documents)."""
    src = tmp_path / "results"
    shutil.copytree(REPO / "results", src, ignore=shutil.ignore_patterns("report.*"))
    out = tmp_path / "report"
    assert cli.main(["report", str(src), "--out-dir", str(out), "--no-timestamp"]) == 0
    return out / "report.html"


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """At 1400 and at 800 px: no horizontal page overflow, every section there, a chart in every section that has
    figures, no console errors, a screenshot that is not blank."""
    driver_path = browser()
    from matplotlib.image import imread
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from harness.report.summary import SECTIONS

    page = committed_report(tmp_path)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        for width in (1400, 800):
            drv.set_window_size(width, 1000)
            drv.get(page.as_uri())
            assert drv.title == "showdown report"
            inner = drv.execute_script("return window.innerWidth")
            scroll = drv.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= inner, f"{width} px: the page scrolls sideways ({scroll} > {inner})"
            for sid, title in SECTIONS:
                found = drv.find_elements(By.ID, sid)
                assert found, f"section {sid} ({title}) missing at {width} px"
            for sid in SECTIONS_WITH_CHARTS:
                svgs = drv.find_elements(By.CSS_SELECTOR, f"#{sid} svg")
                assert svgs, f"no chart in section {sid}"
                assert all(s.size["width"] > 50 and s.size["height"] > 50 for s in svgs), sid
            toc = [a.get_attribute("href").split("#")[-1] for a in drv.find_elements(By.CSS_SELECTOR, "#contents a")]
            assert toc == [sid for sid, _ in SECTIONS], toc
            errors = [entry for entry in drv.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
            assert errors == [], errors
            shot = tmp_path / f"shot-{width}.png"
            assert drv.save_screenshot(str(shot))
            assert imread(str(shot)).std() > 0.05, "the screenshot is blank"
    finally:
        drv.quit()


# ------------------------------------------------------------------------------------------- summary: computed
def _committed(name: str) -> dict:
    import json

    path = next((REPO / "results").glob(f"{name}-cpu-*.json"))
    doc: dict = json.loads(path.read_text())
    return doc


def _scale_times(doc: dict, mode: str, factor: float) -> None:
    for key, rec in doc["records"].items():
        if key.startswith("throughput/") and key.endswith("/" + mode) and rec["status"] == "ok":
            t = rec["data"]["timing"]
            t["median_s"] *= factor


def test_verdicts_follow_the_documents_figures() -> None:
    """A verdict is computed: make mxnet faster than torch and the eager-training verdict names mxnet; make them
    equal and it names both as a tie; take a layer away and the op-coverage verdict changes."""
    import copy

    from harness.report import summary as sm

    torch, mxnet = _committed("torch"), _committed("mxnet")

    def pick(docs: list, topic: str) -> sm.Verdict:
        return next(v for v in sm.verdicts(docs, [], None, None) if v.topic == topic)

    assert pick([torch, mxnet], "Fastest eager training (CPU)").winners == ("torch",)
    fast = copy.deepcopy(mxnet)
    _scale_times(fast, "eager", 0.1)
    v = pick([torch, fast], "Fastest eager training (CPU)")
    assert v.winners == ("mxnet",) and not v.tie and "x torch's time" in v.figure
    # the same figures under another name: a tie, named as one
    twin = copy.deepcopy(torch)
    twin["framework"] = "mxnet"
    v = pick([torch, twin], "Fastest eager training (CPU)")
    assert v.winners == ("mxnet", "torch") and v.tie and "(tie)" in v.who
    # an unverified figure takes a framework out of the comparison, and says so
    broken = copy.deepcopy(fast)
    broken["records"]["throughput/mlp_train/eager"]["data"]["first_step"] = {"ok": False}
    v = pick([torch, broken], "Fastest eager training (CPU)")
    assert v.winners == ("torch",) and "not compared: mxnet" in v.figure
    # op coverage: the twin loses a native layer and torch alone has the widest coverage
    assert pick([torch, twin], "Widest op coverage").tie
    twin["records"]["layers/conv2d"]["status"] = "unsupported"
    v = pick([torch, twin], "Widest op coverage")
    assert v.winners == ("torch",) and v.figure.startswith("31/32")
    # nothing measured: said so, not guessed
    v = pick([torch], "Still maintained (activity)")
    assert v.winners == () and "not measured here" in v.figure
    assert pick([torch], "GPU").figure.startswith("no GPU run")


def test_quiet_criteria_and_the_tier_caveat() -> None:
    from types import SimpleNamespace

    from harness.report import summary as sm
    from harness.scoring import rubric as rb

    rubric = rb.load("showdown-2026")

    def fake(fw: str, overall: float, tier: str, **values: float | None) -> SimpleNamespace:
        crit = {cid: SimpleNamespace(normalised=values.get(cid, 50.0 if fw == "a" else 60.0)) for cid in rubric.criteria}
        return SimpleNamespace(framework=fw, overall=overall, tier=tier, criteria=crit)

    scores = [fake("a", 80.0, "Tier 1", sponsor=100.0, activity=None), fake("b", 70.0, "Tier 2", sponsor=100.0, activity=None)]
    quiet = {q.id: q for q in sm.quiet_criteria(rubric, scores)}
    assert set(quiet) == {"sponsor", "activity"}, quiet  # every other criterion separates a from b
    assert quiet["sponsor"].weighs and not quiet["activity"].weighs
    assert "missing for every" in quiet["activity"].why and "100.0 for every" in quiet["sponsor"].why
    text = sm.tier_text(rubric, scores)
    assert "10.0 points (a 80.0, Tier 1; b 70.0, Tier 2)" in text and f"at most {len(rubric.tiers)} groups" in text
    lines = " ".join(sm.formula(rubric))
    assert "Throughput is not in the score" in lines and "Activity" in lines and "the rubric's maximum" in lines


def test_about_states_machine_tree_and_warnings() -> None:
    import copy

    from harness.report import summary as sm

    torch = _committed("torch")
    dirty = copy.deepcopy(torch)
    dirty["framework"] = "jax"
    dirty["harness"] = {"version": "0.1.0", "git_commit": "abcdef0123456789", "git_dirty": True, "changed_paths": ["a", "b"]}
    dirty["environment"]["gpu"] = {"used": {"name": "NVIDIA H200", "driver_version": "570.1", "memory_total": "141 GiB"},
                                   "driver_cuda_version": "12.8"}
    dirty["config"]["quick"] = True
    a = sm.about([torch, dirty])
    trees = dict(a.trees)
    assert trees["harness 0.1.0 at abcdef012345, uncommitted changes (2 paths differed from the commit)"] == ["jax"]
    assert any("clean tree" in t for t in trees) and len(a.sizes) == 2
    machines = " ".join(m for m, _ in a.machines)
    assert "NVIDIA H200" in machines and "driver 570.1" in machines and "CUDA 12.8" in machines and "logical cores" in machines
    assert "GiB" in machines and "no GPU used" in machines
    want = sum(1 for r in torch["records"].values() if r["suite"] == "throughput" and r["status"] == "ok"
               and r["data"]["timing"].get("warnings"))
    assert len(a.warnings) == 2 * want and want > 0


PAYLOAD = "<script>alert(1)</script> & co"


def test_every_value_from_a_document_is_escaped(tmp_path: Path) -> None:
    """Document strings (a framework version, an error message, a timing warning, an unavailable framework's reason
    and output) reach the page escaped; no <script> element comes from data."""
    import json

    src = tmp_path / "results"
    src.mkdir()
    torch = _committed("torch")
    torch["environment"]["framework_version"] = PAYLOAD
    torch["environment"]["versions"]["torch"] = PAYLOAD
    rec = next(r for r in torch["records"].values() if r["status"] == "unsupported")
    rec["reason"] = "error: " + PAYLOAD
    warned = next(r for r in torch["records"].values() if r["suite"] == "throughput" and r["status"] == "ok")
    warned["data"]["timing"]["warnings"] = ["note: " + PAYLOAD]
    layer = torch["records"]["layers/conv2d"]
    layer["status"], layer["reason"] = "failed", "failed with " + PAYLOAD
    (src / "torch-cpu-1.json").write_text(json.dumps(torch))
    gone = json.loads(next((REPO / "results").glob("cntk-cpu-*.json")).read_text())
    gone["reason"] = "cannot: " + PAYLOAD
    gone["tried"][0]["output"] = "out: " + PAYLOAD
    (src / "cntk-cpu-1.json").write_text(json.dumps(gone))
    out = tmp_path / "report"
    assert cli.main(["report", str(src), "--out-dir", str(out), "--no-timestamp"]) == 0
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower(), "a raw <script> from a document"
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
    for where in ("error: ", "note: ", "cannot: ", "out: ", "failed with "):
        assert where + escaped in page, where
    assert page.count(escaped) >= 7
    assert " & co" not in page  # every ampersand from the document is an entity


def test_no_python_reprs_in_the_page(tmp_path: Path) -> None:
    """Values built from lists, mappings, None and booleans (facts' OS lists, languages, suites) read as words."""
    import html as html_mod

    from harness.report.html import plain, words

    assert plain(["linux", "macos"]) == "linux, macos" and plain({"python": 1.0, "c++": 0.5}) == "python 1, c++ 0.5"
    assert plain(None) == "-" and plain(True) == "yes"
    assert words("['linux', 'macos']: from the docs") == "linux, macos: from the docs"
    assert words('{"a": 1}') == "a 1" and words("f(x) (checked)") == "f(x) (checked)"
    page = committed_report(tmp_path).read_text()
    text = re.sub(r"<svg.*?</svg>|<style>.*?</style>|<pre>.*?</pre>", "", page, flags=re.S)
    cells = [html_mod.unescape(c) for c in re.findall(r'<td[^>]*id="ev-[^"]+"[^>]*>.*?</tr>', text, flags=re.S)]
    assert cells, "the evidence tables"
    for c in cells:
        assert not re.search(r"\['|\{'|\{\"|\bNone\b", c), c[:300]
    assert "No activity snapshot" in page or "Activity snapshot of" in page


def test_markdown_links_land_on_its_headings(tmp_path: Path) -> None:
    """Every in-page link of report.md (the verdicts' evidence links) names a heading of the page, and the page has
    the sections the HTML has."""
    from harness.report.summary import md_anchor

    text = (make_report(tmp_path, "--no-timestamp") / "report.md").read_text()
    headings = {md_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= headings, sorted(links - headings)
    for title in ("What to pick for what", "About this run", "Criteria", "Graphs", "Numerics", "Scale", "Problems"):
        assert f"## {title}" in text, title
    assert text.index("## What to pick for what") < text.index("## Scores") < text.index("## About this run")
