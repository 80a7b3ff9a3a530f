"""The report's figures: whole (nothing clipped at the edges), sized for the page, drawn once,
deterministic, and the report the same however many times it is built in one process.

Figures are saved at their set size (no ``bbox_inches="tight"`` to trim or extend them), so a
title or label that ran off the figure would be cut off: the outermost pixels of every image
must be background.
"""

from __future__ import annotations

import base64
import gc
import io
import re
import struct
from types import SimpleNamespace

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from lcstats.reporting import plots, report
from tests.conftest import ROOT

EXAMPLE_PARAMS = ROOT / "params" / "example.yaml"
TEXT_COLUMN_PX = 952  # the template's 62rem column less its padding
IMG = re.compile(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]*)"')


def png_chunks(png: bytes) -> list[str]:
    """Chunk types of a PNG file, in order."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        chunks.append(png[at + 4 : at + 8].decode("ascii"))
        at += 12 + length
    return chunks


def ink_at_edges(png: bytes, frame: int = 2) -> dict[str, int]:
    """Pixels that are not background in the outermost `frame` pixels of each side."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    background = pixels[0, 0]
    sides = {
        "top": pixels[:frame],
        "bottom": pixels[-frame:],
        "left": pixels[:, :frame],
        "right": pixels[:, -frame:],
    }
    ink = {side: int((np.abs(p - background).max(axis=-1) > 0).sum()) for side, p in sides.items()}
    return {side: n for side, n in ink.items() if n}


def figure_png(fig: Figure) -> bytes:
    return base64.b64decode(report.figure_uri(fig).split(",", 1)[1])


@pytest.fixture(scope="module")
def inputs(example_evaluation) -> dict:
    """build_report's arguments for the example programme, made as the notebook makes them."""
    return example_evaluation.report_arguments("test")


@pytest.fixture(scope="module")
def html(inputs) -> str:
    return report.build_report(**inputs).render()


def test_figures_drawn_in_forked_copies_are_the_bytes_drawn_here(
    inputs, forks_counted, monkeypatch
):
    """The report's figures are shared with forked copies of the process: the report is the
    same, byte for byte, as with every figure drawn here."""
    monkeypatch.setattr(report, "FIGURE_PROCESSES", 2)
    shared = report.build_report(**inputs).render()
    assert forks_counted, "no copy was forked"
    monkeypatch.setattr(report, "FIGURE_PROCESSES", 1)
    assert shared == report.build_report(**inputs).render()


def test_every_figure_is_whole_sized_for_the_page_and_without_metadata(html):
    images = IMG.findall(html)
    cohorts = [alt for _, alt in images if "in each cohort and pooled across cohorts" in alt]
    assert len(cohorts) == 2, cohorts  # one pooled forest plot per outcome
    assert len(images) == 11 + len(cohorts), [alt for _, alt in images]
    for data, alt in images:
        png = base64.b64decode(data)
        width, height = Image.open(io.BytesIO(png)).size
        assert 300 < width <= TEXT_COLUMN_PX, (alt, width)  # shown at its own size, never shrunk
        assert ink_at_edges(png) == {}, alt  # nothing runs off the figure
        assert set(png_chunks(png)) == {"IHDR", "pHYs", "IDAT", "IEND"}, alt  # no date, software
        assert alt.strip(), "every figure is described for screen readers"


def test_building_again_in_the_same_process_gives_the_same_report(inputs, html):
    rc_before = dict(mpl.rcParams)
    assert report.build_report(**inputs).render() == html
    assert dict(mpl.rcParams) == rc_before  # the report's dpi does not leak out
    assert gc.get_freeze_count() == 0  # objects frozen while drawing are released


def test_tables_are_escaped_with_column_headers_and_numbers_right_aligned():
    table = report._Tables(min_group_size=5)
    html = table(
        pd.DataFrame({"<b>Group</b>": ["<i>x</i>", None], "Learners": ["1,234", "12"]}),
        numeric=("Learners",),
        counts=("Learners",),
    )
    assert '<th scope="col">&lt;b&gt;Group&lt;/b&gt;</th>' in html
    assert '<th scope="col" class="num">Learners</th>' in html
    assert "<td>&lt;i&gt;x&lt;/i&gt;</td>" in html and "<td>suppressed</td>" in html
    assert '<td class="num">1,234</td>' in html
    assert html.startswith('<table id="t1" class="data">')
    assert table(pd.DataFrame({"a": [1]})).startswith('<table id="t2" ')


def test_a_figure_is_drawn_once_when_saved(monkeypatch):
    draws = []
    original = Figure.draw

    def counting(self, renderer):
        draws.append(self)
        return original(self, renderer)

    funnel = SimpleNamespace(
        frame=pd.DataFrame(
            {
                "group": ["coached"] * 2 + ["not coached"] * 2,
                "stage": ["committed", "done on time"] * 2,
                "share": [1.0, 0.6, 1.0, 0.4],
            }
        )
    )
    fig = plots.funnel_plot(funnel, title="A finding")
    assert fig.get_layout_engine() is None  # laid out already: savefig needs no extra draw
    monkeypatch.setattr(Figure, "draw", counting)
    figure_png(fig)
    assert len(draws) == 1


def test_long_titles_and_labels_are_wrapped_not_cut_off():
    long = (
        "Coached learners in the northern region's 2026 leadership cohort completed far more "
        "of their action items on time than the learners who were not coached"
    )
    curves = SimpleNamespace(
        frame=pd.DataFrame(
            {
                "group": ["coached"] * 3 + ["not coached"] * 3,
                "days": [0.0, 10.0, 50.0] * 2,
                "share_completed": [0.0, 0.4, 0.8, 0.0, 0.3, 0.6],
            }
        )
    )
    fig = plots.completion_plot(curves, title=long)
    title = fig.axes[0].get_title(loc="left")
    assert "\n" in title and title.replace("\n", " ") == long  # wrapped, every word kept
    assert ink_at_edges(figure_png(fig)) == {}

    estimates = pd.DataFrame(
        {
            "outcome": ["follow_through"] * 2 + ["a_very_long_outcome_name_" * 4] * 2,
            "method": ["difference", "aipw"] * 2,
            "estimate": [0.1, 0.08, -0.2, -0.1],
            "ci_low": [0.05, 0.02, -0.3, -0.2],
            "ci_high": [0.15, 0.14, -0.1, 0.0],
            "units": ["share"] * 2 + ["points on a scale with a long description"] * 2,
        }
    )
    fig = plots.forest_plot(estimates, title=long)
    assert ink_at_edges(figure_png(fig)) == {}


def test_panels_on_a_callers_axes_leave_the_layout_to_the_caller():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    try:
        counts = pd.DataFrame({"role": ["a", "b"], "coached": [10, 12], "not coached": [9, None]})
        assert plots.counts_bar(counts, by="role", ax=axes[0]) is fig
        before = fig.subplotpars.left
        assert plots.lay_out(fig) is fig and fig.subplotpars.left != before
        assert [t.get_text() for t in axes[0].get_xticklabels()] == ["a", "b"]
        assert len(axes[0].patches) == 3  # the hidden cell is a gap
    finally:
        plt.close(fig)


# --- labels and legends that a director can read -----------------------------------------------

LONG_ROLES = {
    "Engineer": "Senior Software Engineering Specialist (Platform)",
    "Analyst": "Commercial Insight and Reporting Analyst",
    "Sales": "Regional Enterprise Sales Account Director",
    "Operations": "Customer Operations and Fulfilment Coordinator",
    "Team Lead": "First-Line Team Leader, Contact Centre",
}


def _text_boxes(fig: Figure, ax) -> list[tuple[str, object]]:
    """The window boxes of an axes' visible, non-empty tick labels on both axes."""
    renderer = fig.canvas.get_renderer()
    boxes = []
    for axis in (ax.xaxis, ax.yaxis):
        for label in axis.get_ticklabels():
            if label.get_visible() and label.get_text().strip():
                boxes.append((label.get_text(), label.get_window_extent(renderer)))
    return boxes


def _overlapping_labels(fig: Figure) -> list[tuple[str, str]]:
    fig.canvas.draw()
    found = []
    for ax in fig.axes:
        boxes = _text_boxes(fig, ax)
        for i, (a, ba) in enumerate(boxes):
            for b, bb in boxes[i + 1 :]:
                wide = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
                high = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
                if wide > 1 and high > 1:  # more than touching
                    found.append((a, b))
    return found


def _legend_over_data(fig: Figure) -> list[str]:
    """Data drawn under a legend: bars, points and line vertices inside the legend's box."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        for patch in ax.patches:
            if patch.get_visible() and patch.get_window_extent(renderer).overlaps(box):
                found.append(f"bar under the legend in '{ax.get_title()}'")
        for line in ax.lines:
            xy = ax.transData.transform(np.column_stack(line.get_data()).astype(float))
            if np.any([box.contains(x, y) for x, y in xy if np.isfinite(x) and np.isfinite(y)]):
                found.append(f"line under the legend in '{ax.get_title()}'")
    return found


@pytest.fixture(scope="module")
def long_name_figures(tmp_path_factory, small_programme_dir):
    """Every figure of a report built from data with long role names."""
    import lcstats as lc
    from tests.conftest import write_params

    data = tmp_path_factory.mktemp("long")
    for name in ("action_items.csv", "skill_assessments.csv"):
        (data / name).write_bytes((small_programme_dir / name).read_bytes())
    learners = pd.read_csv(small_programme_dir / "learners.csv", dtype=str)
    learners["role"] = learners["role"].map(LONG_ROLES)
    learners.to_csv(data / "learners.csv", index=False)
    done = lc.evaluate(lc.load_params(write_params(data / "p.yaml", data, evaluation="long")))
    figures = []
    original = report._figure

    def keep(fig, alt):
        fig.canvas.draw()
        figures.append((alt, _overlapping_labels(fig), _legend_over_data(fig)))
        return original(fig, alt)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "_figure", keep)
        patch.setattr(report, "FIGURE_PROCESSES", 1)  # every figure drawn here, where it is kept
        report.build_report(**done.report_arguments("long"))
    return figures


def test_no_two_tick_labels_overlap_with_long_category_names(long_name_figures):
    assert len(long_name_figures) >= 8
    overlaps = {alt[:60]: found for alt, found, _ in long_name_figures if found}
    assert not overlaps, overlaps


def test_legends_never_cover_data(long_name_figures):
    covered = {alt[:60]: found for alt, _, found in long_name_figures if found}
    assert not covered, covered


def test_the_overlap_check_can_fail():
    """Long labels side by side on a horizontal axis do overlap: the check sees it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2))
    ax.bar(range(5), [3, 2, 3, 2, 1])
    ax.set_xticks(range(5), list(LONG_ROLES.values()))
    ax.legend(["data"], loc="upper left")
    assert _overlapping_labels(fig)
    assert _legend_over_data(fig)
    plt.close(fig)


def _executive_summary(html: str) -> str:
    import html as html_lib

    start = html.index("Executive summary")
    end = html.index("<h2", start + 20)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html[start:end])).split())


def test_the_summary_reads_right_for_a_director(html):
    summary = _executive_summary(html)
    # the skills-gap sentence: the number and its interval read the same way, on a named scale
    sentence = re.search(
        r"Coaching narrowed the skills gap by about ([\d.]+) points on the 1-5 "
        r"skill scale \(95% interval ([\d.]+) to ([\d.]+) points\)",
        summary,
    )
    assert sentence, summary
    size, low, high = map(float, sentence.groups())
    assert low <= size <= high
    for term in ("SMD", "E-value", "risk ratio", "propensity"):
        assert term not in summary, term
