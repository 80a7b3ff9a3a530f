"""The example report, as leadership opens it: real headless Chromium, no network.

The example evaluation is run once; report.html is opened from disk in Debian's chromium (driven
by playwright, never a downloaded browser) with every request other than file: and data: aborted
and recorded. The page must load without console errors, page errors or failed requests, show
every image and every section, and a full-page screenshot is kept at
``reports/screenshots/report-example.png`` for people to look at.

Chromium is required: when it is missing this test fails (run ``tools/ensure-system-packages``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lcstats.reporting.pdf import CHROMIUM_ARGS
from lcstats.running.runner import run_evaluation
from tests.conftest import ROOT

EXAMPLE_PARAMS = ROOT / "params" / "example.yaml"
SCREENSHOT = ROOT / "reports" / "screenshots" / "report-example.png"
MAX_BYTES = 3 * 1024 * 1024
SECTIONS = [
    "Executive summary",
    "The programme and who was coached",
    "Follow-through on action plans",
    "Skills gaps",
    "Coaching effects",
    "How sure we are",
    "Those who learn and those who don't",
    "Data quality",
    "Appendix",
]
REMOTE_ATTRIBUTE = re.compile(
    r"""\b(?:src|href|srcset|poster|data|action|background)\s*=\s*["']?\s*(?:https?:)?//""", re.I
)
REMOTE_CSS = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I)
INSTALL_HINT = (
    "run tools/ensure-system-packages (as root it installs Debian's chromium with apt-get), or "
    "`sudo apt-get install chromium`, or set LCSTATS_CHROMIUM=/path/to/chromium. Do not run "
    "`playwright install`: the test uses the system browser and needs no network."
)


def chromium_path() -> str:
    """The system chromium (LCSTATS_CHROMIUM, else `chromium` on PATH); fail clearly if missing."""
    configured = os.environ.get("LCSTATS_CHROMIUM")
    found = configured or shutil.which("chromium")
    if not found or not Path(found).is_file() or not os.access(found, os.X_OK):
        where = (
            f"LCSTATS_CHROMIUM={configured!r} is not an executable file"
            if configured
            else "no `chromium` on PATH"
        )
        pytest.fail(f"Chromium is needed to test the report in a browser ({where}): {INSTALL_HINT}")
    return found


@dataclass
class PageEvents:
    """What went wrong while a page loaded."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list[str]]:
        return {k: v for k, v in vars(self).items() if v}


def open_offline(browser, path: Path):
    """Open a local HTML file with every non-file/data request aborted; return (page, events)."""
    events = PageEvents()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

    def guard(route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            events.blocked_requests.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on(
        "console", lambda m: events.console_errors.append(m.text) if m.type == "error" else None
    )
    page.on("pageerror", lambda exc: events.page_errors.append(str(exc)))
    page.on(
        "requestfailed",
        lambda r: events.failed_requests.append(f"{r.url[:120]}: {r.failure}"),
    )
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, events


@pytest.fixture(scope="module")
def example_report(tmp_path_factory) -> Path:
    """report.html of one run of the example evaluation (what leadership receives)."""
    out = tmp_path_factory.mktemp("example-run")
    outcome = run_evaluation(EXAMPLE_PARAMS, output_dir=out)
    if outcome.status != "succeeded":
        pytest.fail(f"the example evaluation did not run: {outcome.status}: {outcome.message}")
    return outcome.run_dir / "report.html"


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture(scope="module")
def opened(browser, example_report):
    page, events = open_offline(browser, example_report)
    yield page, events
    page.context.close()


def test_chromium_is_installed():
    """Fails (never skips) with how to install it, so a missing browser cannot pass silently."""
    assert Path(chromium_path()).is_file()


def external_references(html: str) -> list[str]:
    """What in a page would load from elsewhere: remote src/href/url(), scripts, stylesheets."""
    found = [m.group(0) for m in REMOTE_ATTRIBUTE.finditer(html)]
    found += [m.group(0) for m in REMOTE_CSS.finditer(html)]
    found += re.findall(r"<script\b", html, re.I)
    found += re.findall(r"<link\b[^>]*\bstylesheet\b[^>]*>", html, re.I)
    found += re.findall(r"@import\b", html, re.I)
    found += re.findall(r"<(?:iframe|object|embed)\b", html, re.I)
    return found


def test_report_is_small_and_fetches_nothing(example_report, capsys):
    size = example_report.stat().st_size
    with capsys.disabled():
        print(f"\nreport.html of the example: {size:,} bytes ({size / 2**20:.2f} MiB)")
    assert size < MAX_BYTES, f"report.html is {size / 2**20:.2f} MiB (limit 3 MiB)"
    html = example_report.read_text(encoding="utf-8")
    assert external_references(html) == []


def test_external_references_finds_what_a_browser_would_fetch():
    page = (
        "<link rel='stylesheet' href='https://cdn.invalid/x.css'><script src=x.js></script>"
        '<img src="http://cdn.invalid/a.png"><img SRC=//cdn.invalid/b.png>'
        "<style>@import 'y.css'; body { background: url( 'https://cdn.invalid/c.png' ) }</style>"
    )
    found = external_references(page)
    assert len(found) == 7, found
    assert external_references("<img src='data:image/png;base64,AAAA'><a href='#x'>") == []


def test_report_opens_offline_without_errors(opened):
    _, events = opened
    assert events.problems() == {}


def test_every_image_is_shown(opened):
    page, _ = opened
    images = page.eval_on_selector_all(
        "img",
        "els => els.map(e => ({alt: e.alt, complete: e.complete, width: e.naturalWidth,"
        " src: e.getAttribute('src').slice(0, 22)}))",
    )
    assert len(images) >= 8, images
    for img in images:
        assert img["complete"] and img["width"] > 0, img
        assert img["src"] == "data:image/png;base64,", img
        assert img["alt"], img  # every figure is described for screen readers


def test_every_section_is_visible_in_order(opened):
    page, _ = opened
    headings = page.locator("h2")
    texts = [t.strip() for t in headings.all_inner_texts()]
    assert len(texts) == len(SECTIONS), texts
    tops = []
    for i, (expected, text) in enumerate(zip(SECTIONS, texts, strict=True)):
        assert text.startswith(expected), (i, expected, text)
        heading = headings.nth(i)
        assert heading.is_visible(), expected
        box = heading.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, expected
        tops.append(box["y"])
    assert tops == sorted(tops), tops
    # nothing wider than a laptop screen: no sideways scrolling for the reader
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width


def test_full_page_screenshot(opened, capsys):
    page, _ = opened
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 50_000
    with capsys.disabled():
        print(f"\nscreenshot of the example report: {SCREENSHOT}")


def test_the_network_guard_catches_remote_references(browser, tmp_path):
    """The checks above can fail: a page with remote references is caught by the same guard."""
    page_file = tmp_path / "remote.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head><link rel='stylesheet' href='https://cdn.invalid/x.css'>"
        "</head><body><img src='http://cdn.invalid/x.png'>"
        "<script>console.error('boom'); undefinedCall();</script></body></html>",
        encoding="utf-8",
    )
    page, events = open_offline(browser, page_file)
    page.context.close()
    assert any("cdn.invalid/x.png" in u for u in events.blocked_requests), events
    assert any("cdn.invalid/x.css" in u for u in events.blocked_requests), events
    assert events.failed_requests and events.console_errors and events.page_errors, events


# --- accessibility (axe-core, bundled with axe-playwright-python: nothing fetched) -------------


def axe_violations(page) -> list[dict]:
    """axe-core's violations of the page's WCAG 2 A/AA rules (and best practices)."""
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page, options={"resultTypes": ["violations"]})
    return result.response["violations"]


def serious(violations: list[dict]) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def heading_jumps(page) -> list[str]:
    """Headings that skip a level (an h2 followed by an h4), and a page without one h1."""
    levels = page.eval_on_selector_all(
        "h1, h2, h3, h4, h5, h6", "els => els.map(e => Number(e.tagName[1]))"
    )
    found = [f"h{a} then h{b}" for a, b in zip(levels, levels[1:], strict=False) if b > a + 1]
    if levels.count(1) != 1 or levels[0] != 1:
        found.append(f"expected one h1 first, found levels {levels[:3]}")
    return found


def test_the_report_has_no_serious_accessibility_violations(opened):
    page, _ = opened
    assert serious(axe_violations(page)) == []
    assert heading_jumps(page) == []
    assert page.eval_on_selector_all("img", "els => els.filter(e => !e.alt.trim()).length") == 0


@pytest.fixture(scope="module")
def portfolio_page(example_report, tmp_path_factory):
    from lcstats.running.portfolio import refresh_portfolio

    root = example_report.parent.parent.parent
    page, _ = refresh_portfolio(root)
    return page


def test_the_portfolio_has_no_serious_accessibility_violations(browser, portfolio_page):
    page, events = open_offline(browser, portfolio_page)
    try:
        assert events.problems() == {}
        assert serious(axe_violations(page)) == []
        assert heading_jumps(page) == []
        assert page.eval_on_selector_all("img", "els => els.filter(e => !e.alt.trim()).length") == 0
    finally:
        page.context.close()


def test_the_accessibility_check_can_fail(browser, tmp_path):
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        "<!DOCTYPE html><html><body><h1>x</h1><h3>skipped</h3>"
        "<img src='data:image/png;base64,iVBORw0KGgo='><p style='color:#eee;background:#fff'>faint</p>"
        "</body></html>",
        encoding="utf-8",
    )
    page, _ = open_offline(browser, page_file)
    try:
        found = serious(axe_violations(page))
        assert any(v.startswith("image-alt") for v in found) and any(
            v.startswith("html-has-lang") for v in found
        )
        assert heading_jumps(page) == ["h1 then h3"]
    finally:
        page.context.close()
