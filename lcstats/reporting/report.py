"""The leadership report: one self-contained HTML file, plain language first, no learner detail.

Content comes only from results (estimates, aggregated and suppressed tables, figures); the
template autoescapes every string, every table cell and heading is HTML-escaped, and images are
embedded as data URIs, so the file opens offline and fetches nothing.

`benchmarks/report_speed.py` times `build_report` and each figure.
"""

from __future__ import annotations

import base64
import gc
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jinja2
import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd
from markupsafe import Markup, escape
from matplotlib.figure import Figure

from lcstats.core.errors import PrivacyError
from lcstats.core.files import write_atomic
from lcstats.core.forks import calls_forked
from lcstats.core.options import OUTCOME_LABELS
from lcstats.core.provenance import package_versions
from lcstats.core.threads import calls_side_by_side
from lcstats.data.load import Programme
from lcstats.estimation.analysis import EffectSet
from lcstats.estimation.costs import ValueForMoney
from lcstats.estimation.designs import DesignResult, headline_estimates
from lcstats.estimation.diagnostics import Diagnostics
from lcstats.estimation.effects import EffectEstimate, format_effect, format_interval, format_p
from lcstats.outcomes.learner import LearnerOutcomes
from lcstats.params import Params
from lcstats.reporting import descriptives, plots
from lcstats.reporting.changes import SinceLastRun
from lcstats.reporting.privacy import suppress_counts

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("lcstats.reporting", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
LTEM = {  # Thalheimer's Learning-Transfer Evaluation Model tier of each measure
    "follow_through": "LTEM tier 7 (transfer: learners applying what they learned on the job)",
    "skills_gap": "LTEM tier 5-6 (task competence, as assessed before and after)",
}

# Figures are drawn at their final size: the page's text column is 62rem less 2 x 1.25rem padding,
# 952 CSS pixels, and a full-width figure of 10.5 in at 90 dpi is 945 pixels (never scaled down).
DPI = 90
FULL_WIDTH = 10.5
# zlib level 3 instead of Pillow's default 6: measured a third faster, and smaller for these plots
PNG_OPTIONS = {"compress_level": 3}
# processes that draw the report's figures (`_Figures.draw`; default: one per core); 1 draws
# each in this process, for code that looks at each figure as it is embedded (`_figure`)
FIGURE_PROCESSES: int | None = None


def figure_uri(fig: Figure, *, dpi: float | None = None) -> str:
    """Embed a figure as a PNG data URI (deterministic bytes: no software/date metadata).

    At the figure's own dpi by default: `build_report` makes its figures at `DPI`, so that the
    text measured to lay them out is measured at the resolution they are drawn at (and reused).
    """
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="png",
        dpi=dpi or fig.dpi,
        metadata={"Software": None},
        pil_kwargs=dict(PNG_OPTIONS),
    )
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig: Figure, alt: str) -> dict[str, str]:
    return {"uri": figure_uri(fig), "alt": alt}


def _embedded(make: Callable[[], Figure], alt: str) -> str:
    return _figure(make(), alt)["uri"]


class _Figures:
    """The figures of a report, made and embedded together once all are known (`draw`).

    Drawing is interpreter-bound (matplotlib lays out and draws in Python), so the figures are
    shared between this process and forked copies of it, one per core (`calls_forked`): the
    same bytes as drawn one after the other, in about half the time on two cores.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[], Figure], dict[str, str]]] = []

    def __call__(self, make: Callable[[], Figure], alt: str) -> dict[str, str]:
        """A figure to be made by `make`: its place in the template's context (``uri`` and
        ``alt``; the ``uri`` is filled in by `draw`)."""
        slot = {"alt": alt}
        self._pending.append((make, slot))
        return slot

    def draw(self) -> None:
        """Make and embed every figure asked for so far."""
        calls = [partial(_embedded, make, slot["alt"]) for make, slot in self._pending]
        uris = calls_forked(calls, processes=FIGURE_PROCESSES)
        for (_, slot), uri in zip(self._pending, uris, strict=True):
            slot["uri"] = uri
        self._pending.clear()


class _Tables:
    """Renders frames as escaped HTML tables with stable ids (``t1``, ``t2``, ...).

    Column headings are ``<th scope="col">``; numeric columns carry ``class="num"`` (right-aligned
    by the template's style sheet). Missing values read "suppressed".

    It is also the last privacy check of every breakdown: a column named in `counts` that would
    show a group of 1 to ``min_group_size - 1`` learners stops the report (fail closed).
    """

    def __init__(self, min_group_size: int) -> None:
        self._ids = itertools.count(1)
        self.min_group_size = min_group_size

    def _check(self, frame: pd.DataFrame, counts: tuple[str, ...]) -> None:
        for col in counts:
            values = pd.to_numeric(frame[col].astype(str).str.replace(",", ""), errors="coerce")
            small = values[(values > 0) & (values < self.min_group_size)]
            if len(small):
                raise PrivacyError(
                    f"the report would show a group of {int(small.iloc[0])} learners (column '{col}'), "
                    f"below the minimum group size of {self.min_group_size}; the report was not written"
                )

    def __call__(
        self, frame: pd.DataFrame, *, numeric: tuple[str, ...] = (), counts: tuple[str, ...] = ()
    ) -> Markup:
        self._check(frame, counts)
        right = set(numeric)
        classes = [' class="num"' if c in right else "" for c in frame.columns]
        head = "".join(
            f'<th scope="col"{cls}>{escape(str(c))}</th>'
            for c, cls in zip(frame.columns, classes, strict=True)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td{cls}>{escape('suppressed' if pd.isna(v) else str(v))}</td>"
                for v, cls in zip(row, classes, strict=True)
            )
            + "</tr>\n"
            for row in frame.itertuples(index=False, name=None)
        )
        return Markup(
            f'<table id="t{next(self._ids)}" class="data">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}</tbody>\n</table>"
        )


def _ci(est: EffectEstimate) -> str:
    return format_interval(est.ci_low, est.ci_high, est.outcome)


def _verdict(est: EffectEstimate) -> int:
    """+1 clearly positive, -1 clearly negative, 0 interval includes zero."""
    return 1 if est.ci_low > 0 else -1 if est.ci_high < 0 else 0


def _helpful(est: EffectEstimate) -> bool:
    good = -1 if est.outcome == "skills_gap" else 1
    return _verdict(est) == good


def _pct(x: float) -> str:
    return "suppressed" if pd.isna(x) else f"{100 * x:.0f}%"


def _num(x: Any, digits: int = 2) -> str:
    return "suppressed" if pd.isna(x) else f"{x:.{digits}f}"


def _count(x: Any) -> str:
    return "suppressed" if pd.isna(x) else f"{int(x):,}"


def _excluded(counts: Iterable[tuple[str, int]]) -> str:
    """Exclusions by reason as "reason: n; ..." (reasons with none left out), or "none"."""
    return "; ".join(f"{r}: {n:,}" for r, n in counts if n) or "none"


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


def _next_steps(headlines: list[EffectEstimate], diag: Diagnostics) -> list[str]:
    steps = []
    helpful = [h for h in headlines if _helpful(h)]
    unclear = [h for h in headlines if _verdict(h) == 0]
    harmful = [h for h in headlines if _verdict(h) != 0 and not _helpful(h)]
    if helpful:
        steps.append(
            "Keep coaching in the programme and extend it, in waves, to the groups that have not had it "
            "yet, so that the next evaluation can again compare like with like."
        )
    if unclear:
        steps.append(
            "Where an interval includes no effect, collect another cohort or plan a pilot large enough to "
            "tell (see the minimum detectable effect with `lcstats power`) before deciding."
        )
    if harmful:
        steps.append("Review how coaching is delivered: at least one outcome moved the wrong way.")
    if diag.manager and any(_helpful(m.manager) for m in diag.manager.values()):
        steps.append("Coaching line managers also helped: include managers in the next wave.")
    steps.append(
        "Hold learners and their managers to account for their action plans: follow-through is the "
        "behaviour that coaching is meant to change, and it is measured here every run."
    )
    return steps


def _plain_balance(diag: Diagnostics) -> str:
    """Balance after adjustment in plain words (no standardised differences: those are in the
    "How sure we are" section)."""
    adjusted = diag.balance.has_adjusted
    rows = diag.balance.imbalanced(adjusted=adjusted)
    names = list(dict.fromkeys(rows["covariate"].astype(str).str.replace("_", " ")))
    when = "After adjustment" if adjusted else "Before any adjustment"
    if not names:
        return f"{when}, coached and other learners were alike in every recorded characteristic."
    return f"{when}, coached and other learners still differed somewhat in {', '.join(names)}."


def _how_sure(headlines: list[EffectEstimate], effects: EffectSet, diag: Diagnostics) -> str:
    """The executive summary's "how sure we are", in plain words for a director."""
    agree = all(
        _verdict(e) == _verdict(h)
        for h in headlines
        for e in effects.estimates
        if e.outcome == h.outcome and e.treatment == h.treatment and e.method != "difference"
    )
    parts = [
        "The different ways of adjusting for who was coached agree on the direction and clarity of every effect."
        if agree
        else "The different ways of adjusting for who was coached do not all agree: read the effects section with care."
    ]
    parts.append(_plain_balance(diag))
    strongest = min(diag.evalues.values(), key=lambda e: e.point)
    parts.append(
        "To explain away the weakest finding, something nobody recorded would have to make learners "
        f"about {strongest.point:.1f} times as likely to be coached and, at the same time, "
        f"{strongest.point:.1f} times as likely to do better on the outcome."
    )
    return " ".join(parts)


def _limitations(params: Params, diag: Diagnostics) -> list[str]:
    items = [
        "Coaching was not assigned at random. The estimates compare coached and other learners who were "
        f"alike in the recorded characteristics ({', '.join(params.covariates)}); a difference nobody "
        "recorded, such as motivation not captured by the engagement survey, could still bias them "
        "(the E-values below say how strong it would have to be).",
        "Skills are assessed levels; if the assessors knew who was coached, post-programme ratings may "
        "be more generous for the coached.",
        "Follow-through counts the action items learners and managers wrote down; plans that were never "
        "recorded are not counted.",
    ]
    if diag.overlap.poor:
        items.append(diag.overlap.reading())
    items += [f"Not estimated: {what}: {why}." for what, why in diag.skipped.items()]
    return items


@contextmanager
def _drawing() -> Iterator[None]:
    """While the report's figures are made: new figures at `DPI`, and the heap left alone.

    Matplotlib makes many short-lived reference cycles, and each full collection while the
    figures are made would scan every object of the analysis (frames, fitted models) again.
    What exists before is frozen (`gc.freeze`) meanwhile, so collections look at new objects
    only; skipped if the process froze objects itself (the collector is not ours to change).
    """
    freeze = gc.isenabled() and gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        with mpl.rc_context({"figure.dpi": DPI}):
            yield
    finally:
        if freeze:
            gc.unfreeze()


# The report's sections, in the order the template shows them: each returns its part of the
# template's context. Tables are numbered and figures drawn in the order they are made.


def _header_section(params: Params, outcomes: LearnerOutcomes) -> dict[str, Any]:
    """The title and the line under it: evaluation, as-of date, learners and how many coached."""
    data = outcomes.data
    n_learners = len(data)
    n_coached = int((data[params.treatment] == 1).sum())
    return {
        "title": params.title,
        "evaluation": params.evaluation,
        "as_of": outcomes.as_of,
        "n_learners": f"{n_learners:,}",
        "n_coached": f"{n_coached:,}",
        "share_coached": f"{100 * n_coached / max(n_learners, 1):.0f}%",
    }


def _on_the_scale(text: str, outcome: str, params: Params) -> str:
    """Name the skill scale where a skills-gap sentence first gives points."""
    if outcome != "skills_gap":
        return text
    scale = f" points on the {params.scale_min:g}-{params.scale_max:g} skill scale"
    return text.replace(" points", scale, 1)


def _headline_card(h: EffectEstimate, params: Params) -> dict[str, Any]:
    """One headline effect as a summary card."""
    return {
        "label": OUTCOME_LABELS.get(h.outcome, h.outcome),
        "estimate": _on_the_scale(format_effect(h.estimate, h.outcome), h.outcome, params),
        "ci": _ci(h),
        "n": f"{h.n_treated:,} coached and {h.n_control:,} not coached learners",
        "reading": _on_the_scale(h.reading(), h.outcome, params),
        "good": _helpful(h),
    }


def _summary_section(
    params: Params,
    headlines: list[EffectEstimate],
    effects: EffectSet,
    diag: Diagnostics,
    confidence: int,
) -> dict[str, Any]:
    """Executive summary: what coaching changed (headline cards), how sure we are, next steps."""
    return {
        "confidence": confidence,
        "headline_method": plots.METHOD_LABELS.get(params.headline_method, params.headline_method),
        "headlines": [_headline_card(h, params) for h in headlines],
        "how_sure": _how_sure(headlines, effects, diag),
        "next_steps": _next_steps(headlines, diag),
    }


def _learner_counts(
    data: pd.DataFrame, by: str, treatment: str, min_group_size: int
) -> tuple[pd.DataFrame, int]:
    """Coached and not-coached learners by `by`, small counts suppressed; and the cells hidden."""
    counts = pd.crosstab(data[by].astype(str), data[treatment].map(descriptives.GROUP))
    for g in descriptives.GROUP.values():
        if g not in counts:
            counts[g] = 0
    shown, hidden = suppress_counts(
        counts[list(descriptives.GROUP.values())].sort_index(), min_group_size
    )
    return shown.reset_index(names=by), hidden


def _counts_figure(frames: dict[str, pd.DataFrame], heights: list[float]) -> Figure:
    """Bar charts of coached and not-coached learners, one above the other (`frames` by column)."""
    fig, axes = plt.subplots(2, 1, figsize=(FULL_WIDTH, sum(heights) + 0.6), height_ratios=heights)
    for ax, (by, frame) in zip(axes, frames.items(), strict=True):
        plots.counts_bar(frame, by=by, title=f"Who was coached, by {by}", ax=ax)
    return plots.lay_out(fig)


def _programme_section(
    data: pd.DataFrame, params: Params, table: _Tables, figures: _Figures
) -> tuple[dict[str, Any], int]:
    """The programme and who was coached, by cohort and by role; and the cells hidden."""
    breakdowns, hidden, frames = [], 0, {}
    heights = [plots.bars_height(data[by].dropna().unique()) for by in ("cohort", "role")]
    for by in ("cohort", "role"):
        frame, n_hidden = _learner_counts(data, by, params.treatment, params.min_group_size)
        frames[by] = frame
        hidden += n_hidden
        shown = frame.rename(
            columns={by: by.capitalize(), "coached": "Coached", "not coached": "Not coached"}
        ).map(lambda v: _count(v) if not isinstance(v, str) else v)
        breakdowns.append(
            {
                "title": f"Learners by {by}",
                "table": table(
                    shown, numeric=("Coached", "Not coached"), counts=("Coached", "Not coached")
                ),
            }
        )
    figure = figures(
        partial(_counts_figure, frames, heights),
        "Bar charts of coached and not-coached learners by cohort and by role",
    )
    return {"breakdowns": breakdowns, "programme_figure": figure}, hidden


def _on_time(
    data: pd.DataFrame, by: str, treatment: str, min_group_size: int
) -> tuple[pd.DataFrame, int]:
    """On-time completion by `by`, a row per level and columns per group; and the cells hidden."""
    means = descriptives.group_means(
        data, by=by, value="follow_through", treatment=treatment, min_group_size=min_group_size
    )
    wide = means.frame.pivot(index=by, columns="group", values=["learners", "follow_through"])
    frame = pd.DataFrame(
        {
            by.capitalize(): wide.index,
            "Coached: learners": [_count(v) for v in wide[("learners", "coached")]],
            "Coached: on time": [_pct(v) for v in wide[("follow_through", "coached")]],
            "Not coached: learners": [_count(v) for v in wide[("learners", "not coached")]],
            "Not coached: on time": [_pct(v) for v in wide[("follow_through", "not coached")]],
        }
    )
    return frame, means.hidden


def _follow_through_section(
    outcomes: LearnerOutcomes,
    curves: descriptives.CompletionCurves,
    params: Params,
    table: _Tables,
    figures: _Figures,
) -> tuple[dict[str, Any], int]:
    """Follow-through: funnel, completion curves, on-time by cohort and role; and cells hidden."""
    treatment = params.treatment
    funnel = descriptives.item_funnel(outcomes, treatment=treatment)
    groups, hidden = [], 0
    for by in ("cohort", "role"):
        frame, n_hidden = _on_time(outcomes.data, by, treatment, params.min_group_size)
        hidden += n_hidden
        groups.append(
            {
                "title": f"On-time completion by {by}",
                "table": table(
                    frame,
                    numeric=tuple(frame.columns[1:]),
                    counts=("Coached: learners", "Not coached: learners"),
                ),
            }
        )
    share = funnel.frame.set_index(["group", "stage"])["share"]
    coached = _pct(share.get(("coached", "done on time"), float("nan")))
    others = _pct(share.get(("not coached", "done on time"), float("nan")))
    follow = {
        "funnel": figures(
            partial(
                plots.funnel_plot,
                funnel,
                title=f"Coached learners did {coached} of their action items on time, others {others}",
            ),
            "Bar chart of the share of action items done and done on time, by coaching group",
        ),
        "curves": figures(
            partial(
                plots.completion_plot,
                curves,
                title="Time to complete an action item (items not done by the as-of date are censored)",
            ),
            "Step chart of the share of action items completed by days since they were set",
        ),
        "medians": {
            g: (f"{m:.0f} days" if m is not None else "not reached")
            for g, m in curves.medians.items()
        },
        "groups": groups,
    }
    return follow, hidden


def _skills_section(
    outcomes: LearnerOutcomes,
    grid: descriptives.SkillGrid,
    params: Params,
    table: _Tables,
    figures: _Figures,
) -> dict[str, Any]:
    """Skills gaps: the heatmap by role and skill, and gap closure by coaching group."""
    k = params.min_group_size
    closure = descriptives.gap_closure(outcomes, treatment=params.treatment, min_group_size=k).frame
    closure_table = table(
        pd.DataFrame(
            {
                "Group": closure["group"],
                "Learners": [_count(v) for v in closure["learners"]],
                "Gap closed (share of the gap before)": [_pct(v) for v in closure["mean_closure"]],
                "Meeting every target after": [_pct(v) for v in closure["share_all_targets_met"]],
            }
        ),
        numeric=("Learners", "Gap closed (share of the gap before)", "Meeting every target after"),
        counts=("Learners",),
    )
    return {
        "heatmap": figures(
            partial(plots.skill_heatmap, grid),
            "Heatmaps of the mean skills gap by role and skill, before and after",
        ),
        "closure": closure_table,
        "hidden": grid.hidden,
    }


def _effect_rows(effects: EffectSet, confidence: int) -> pd.DataFrame:
    """The effects table: a row per outcome and method, formatted for reading."""
    estimates = effects.estimates
    return pd.DataFrame(
        {
            "Outcome": [OUTCOME_LABELS.get(e.outcome, e.outcome) for e in estimates],
            "Method": [plots.METHOD_LABELS.get(e.method, e.method) for e in estimates],
            "Estimand": [e.estimand for e in estimates],
            "Estimate": [format_effect(e.estimate, e.outcome) for e in estimates],
            f"{confidence}% interval": [_ci(e) for e in estimates],
            "p-value": [format_p(e.p_value) for e in estimates],
            "Learners (coached / not)": [f"{e.n_treated:,} / {e.n_control:,}" for e in estimates],
        }
    )


def _by_outcome(effects: EffectSet, diag: Diagnostics, figures: _Figures) -> list[dict[str, Any]]:
    """Per outcome: effects by number of sessions and by subgroup, and of coaching managers."""
    items = []
    for outcome in effects.samples:
        item = {"label": OUTCOME_LABELS.get(outcome, outcome)}
        if outcome in diag.dose:
            item["dose"] = figures(
                partial(plots.dose_response_plot, diag.dose[outcome]),
                f"Effect by number of coaching sessions on {outcome}",
            )
            item["dose_reading"] = diag.dose[outcome].reading()
        item["subgroups"] = figures(
            partial(plots.subgroup_plot, diag.subgroups[outcome]),
            f"Effects of coaching by subgroup on {outcome}",
        )
        item["subgroup_reading"] = diag.subgroups[outcome].reading()
        if outcome in diag.manager:
            item["manager_reading"] = diag.manager[outcome].reading()
        if outcome in diag.cohorts:
            item["cohorts"] = figures(
                partial(plots.pooled_forest_plot, diag.cohorts[outcome]),
                f"Forest plot of the effect on {outcome} in each cohort and pooled across cohorts",
            )
            item["cohorts_reading"] = diag.cohorts[outcome].reading()
        items.append(item)
    return items


def _effects_section(
    effects: EffectSet,
    diag: Diagnostics,
    headlines: list[EffectEstimate],
    table: _Tables,
    figures: _Figures,
    *,
    confidence: int,
) -> dict[str, Any]:
    """Coaching effects: forest plot and table of every method, then each outcome in detail."""
    rows = _effect_rows(effects, confidence)
    per_outcome = _by_outcome(effects, diag, figures)
    agree = all(
        _verdict(e) == _verdict(h)
        for h in headlines
        for e in effects.estimates
        if e.outcome == h.outcome and e.method != "difference"
    )
    title = (
        "Adjusted estimates agree across methods"
        if agree
        else "Estimates differ by method: read with care"
    )
    return {
        "forest": figures(
            partial(plots.forest_plot, effects.to_frame(), title=title),
            "Forest plot of effect estimates by outcome and method",
        ),
        "table": table(
            rows, numeric=("Estimate", rows.columns[4], "p-value", "Learners (coached / not)")
        ),
        "notes": sorted({n for e in effects.estimates for n in e.notes}),
        "per_outcome": per_outcome,
    }


def _balance_figure(diag: Diagnostics) -> Figure:
    """The love plot and the propensity scores' overlap, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 0.32 * len(diag.balance.wide()) + 2.6))
    plots.love_plot(diag.balance, ax=axes[0], title="Balance before and after weighting")
    plots.propensity_plot(
        diag.propensity, diag.treated, ax=axes[1], title="Overlap of the chance of being coached"
    )
    return plots.lay_out(fig)


def _how_sure_section(
    params: Params,
    diag: Diagnostics,
    table: _Tables,
    figures: _Figures,
    design: DesignResult | None = None,
) -> dict[str, Any]:
    """How sure we are: balance and overlap, sensitivity (E-values), limitations."""
    evalues = diag.evalues
    evalue_rows = pd.DataFrame(
        {
            "Outcome": [OUTCOME_LABELS.get(o, o) for o in evalues],
            "E-value (estimate)": [f"{ev.point:.2f}" for ev in evalues.values()],
            "E-value (interval limit)": [
                f"{ev.ci_limit:.2f}" if ev.ci_limit is not None else "-" for ev in evalues.values()
            ],
        }
    )
    return {
        "figure": figures(
            partial(_balance_figure, diag),
            "Love plot of standardised differences and distributions of the propensity score",
        ),
        "balance_reading": diag.balance.reading(),
        "balance_notes": diag.balance.notes(),
        "overlap_reading": diag.overlap.reading(),
        "evalues": table(evalue_rows, numeric=("E-value (estimate)", "E-value (interval limit)")),
        "evalue_readings": [ev.reading() for ev in evalues.values()],
        "limitations": _limitations(params, diag)
        + [
            f"Not estimated: {what}: {why}."
            for what, why in (design.skipped if design else {}).items()
        ],
    }


def _learners_section(outcomes: LearnerOutcomes, params: Params, table: _Tables) -> dict[str, Any]:
    """Those who learn and those who don't: who follows through, and success cases (no effects)."""
    contrast = descriptives.learners_who_follow_through(
        outcomes,
        treatment=params.treatment,
        threshold=params.followed_through_share,
        min_group_size=params.min_group_size,
    )
    frame, cases = contrast.frame, contrast.success_cases
    intervals = zip(frame["ci_low"], frame["ci_high"], strict=True)
    return {
        "threshold": f"{100 * params.followed_through_share:.0f}%",
        "reading": contrast.reading(),
        "table": table(
            pd.DataFrame(
                {
                    "Learners who": frame["group"],
                    "Learners": [_count(v) for v in frame["learners"]],
                    "Skills gap closed (points)": [_num(v) for v in frame["gap_closed_points"]],
                    "95% interval": [
                        "suppressed" if pd.isna(lo) else f"{lo:.2f} to {hi:.2f}"
                        for lo, hi in intervals
                    ],
                }
            ),
            numeric=("Learners", "Skills gap closed (points)", "95% interval"),
            counts=("Learners",),
        ),
        "cases": table(
            pd.DataFrame(
                {
                    "Group": cases["group"],
                    "Learners": [_count(v) for v in cases["learners"]],
                    "Clear successes": [_pct(v) for v in cases["clear_success"]],
                    "Clear non-successes": [_pct(v) for v in cases["clear_non_success"]],
                }
            ),
            numeric=("Learners", "Clear successes", "Clear non-successes"),
            counts=("Learners",),
        ),
    }


def _data_quality_section(
    outcomes: LearnerOutcomes, effects: EffectSet, table: _Tables, *, suppressed: int
) -> dict[str, Any]:
    """Data quality: rows used of each table, learners of each outcome, cells suppressed in all."""
    quality = pd.DataFrame(
        [
            {
                "Table": t,
                "Rows read": f"{q.rows_read:,}",
                "Rows used": f"{q.rows_used:,}",
                "Excluded, with reason": _excluded(sorted(q.excluded.items())),
                "Values changed while reading": _excluded(sorted(q.notes.items())),
            }
            for t, q in outcomes.quality.items()
        ]
    )
    samples = pd.DataFrame(
        [
            {
                "Outcome": OUTCOME_LABELS.get(o, o),
                "Learners available": f"{s.n_available:,}",
                "Used": f"{len(s.data):,}",
                "Excluded, with reason": _excluded(s.excluded.items()),
            }
            for o, s in effects.samples.items()
        ]
    )
    return {
        "quality": table(quality, numeric=("Rows read", "Rows used")),
        "samples": table(samples, numeric=("Learners available", "Used")),
        "suppressed_cells": suppressed,
    }


def _appendix_section(params: Params, table: _Tables) -> dict[str, Any]:
    """Appendix: definitions (with their LTEM tiers) and the parameters of the run."""
    parameters = [
        {"Parameter": key, "Value": str(value)}
        for key, value in sorted(params.notebook_parameters().items())
        if key not in ("learners", "action_items", "skill_assessments")
    ]
    return {"ltem": LTEM, "parameters": table(pd.DataFrame(parameters))}


def _provenance_section(programme: Programme, table: _Tables, run_id: str) -> dict[str, Any]:
    """Provenance: the run, its input files (with their SHA-256) and package versions."""
    inputs = [
        {
            "Input": s.table,
            "Source": Path(s.path).name if s.kind == "file" else s.path,
            "Rows": f"{s.rows_read:,}",
            "SHA-256": s.sha256 if s.kind == "file" else f"rows: {s.fingerprint}",
        }
        for s in programme.sources.values()
    ]
    return {
        "inputs": table(pd.DataFrame(inputs), numeric=("Rows",)),
        "versions": package_versions(),
        "run_id": run_id,
    }


def _rollout_skills(design: DesignResult) -> dict[str, Any] | None:
    """The skills gap over more than two assessment waves, in words (None when not estimated)."""
    if design.skills is None:
        return None
    simple = next(e for e in design.estimates if e.outcome == "skills_gap")
    return {
        "reading": simple.reading(),
        "waves": design.skills_panel.n_periods if design.skills_panel else None,
        "notes": list(design.skills.notes),
    }


def _design_section(
    design: DesignResult | None, table: _Tables, figures: _Figures
) -> dict[str, Any]:
    """The design in one sentence; a roll-out's event study; the time to follow-through; a
    randomised pilot's balance check."""
    out: dict[str, Any] = {
        "design_reading": design.reading() if design else "",
        "rollout": None,
        "timing": None,
        "randomisation": None,
    }
    if design is None:
        return out
    if design.staggered is not None:
        dynamic = design.aggregates["dynamic"]
        out["rollout"] = {
            "reading": design.aggregates["simple"].reading(),
            "pre_trend": design.staggered.pre_trend.reading()
            if design.staggered.pre_trend
            else "No period before coaching could be compared.",
            "comparison": "teams never coached"
            if design.staggered.control_group == "never_treated"
            else "teams not yet coached (and teams never coached)",
            "figure": figures(
                partial(plots.event_study_plot, dynamic),
                "Chart of the effect of coaching on follow-through by periods since a team started coaching, with intervals and a simultaneous band",
            ),
            "notes": list(design.staggered.notes),
            "skills": _rollout_skills(design),
        }
    if design.hazard is not None:
        out["timing"] = {
            "reading": design.hazard.reading(),
            "notes": list(design.hazard.notes),
            "figure": figures(
                partial(plots.adjusted_completion_plot, design.completion),
                "Step chart of the share of action items completed by days since they were set, coached and not, weighted for the recorded characteristics",
            ),
        }
    if design.balance is not None:
        out["randomisation"] = {
            "reading": design.balance.reading(),
            "table": table(design.balance.wide()),
        }
    return out


@_drawing()
def build_report(
    *,
    params: Params,
    programme: Programme,
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    diagnostics: Diagnostics,
    design: DesignResult | None = None,
    value: ValueForMoney | None = None,
    changes: SinceLastRun | None = None,
    run_id: str = "interactive",
) -> Report:
    """Assemble the leadership report from an evaluation's results.

    Only aggregates reach the template: no learner-level row or identifier, and every breakdown
    cell smaller than ``params.min_group_size`` is suppressed (with complementary cells).
    """
    plots.set_style()  # before the report's own axes are made, whatever was set before
    table = _Tables(params.min_group_size)
    figures = _Figures()
    headlines = headline_estimates(params, effects, design)
    confidence = headlines[0].confidence if headlines else 95
    curves, grid = calls_side_by_side(  # the two summaries of millions of rows
        [
            lambda: descriptives.completion_curves(programme, outcomes, treatment=params.treatment),
            lambda: descriptives.skill_gaps_by_role(
                programme, min_group_size=params.min_group_size
            ),
        ],
        rows=len(outcomes.data),
    )
    programme_part, programme_hidden = _programme_section(outcomes.data, params, table, figures)
    follow, follow_hidden = _follow_through_section(outcomes, curves, params, table, figures)
    skills = _skills_section(outcomes, grid, params, table, figures)
    context = {
        **_header_section(params, outcomes),
        **_summary_section(params, headlines, effects, diagnostics, confidence),
        **programme_part,
        "follow": follow,
        "skills": skills,
        "effects": _effects_section(
            effects, diagnostics, headlines, table, figures, confidence=confidence
        ),
        "sure": _how_sure_section(params, diagnostics, table, figures, design),
        "learn": _learners_section(outcomes, params, table),
        **_design_section(design, table, figures),
        "value": {"readings": value.readings()} if value is not None else None,
        "since_last_run": changes.reading() if changes is not None else "",
        **_data_quality_section(
            outcomes,
            effects,
            table,
            suppressed=programme_hidden + follow_hidden + skills["hidden"],
        ),
        "min_group_size": params.min_group_size,
        **_appendix_section(params, table),
        **_provenance_section(programme, table, run_id),
    }
    figures.draw()
    return Report(context)
