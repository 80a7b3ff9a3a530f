"""The leadership report: one self-contained HTML file, plain language first, no learner detail.

Content comes only from results (estimates, aggregated and suppressed tables, figures); the
template autoescapes every string, and images are embedded as data URIs, so the file opens offline
and fetches nothing.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from lcstats import plots
from lcstats.analysis import EffectSet
from lcstats.effects import EffectEstimate, format_effect, format_p
from lcstats.files import write_atomic
from lcstats.load import Programme
from lcstats.metrics import LearnerOutcomes
from lcstats.options import OUTCOME_LABELS
from lcstats.privacy import suppress_counts
from lcstats.provenance import package_versions

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("lcstats", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def figure_uri(fig: Figure, *, dpi: int = 100) -> str:
    """Embed a figure as a PNG data URI (deterministic bytes: no software/date metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plots.close([fig])
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _ci(est: EffectEstimate) -> str:
    """An interval in the outcome's units, the unit written once: '7.4 to 13.8 percentage points'."""
    low = format_effect(est.ci_low, est.outcome, signed=False)
    high = format_effect(est.ci_high, est.outcome, signed=False)
    number, _, unit = low.partition(" ")
    return f"{number} to {high}" if unit and high.endswith(unit) else f"{low} to {high}"


def _verdict(est: EffectEstimate) -> int:
    """+1 clearly positive, -1 clearly negative, 0 interval includes zero."""
    return 1 if est.ci_low > 0 else -1 if est.ci_high < 0 else 0


def _fmt_count(value: Any) -> str:
    return "suppressed" if pd.isna(value) else f"{int(value):,}"


@dataclass(frozen=True)
class BreakdownTable:
    """A table of learner counts after small-cell suppression, ready to show."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    hidden: int


def coached_breakdown(
    data: pd.DataFrame, *, by: str, treatment: str, min_group_size: int
) -> tuple[BreakdownTable, pd.DataFrame]:
    """Counts of coached and not-coached learners by a group, with small cells suppressed."""
    counts = pd.crosstab(
        data[by].astype(str), data[treatment].map({1: "coached", 0: "not coached"})
    )
    for col in ("coached", "not coached"):
        if col not in counts:
            counts[col] = 0
    counts = counts[["coached", "not coached"]].sort_index()
    shown, hidden = suppress_counts(counts, min_group_size)
    rows = [
        [str(idx), _fmt_count(r["coached"]), _fmt_count(r["not coached"])]
        for idx, r in shown.iterrows()
    ]
    table = BreakdownTable(
        title=f"Learners by {by.replace('_', ' ')}",
        columns=[by.replace("_", " ").capitalize(), "Coached", "Not coached"],
        rows=rows,
        hidden=hidden,
    )
    return table, shown.reset_index(names=by)


@dataclass(frozen=True)
class Report:
    """Everything the report shows, as plain values; `render` turns it into HTML."""

    context: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """Return the report as one self-contained HTML document."""
        return TEMPLATES.get_template("report.html.j2").render(**self.context)

    def write(self, path: str | Path) -> Path:
        """Write report.html atomically."""
        return write_atomic(path, self.render())


def _next_steps(headlines: list[EffectEstimate]) -> list[str]:
    steps = []
    clear = [h for h in headlines if h.ci_low > 0 or h.ci_high < 0]
    helpful = [
        h
        for h in clear
        if (h.outcome == "skills_gap" and h.estimate < 0)
        or (h.outcome != "skills_gap" and h.estimate > 0)
    ]
    if helpful:
        steps.append(
            "Keep coaching in the programme and extend it to the groups that have not had it yet, "
            "in waves, so that the next evaluation can compare like with like."
        )
    if len(clear) < len(headlines):
        steps.append(
            "Where the interval includes no effect, collect another cohort (or plan a pilot with enough "
            "learners) before drawing a conclusion."
        )
    if len(clear) > len(helpful):
        steps.append("Review how coaching is delivered: at least one outcome moved the wrong way.")
    steps.append(
        "Coaching was not assigned at random: the estimates adjust for the recorded differences between "
        "coached and other learners, but not for differences nobody recorded."
    )
    return steps


def build_report(
    *,
    title: str,
    evaluation: str,
    programme: Programme,
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    parameters: dict[str, Any],
    headline_method: str,
    min_group_size: int,
    treatment: str = "coached",
    run_id: str = "interactive",
) -> Report:
    """Assemble the leadership report from an evaluation's results.

    Only aggregates are passed to the template: no learner-level row or identifier.
    """
    data = outcomes.data
    headlines = [
        e for e in effects.estimates if e.method == headline_method and e.treatment == treatment
    ]
    headline_rows = [
        {
            "label": OUTCOME_LABELS.get(h.outcome, h.outcome),
            "estimate": format_effect(h.estimate, h.outcome),
            "ci": _ci(h),
            "p": format_p(h.p_value),
            "reading": h.reading(),
            "n": f"{h.n_treated:,} coached and {h.n_control:,} not coached",
        }
        for h in headlines
    ]
    breakdowns = []
    figures = []
    hidden_total = 0
    for by in ("cohort", "role"):
        table, shown = coached_breakdown(
            data, by=by, treatment=treatment, min_group_size=min_group_size
        )
        breakdowns.append(table)
        hidden_total += table.hidden
        figures.append(
            {
                "uri": figure_uri(
                    plots.counts_bar(shown, by=by, title=f"Who was coached, by {by}")
                ),
                "alt": f"Bar chart of coached and not-coached learners by {by}",
            }
        )
    frame = effects.to_frame()
    agree = all(
        _verdict(e) == _verdict(h)
        for h in headlines
        for e in effects.estimates
        if e.outcome == h.outcome and e.treatment == h.treatment and e.method != "difference"
    )
    forest_title = (
        "Adjusted estimates agree across methods"
        if agree
        else "Estimates differ by method: read with care"
    )
    effect_rows = [
        {
            "outcome": OUTCOME_LABELS.get(e.outcome, e.outcome),
            "method": plots.METHOD_LABELS.get(e.method, e.method),
            "estimand": e.estimand,
            "estimate": format_effect(e.estimate, e.outcome),
            "ci": _ci(e),
            "p": format_p(e.p_value),
            "n": f"{e.n_treated:,} / {e.n_control:,}",
            "notes": "; ".join(e.notes),
        }
        for e in effects.estimates
    ]
    quality_rows = []
    for table, q in outcomes.quality.items():
        src = programme.sources.get(table)
        excluded = (
            "; ".join(f"{reason}: {n:,}" for reason, n in sorted(q.excluded.items()) if n) or "none"
        )
        quality_rows.append(
            {
                "table": table,
                "read": f"{(src.rows_read if src else q.rows_read):,}",
                "used": f"{q.rows_used:,}",
                "excluded": excluded,
            }
        )
    sample_rows = [
        {
            "outcome": OUTCOME_LABELS.get(o, o),
            "available": f"{s.n_available:,}",
            "used": f"{len(s.data):,}",
            "excluded": "; ".join(f"{r}: {n:,}" for r, n in s.excluded.items() if n) or "none",
        }
        for o, s in effects.samples.items()
    ]
    n_learners = len(data)
    n_coached = int((data[treatment] == 1).sum())
    context = {
        "title": title,
        "evaluation": evaluation,
        "as_of": outcomes.as_of,
        "n_learners": f"{n_learners:,}",
        "n_coached": f"{n_coached:,}",
        "share_coached": f"{100 * n_coached / max(n_learners, 1):.0f}%",
        "headlines": headline_rows,
        "headline_method": plots.METHOD_LABELS.get(headline_method, headline_method),
        "next_steps": _next_steps(headlines),
        "breakdowns": breakdowns,
        "breakdown_figures": figures,
        "forest": {
            "uri": figure_uri(plots.forest_plot(frame, title=forest_title)),
            "alt": "Forest plot of effect estimates by outcome and method",
        },
        "effect_rows": effect_rows,
        "confidence": headlines[0].confidence if headlines else 95,
        "quality_rows": quality_rows,
        "sample_rows": sample_rows,
        "suppressed_cells": hidden_total,
        "min_group_size": min_group_size,
        "parameters": [
            {"key": k, "value": str(v)}
            for k, v in sorted(parameters.items())
            if k not in ("learners", "action_items", "skill_assessments", "output_dir")
        ],
        "inputs": [
            {
                "table": s.table,
                "file": Path(s.path).name,
                "sha256": s.sha256,
                "rows": f"{s.rows_read:,}",
            }
            for s in programme.sources.values()
        ],
        "versions": package_versions(),
        "run_id": run_id,
    }
    return Report(context)
