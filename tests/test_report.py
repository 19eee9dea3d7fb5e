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
