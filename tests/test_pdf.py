"""report.pdf: the example report printed by headless Debian Chromium, read back with poppler.

The example evaluation is computed once (`lcstats.evaluate`), its report.html written to a
temporary folder and printed with `write_pdf`. poppler's ``pdfinfo``, ``pdftotext`` and
``pdfimages`` then check what a reader of the PDF gets: a sensible number of A4 pages, the
headline sentence, the footer on every page, every chart whole on one page, headings followed by
their content, and no learner id. Chromium and poppler are required (never skipped).
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lcstats.core.errors import LcstatsError
from lcstats.reporting.pdf import find_chromium, footer_template, write_pdf
from lcstats.reporting.report import build_report
from tests.conftest import EXAMPLE

TITLE, DATE = "example", "2026-06-30"
POPPLER_HINT = "poppler-utils is needed (`sudo apt-get install poppler-utils`)"


def poppler(*args: str) -> str:
    if shutil.which(args[0]) is None:
        pytest.fail(f"{args[0]} not found: {POPPLER_HINT}")
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def page_count(pdf: Path) -> int:
    return int(re.search(r"^Pages:\s+(\d+)", poppler("pdfinfo", str(pdf)), re.M).group(1))


def page_texts(pdf: Path) -> list[str]:
    return [
        poppler("pdftotext", "-layout", "-f", str(i), "-l", str(i), str(pdf), "-")
        for i in range(1, page_count(pdf) + 1)
    ]


def image_pages(pdf: Path) -> list[tuple[int, int]]:
    """(page, object id) of every image drawn, from ``pdfimages -list``."""
    return [(int(r[0]), int(r[10])) for r in image_rows(pdf)]


def image_rows(pdf: Path) -> list[list[str]]:
    """``pdfimages -list`` rows: page num type width height ... object gen x-ppi y-ppi ..."""
    rows = poppler("pdfimages", "-list", str(pdf)).splitlines()[2:]
    return [r.split() for r in rows if r.strip()]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def printed(tmp_path_factory, example_evaluation) -> dict:
    out = tmp_path_factory.mktemp("pdf")
    ev = example_evaluation
    html_path = build_report(**ev.report_arguments("test-run")).write(out / "report.html")
    start = time.perf_counter()
    pdf = write_pdf(html_path, out / "report.pdf", title=TITLE, date=DATE)
    seconds = time.perf_counter() - start
    return {"html": html_path.read_text(encoding="utf-8"), "pdf": pdf, "seconds": seconds}


def test_pdf_is_written_with_a_sensible_number_of_a4_pages(printed, capsys):
    pdf = printed["pdf"]
    assert pdf.name == "report.pdf" and pdf.stat().st_size > 50_000
    info = poppler("pdfinfo", str(pdf))
    assert re.search(r"Page size:\s+59\d\.\d+ x 84\d\.\d+ pts \(A4\)", info), info
    n = page_count(pdf)
    assert 5 <= n <= 20, n
    with capsys.disabled():
        print(f"\nreport.pdf of the example: {n} pages, printed in {printed['seconds']:.1f} s")


def test_pdf_has_the_headline_sentence(printed):
    summary = printed["html"].split("<h3>What coaching changed</h3>", 1)[1]
    paragraphs = [flat(html_lib.unescape(p)) for p in re.findall(r"<p>(.*?)</p>", summary, re.S)]
    headline = next(p for p in paragraphs if p.startswith("Coaching raised follow-through"))
    assert "by about" in headline and "95% interval" in headline
    assert headline in flat(" ".join(page_texts(printed["pdf"])))


def test_every_page_has_the_footer(printed):
    texts = page_texts(printed["pdf"])
    for i, text in enumerate(texts, start=1):
        assert f"{TITLE} · {DATE} · page {i} of {len(texts)}" in flat(text), (i, text[-300:])


def test_no_learner_id_in_the_pdf(printed):
    text = " ".join(page_texts(printed["pdf"]))
    ids = pd.read_csv(EXAMPLE / "learners.csv", usecols=["learner_id"])["learner_id"]
    assert len(ids) == 2000
    found = [i for i in ids if i in text]
    assert found == []
    assert re.findall(r"\bL\d{5}\b", text) == []


def test_every_chart_is_whole_on_one_page(printed):
    """Each image of report.html is drawn once, on one page, and fits on it.

    Chromium moves an image that does not fit to the next page and clips one taller than a page
    (checked by hand: a 400 mm image was drawn once, on one page, cut off), so the height matters.
    """
    drawn = image_pages(printed["pdf"])
    n_images = len(re.findall(r"<img\b", printed["html"]))
    assert n_images >= 8
    assert len(drawn) == n_images, drawn
    assert len({obj for _, obj in drawn}) == n_images
    # every image is drawn shorter than the page's 261 mm of content (297 mm less the margins)
    heights_mm = [int(r[4]) / int(r[13]) * 25.4 for r in image_rows(printed["pdf"])]
    assert max(heights_mm) < 261, heights_mm


def test_headings_are_kept_with_what_follows(printed):
    headings = [
        flat(html_lib.unescape(h))
        for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", printed["html"], re.S)
    ]
    assert len(headings) > 10
    for i, text in enumerate(page_texts(printed["pdf"]), start=1):
        lines = [flat(line) for line in text.splitlines() if line.strip()]
        body = [line for line in lines if f"page {i} of" not in line]
        assert body and body[-1] not in headings, (i, body[-3:])


def png_uri() -> str:
    """A small solid PNG as a data URI (drawn as an image, so pdfimages can place it)."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (51, 51, 102)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def test_a_figure_and_its_caption_stay_on_one_page(tmp_path):
    """A figure that would straddle a page break moves whole to the next page.

    Both figures start 150 mm down a page with a 100 mm image: the image fits on that page, its
    three-line caption does not. Figure A follows the print rules; figure B overrides them
    (``break-inside: auto``) and is split, which shows that the check can fail.
    """
    figure = (
        '<div style="height:150mm"></div><figure{style}><img alt="chart {n}" src="{uri}" '
        'style="height:100mm;width:auto;display:block"><figcaption>Caption {n}: line one<br>'
        "line two<br>line three</figcaption></figure>"
    )
    uri = png_uri()
    page = tmp_path / "figures.html"
    page.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title></head><body>'
        + figure.format(style="", n="A", uri=uri)
        + '<div style="break-before:page"></div>'
        + figure.format(style=' style="break-inside:auto !important"', n="B", uri=uri)
        + "</body></html>",
        encoding="utf-8",
    )
    pdf = write_pdf(page, tmp_path / "figures.pdf", title="t", date="d")
    texts = page_texts(pdf)
    image_a, image_b = (page for page, _ in image_pages(pdf))

    def caption_page(n: str) -> int:
        return next(i for i, t in enumerate(texts, start=1) if f"Caption {n}" in t)

    assert image_a == caption_page("A") == 2  # moved whole to page 2
    assert caption_page("B") != image_b  # without the rule, the caption is cut from its chart


def test_a_page_that_fetches_anything_is_refused(tmp_path):
    page = tmp_path / "remote.html"
    page.write_text(
        "<!DOCTYPE html><html><body><img alt='x' src='http://cdn.invalid/x.png'></body></html>",
        encoding="utf-8",
    )
    with pytest.raises(LcstatsError, match="self-contained, so no PDF was written"):
        write_pdf(page, tmp_path / "remote.pdf", title="t", date="d")
    assert not (tmp_path / "remote.pdf").exists()


def test_missing_chromium_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("LCSTATS_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(LcstatsError, match="apt-get install chromium"):
        find_chromium()
    with pytest.raises(LcstatsError, match="no such file"):
        write_pdf(tmp_path / "missing.html", tmp_path / "x.pdf", title="t", date="d")


def test_footer_escapes_its_text():
    footer = footer_template("<script>alert(1)</script> & co", "2026-06-30")
    assert "<script>" not in footer and "&lt;script&gt;" in footer and "&amp; co" in footer
    assert 'class="pageNumber"' in footer and 'class="totalPages"' in footer
