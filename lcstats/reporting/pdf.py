"""report.pdf for circulation: the self-contained report.html printed by headless Chromium.

The system Chromium (Debian's ``chromium``, or ``LCSTATS_CHROMIUM``) is driven through the
playwright Python API; playwright's own browser download is never used. Every request other
than ``file:`` and ``data:`` is blocked, and a page that tried to fetch anything is refused
(reports are self-contained). Print rules are added at print time (`PRINT_CSS`): no figure,
summary card or table row cut across a page, headings kept with what follows, A4 pages, and a
footer with the evaluation, the date and "page X of Y".
"""

from __future__ import annotations

import asyncio
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from lcstats.core.errors import LcstatsError
from lcstats.core.files import write_atomic

if TYPE_CHECKING:
    from playwright.sync_api import Route

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_HINT = (
    "install Debian's chromium (`sudo apt-get install chromium`, or run tools/ensure-system-packages as "
    "root), or set LCSTATS_CHROMIUM=/path/to/chromium. Do not run `playwright install`: lcstats "
    "uses the system browser and needs no network."
)
# One place for the page margins: the @page rule below (Chromium lets CSS @page margins override
# page.pdf(margin=...)); the footer is drawn inside the bottom margin, so it stays >= 15 mm.
PRINT_CSS = """
@page { size: A4; margin: 16mm 15mm 20mm 15mm; }
html, body { background: #fff !important; }
body { max-width: none !important; margin: 0 !important; padding: 0 !important; }
h1, h2, h3, h4, h5, h6, caption, figcaption { break-after: avoid; page-break-after: avoid; }
figure, img, svg, canvas, .card, tr, thead, pre, blockquote {
  break-inside: avoid; page-break-inside: avoid;
}
img, svg, canvas { max-height: 235mm; width: auto; max-width: 100%; object-fit: contain; }
table { break-inside: auto; }
thead { display: table-header-group; }
p, li { orphans: 3; widows: 3; }
a { color: inherit; text-decoration: none; }
"""
FOOTER = (
    '<div style="font-size:8pt;width:100%;text-align:center;color:#555;'
    "font-family:'DejaVu Sans',Arial,sans-serif\">{title} &middot; {date} &middot; "
    'page <span class="pageNumber"></span> of <span class="totalPages"></span></div>'
)
TIMEOUT_MS = 60_000


def find_chromium() -> str:
    """The system Chromium: ``LCSTATS_CHROMIUM`` if set, else ``chromium`` on PATH.

    Raises
    ------
    LcstatsError
        When neither is an executable file; the message says what to install.
    """
    configured = os.environ.get("LCSTATS_CHROMIUM")
    found = configured or shutil.which("chromium")
    if not found or not Path(found).is_file() or not os.access(found, os.X_OK):
        where = (
            f"LCSTATS_CHROMIUM={configured!r} is not an executable file"
            if configured
            else "no `chromium` on PATH"
        )
        raise LcstatsError(f"Chromium is needed to write a PDF ({where}): {INSTALL_HINT}")
    return found


def footer_template(title: str, date: str) -> str:
    """Chromium's footer: the evaluation, the date and "page X of Y" (text escaped)."""
    return FOOTER.format(title=escape(str(title)), date=escape(str(date)))


@dataclass
class _Blocked:
    """Requests the page tried to make outside the file (all of them blocked)."""

    urls: list[str] = field(default_factory=list)

    def guard(self, route: Route) -> None:
        """Let file: and data: requests through; abort and record every other."""
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.urls.append(url)
            route.abort()


def _print(html: Path, *, executable: str, footer: str) -> bytes:
    """Open `html` offline in headless Chromium and print it to PDF bytes."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise LcstatsError(
            "the Python package playwright is needed to write a PDF: `pip install playwright` "
            f"(its browser download is not needed). Then {INSTALL_HINT}"
        ) from exc
    blocked = _Blocked()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
            try:
                context = browser.new_context(service_workers="block", accept_downloads=False)
                context.route("**/*", blocked.guard)
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(html.resolve().as_uri(), wait_until="load")
                page.add_style_tag(content=PRINT_CSS)
                page.evaluate("document.fonts.ready.then(() => true)")
                pdf = page.pdf(
                    format="A4",
                    print_background=True,
                    prefer_css_page_size=True,
                    display_header_footer=True,
                    header_template="<span></span>",  # else Chromium draws its date/title header
                    footer_template=footer,
                    tagged=True,  # structure for screen readers
                    outline=True,  # headings as PDF bookmarks
                )
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise LcstatsError(f"Chromium ({executable}) could not print {html}: {exc}") from exc
    if blocked.urls:
        shown = ", ".join(blocked.urls[:3]) + (" ..." if len(blocked.urls) > 3 else "")
        raise LcstatsError(
            f"{html} tried to load {len(blocked.urls)} resource(s) from outside the file "
            f"({shown}); a report must be self-contained, so no PDF was written"
        )
    return pdf


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def write_pdf(html_path: str | Path, pdf_path: str | Path, *, title: str, date: str) -> Path:
    """Print a self-contained report.html to an A4 PDF with headless Chromium.

    Parameters
    ----------
    html_path : str or Path
        The report to print (a self-contained HTML file: images as data: URIs).
    pdf_path : str or Path
        Where to write the PDF (atomically: a reader never sees half a file).
    title : str
        The evaluation's name, shown in every page's footer.
    date : str
        The date shown in the footer (the run's or the data's as-of date).

    Returns
    -------
    Path
        `pdf_path`.

    Raises
    ------
    LcstatsError
        Chromium or playwright is missing (the message says what to install), the page tried to
        load anything from outside the file, or Chromium failed to print.

    Notes
    -----
    The sync playwright API cannot run inside a running asyncio loop (a Jupyter kernel), so
    there the printing runs in a worker thread.
    """
    html = Path(html_path)
    if not html.is_file():
        raise LcstatsError(f"cannot print {html}: no such file")
    executable = find_chromium()
    footer = footer_template(title, date)
    if _loop_running():
        with ThreadPoolExecutor(max_workers=1) as pool:
            pdf = pool.submit(_print, html, executable=executable, footer=footer).result()
    else:
        pdf = _print(html, executable=executable, footer=footer)
    return write_atomic(pdf_path, pdf)
