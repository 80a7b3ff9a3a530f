"""Every evaluation on one page: latest headlines, how they moved, and the pooled evidence.

`build_portfolio` reads the results.json of each successful run (the running layer lists them
from the ledger) and gives a `Portfolio`: per evaluation, its latest headline for both outcomes
(effect, interval, design, learners, date), how the headline moved across its successful runs,
and a link to its report; and, across evaluations, a random-effects meta-analysis of each
outcome (`lcstats.estimation.pooling`). `Portfolio.write` writes ``index.html`` (one
self-contained file) and ``portfolio.json``. Only aggregates are shown, and a count smaller than
an evaluation's minimum group size never is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lcstats.core.errors import InputError, PrivacyError, Problem
from lcstats.core.files import write_atomic, write_json
from lcstats.core.options import OUTCOME_LABELS, OUTCOMES
from lcstats.estimation.pooling import PooledEffect, pool_effects
from lcstats.reporting import plots

if TYPE_CHECKING:
    from lcstats.reporting.report import _Figures

DESIGN_NAMES = {
    "observational": "adjusted comparison",
    "staggered": "roll-out in waves",
    "randomised": "randomised pilot",
}


@dataclass(frozen=True)
class PortfolioRun:
    """One successful run: its evaluation, id, start time and folder."""

    evaluation: str
    run_id: str
    started: str
    run_dir: Path


@dataclass(frozen=True)
class EvaluationSummary:
    """One evaluation on the portfolio page."""

    evaluation: str
    title: str
    design: str
    as_of: str
    learners: int
    coached: int
    run_id: str
    started: str
    report: str  # relative to the page
    headlines: tuple[dict, ...]
    trend: pd.DataFrame = field(
        compare=False, repr=False
    )  # outcome, started, estimate, ci_low, ci_high
    min_group_size: int = 5

    def headline(self, outcome: str) -> dict | None:
        """The latest headline record of an outcome."""
        return next((h for h in self.headlines if h["outcome"] == outcome), None)


def _load(run: PortfolioRun) -> dict | None:
    """A run's results.json (None when it cannot be read)."""
    try:
        return json.loads((run.run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _summary(runs: Sequence[PortfolioRun], page_dir: Path) -> EvaluationSummary | None:
    """An evaluation's summary from its successful runs (oldest first)."""
    docs = [(run, doc) for run in runs if (doc := _load(run)) is not None and doc.get("headlines")]
    if not docs:
        return None
    trend = pd.DataFrame(
        [
            {
                "outcome": h["outcome"],
                "started": run.started,
                "run_id": run.run_id,
                **{k: h[k] for k in ("estimate", "ci_low", "ci_high")},
            }
            for run, doc in docs
            for h in doc["headlines"]
        ]
    )
    run, doc = docs[-1]
    programme = doc.get("programme", {})
    return EvaluationSummary(
        evaluation=run.evaluation,
        title=programme.get("title", run.evaluation),
        design=programme.get("design", "observational"),
        as_of=doc.get("as_of", ""),
        learners=int(programme.get("learners", 0)),
        coached=int(programme.get("coached", 0)),
        run_id=run.run_id,
        started=run.started,
        report=os.path.relpath(run.run_dir / "report.html", page_dir),
        headlines=tuple(doc["headlines"]),
        trend=trend,
        min_group_size=int(programme.get("min_group_size", 5)),
    )


def _pooled(evaluations: Sequence[EvaluationSummary], alpha: float) -> dict[str, PooledEffect]:
    """Each outcome's latest headlines pooled across evaluations (two or more)."""
    pooled = {}
    for outcome in OUTCOMES:
        rows = [(e.title, e.headline(outcome)) for e in evaluations if e.headline(outcome)]
        if len(rows) < 2:
            continue
        frame = pd.DataFrame(
            [
                {
                    "label": title,
                    "outcome": outcome,
                    **{k: h[k] for k in ("estimate", "std_error", "n_treated", "n_control")},
                }
                for title, h in rows
            ]
        )
        pooled[outcome] = pool_effects(frame, method="pm", alpha=alpha, outcome=outcome)
    return pooled


@dataclass(frozen=True)
class Portfolio:
    """The evaluations of a reports folder and their pooled evidence."""

    evaluations: tuple[EvaluationSummary, ...]
    pooled: dict[str, PooledEffect]
    alpha: float = 0.05

    def as_dict(self) -> dict[str, Any]:
        """portfolio.json: every evaluation's latest headlines and trend, and the pooled evidence."""
        return {
            "evaluations": [
                {
                    "evaluation": e.evaluation,
                    "title": e.title,
                    "design": e.design,
                    "as_of": e.as_of,
                    "learners": e.learners,
                    "coached": e.coached,
                    "latest_run": e.run_id,
                    "report": e.report,
                    "headlines": list(e.headlines),
                    "trend": e.trend.to_dict(orient="records"),
                }
                for e in self.evaluations
            ],
            "pooled": {o: p.as_dict() for o, p in self.pooled.items()},
        }

    def check_privacy(self) -> None:
        """Refuse to show a count below an evaluation's minimum group size (`PrivacyError`)."""
        for e in self.evaluations:
            counts = [e.learners, e.coached] + [
                h[k] for h in e.headlines for k in ("n_treated", "n_control")
            ]
            if any(0 < int(c) < e.min_group_size for c in counts):
                raise PrivacyError(
                    f"portfolio: evaluation '{e.evaluation}' has a group smaller than its minimum "
                    f"group size ({e.min_group_size}); the page was not written"
                )

    def render(self) -> str:
        """The page as one self-contained HTML document."""
        from lcstats.reporting.report import TEMPLATES

        return TEMPLATES.get_template("portfolio.html.j2").render(**_context(self))

    def write(self, html_path: str | Path) -> tuple[Path, Path]:
        """Write index.html (after the privacy gate) and portfolio.json beside it."""
        self.check_privacy()
        html_path = Path(html_path)
        write_atomic(html_path, self.render())
        return html_path, write_json(html_path.with_name("portfolio.json"), self.as_dict())


def _context(portfolio: Portfolio) -> dict[str, Any]:
    """What the template shows: readings, figures and table rows (plain values)."""
    from lcstats.estimation.effects import format_effect, format_interval
    from lcstats.reporting.report import _drawing, _Figures

    figures = _Figures()
    pooled = [
        {
            "label": OUTCOME_LABELS.get(o, o),
            "reading": p.reading(),
            "figure": figures(
                partial(plots.pooled_forest_plot, p),
                f"Forest plot of the effect on {OUTCOME_LABELS.get(o, o).lower()} in each evaluation and pooled",
            ),
        }
        for o, p in portfolio.pooled.items()
    ]
    rows = [_row(e, format_effect, format_interval, figures) for e in portfolio.evaluations]
    with _drawing():
        figures.draw()
    return {
        "pooled": pooled,
        "rows": rows,
        "n": len(rows),
        "confidence": round(100 * (1 - portfolio.alpha)),
    }


def _row(e: EvaluationSummary, format_effect, format_interval, figures: _Figures) -> dict[str, Any]:
    """One evaluation as a table row, with its trend chart (drawn by `figures`)."""
    cells = {}
    for outcome in OUTCOMES:
        h = e.headline(outcome)
        cells[outcome] = (
            f"{format_effect(h['estimate'], outcome)} ({format_interval(h['ci_low'], h['ci_high'], outcome)})"
            if h
            else "not estimated"
        )
    trend = e.trend[e.trend["outcome"] == "follow_through"]
    figure = (
        figures(
            partial(plots.trend_plot, trend, outcome="follow_through"),
            f"Trend of the follow-through effect of {e.title} over {len(trend)} runs",
        )
        if len(trend)
        else None
    )
    return {
        "title": e.title,
        "evaluation": e.evaluation,
        "design": DESIGN_NAMES.get(e.design, e.design),
        "as_of": e.as_of,
        "learners": f"{e.learners:,}",
        "follow_through": cells["follow_through"],
        "skills_gap": cells["skills_gap"],
        "runs": int(len(trend)),
        "trend": figure,
        "report": e.report,
    }


def build_portfolio(
    runs: Sequence[PortfolioRun], *, page_dir: str | Path, alpha: float = 0.05
) -> Portfolio:
    """The portfolio of the successful runs given (any order).

    Raises
    ------
    InputError
        When no run has results to show.
    """
    by_evaluation: dict[str, list[PortfolioRun]] = {}
    for run in sorted(runs, key=lambda r: (r.evaluation, r.started, r.run_id)):
        by_evaluation.setdefault(run.evaluation, []).append(run)
    summaries = [
        s
        for rs in by_evaluation.values()
        if (s := _summary(rs, Path(page_dir).resolve())) is not None
    ]
    if not summaries:
        raise InputError(
            Problem(
                str(page_dir),
                "no successful run with results to show",
                hint="run an evaluation first: lcstats run params/<evaluation>.yaml",
            )
        )
    return Portfolio(tuple(summaries), _pooled(summaries, alpha), alpha)
