"""Figures for notebooks and the report. Each takes results (never raw data to re-estimate from),
accepts ``ax=None`` where it draws one panel, and returns the matplotlib figure.

A figure made here is laid out once, when it is made (`lay_out`: the tight layout computed and
applied as subplot parameters), and carries no layout engine: ``savefig`` (or a notebook) then
draws it once. With ``bbox_inches="tight"`` or any layout engine on the figure (including the
placeholder that ``Figure.tight_layout`` leaves behind), ``savefig`` draws every figure twice.
A panel drawn on a caller's axes leaves the layout of the caller's figure to the caller (call
`lay_out` once all panels are drawn). Bars and heatmaps are drawn with matplotlib itself:
seaborn's heatmap draws the whole figure once more to check its tick labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.layout_engine import TightLayoutEngine

from lcstats.core.options import OUTCOME_LABELS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lcstats.estimation.heterogeneity import DoseResponse, SubgroupEffects

PALETTE = sns.color_palette("colorblind")
METHOD_LABELS = {
    "difference": "Raw difference (unadjusted)",
    "regression": "Regression adjustment",
    "ipw": "Inverse probability weighting",
    "aipw": "Doubly robust (AIPW)",
}
SCALE = {
    "follow_through": (100.0, "percentage points"),
    "skills_gap": (1.0, "points on the skill scale"),
}


BAR_SATURATION = 0.75  # seaborn's bar colours: the palette slightly desaturated


def set_style() -> None:
    """The house style (seaborn's whitegrid theme, colour-blind palette), set globally.

    Every figure function sets it; set it before making axes of your own to pass as ``ax``.
    """
    # text.parse_math off: labels come from the data, and '$' must print as a dollar sign
    sns.set_theme(
        style="whitegrid", context="notebook", palette=PALETTE, rc={"text.parse_math": False}
    )


def _title(ax: Axes, text: str, **kwargs) -> None:
    """``ax.set_title`` at a fixed height (just above the axes, as with nothing on top of them):
    left to place it, matplotlib measures the whole y axis once per title in every layout and
    draw, a tenth of the figure's time. No figure here has tick labels above its axes."""
    ax.set_title(text, y=1.0, **kwargs)


def lay_out(fig: Figure, *, pad: float = 1.08) -> Figure:
    """Fit the figure's axes, labels, titles and legends inside it, once, and return it.

    The same layout as ``Figure.tight_layout`` (in figure fractions, so it holds at any dpi), but
    the figure is left without a layout engine, so that saving it draws it only once. (``rect=None``:
    the engine's default rectangle, the whole figure, makes it measure everything twice.)

    A tight layout counts only the height of titles and the x axis label, not their width, and
    nothing trims the saved image to its content any more (``bbox_inches="tight"``): a title or
    label that would run off the figure is wrapped onto more lines and the layout done again.
    """
    engine = TightLayoutEngine(pad=pad, rect=None)
    engine.execute(fig)
    for _ in range(3):
        if not _wrap_overflowing_text(fig):
            break
        engine.execute(fig)
    return fig


def _fill(text: str, width: int) -> str:
    """`textwrap.fill` to at most `width` characters a line, in as few lines as that takes but
    with their lengths balanced (no last line of one word).

    >>> print(_fill("Coached learners did 62% of their action items on time, others 44%", 60))
    Coached learners did 62% of their
    action items on time, others 44%
    """
    import math
    import textwrap

    n_lines = len(textwrap.wrap(text, width)) or 1
    for chars in range(min(width, math.ceil(len(text) / n_lines)), width + 1):
        lines = textwrap.wrap(text, chars)
        if len(lines) <= n_lines:
            return "\n".join(lines)
    return textwrap.fill(text, width)


def _wrap_overflowing_text(fig: Figure, margin: float = 4.0) -> bool:
    """Wrap titles, axis labels and figure texts that run past an edge of the figure (`margin`
    pixels inside it) along their length; True if any text changed."""
    from matplotlib.text import Text

    texts = list(fig.texts)
    for ax in fig.axes:
        annotations = set(ax.texts)
        texts += [c for c in ax.get_children() if isinstance(c, Text) and c not in annotations]
        texts += [ax.xaxis.label, ax.yaxis.label]
    changed = False
    for text in texts:
        content = text.get_text()
        rotation = text.get_rotation() % 360
        if not content or not text.get_visible() or rotation not in (0, 90):
            continue
        box = text.get_window_extent()
        if rotation == 0:  # along x, aligned as set
            low, high, size, align = box.x0, box.x1, fig.bbox.width, text.get_ha()
        else:  # an upright label along y, centred
            low, high, size, align = box.y0, box.y1, fig.bbox.height, "center"
        if low >= 0 and high <= size:
            continue
        if align == "left":
            room = size - margin - low
        elif align == "right":
            room = high - margin
        else:
            centre = (low + high) / 2
            room = 2 * min(centre - margin, size - margin - centre)
        lines = content.splitlines()
        chars = int(max(len(line) for line in lines) * room / (high - low))
        if chars < 12:  # no room to speak of: leave it rather than one word a line
            continue
        wrapped = "\n".join(_fill(line, chars) for line in lines)
        if wrapped != content:
            text.set_text(wrapped)
            changed = True
    return changed


def _interval_bars(
    ax: Axes,
    est: pd.DataFrame,
    pos,
    factor: float,
    colour,
    *,
    horizontal: bool,
    small: bool = False,
) -> None:
    """Estimates with their confidence intervals (columns estimate, ci_low, ci_high) as points
    with error bars at positions `pos`, in one call; `factor` converts to the display unit."""
    values = est["estimate"] * factor
    errors = [
        (est["estimate"] - est["ci_low"]) * factor,
        (est["ci_high"] - est["estimate"]) * factor,
    ]
    xy, err = ((values, pos), "xerr") if horizontal else ((pos, values), "yerr")
    ax.errorbar(
        *xy,
        **{err: errors},
        fmt="o",
        color=colour,
        capsize=3 if small else 4,
        markersize=6 if small else 7,
    )


def _finish(fig: Figure, owned: bool) -> Figure:
    """Lay out a figure made here; a caller's figure is the caller's to lay out."""
    return lay_out(fig) if owned else fig


def _grouped_bars(
    ax: Axes,
    frame: pd.DataFrame,
    *,
    category: str,
    value: str,
    hue: str,
    colours: Sequence,
    horizontal: bool = False,
    width: float = 0.8,
) -> None:
    """Side-by-side bars of `value` by `category`, one bar per `hue` level (both in order of
    appearance, as seaborn orders them); missing values are gaps. Each level is one container,
    labelled for the legend."""
    categories = list(dict.fromkeys(frame[category]))
    levels = list(dict.fromkeys(frame[hue]))
    where = {c: i for i, c in enumerate(categories)}
    step = width / max(len(levels), 1)
    for j, (level, colour) in enumerate(zip(levels, colours, strict=False)):
        part = frame[(frame[hue] == level) & frame[value].notna()]
        at = (
            np.array([where[c] for c in part[category]], dtype=float) - width / 2 + step * (j + 0.5)
        )
        bar = ax.barh if horizontal else ax.bar
        bar(
            at,
            part[value].astype(float).to_numpy(),
            step,
            color=sns.desaturate(colour, BAR_SATURATION),
            label=str(level),
        )
    ticks = range(len(categories))
    labels = [_fill(str(c), 24) if horizontal else str(c) for c in categories]
    if horizontal:
        ax.set_yticks(ticks, labels)
        ax.set_ylim(len(categories) - 0.5, -0.5)  # first category at the top
        ax.yaxis.grid(False)
    else:
        ax.set_xticks(ticks, labels)
        ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.xaxis.grid(False)


LONG_LABEL = 12  # characters: category labels longer than this go on a vertical axis


def sideways(categories: Sequence) -> bool:
    """True when category labels would crowd a horizontal axis (long names, or many of them):
    the bars are then drawn across, with the labels one under the other."""
    labels = [str(c) for c in dict.fromkeys(categories)]
    return len(labels) > 6 or any(len(label) > LONG_LABEL for label in labels)


def bars_height(categories: Sequence) -> float:
    """Inches a bar chart of these categories needs: a fixed height for bars side by side, a
    row for each category (and each line of a wrapped name) for bars across."""
    labels = [str(c) for c in dict.fromkeys(categories)]
    if not sideways(labels):
        return 2.6
    lines = sum(_fill(label, 24).count("\n") + 1 for label in labels)
    return 1.0 + 0.32 * max(lines, len(labels)) + 0.12 * len(labels)


def legend_outside(ax: Axes) -> None:
    """The legend beside the plot, where it cannot cover data."""
    ax.legend(
        title=None, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
    )


def forest_plot(estimates: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Point estimates and intervals by outcome (panel) and method (row).

    Parameters
    ----------
    estimates : DataFrame
        Tidy frame of `EffectEstimate.to_frame()` rows (for example `EffectSet.to_frame()`).
    title : str, optional
        Figure title; should state the finding.
    """
    set_style()
    outcomes = list(dict.fromkeys(estimates["outcome"]))
    methods = {o: tuple(estimates.loc[estimates["outcome"] == o, "method"]) for o in outcomes}
    same_rows = len(set(methods.values())) == 1  # then the method labels are shown once, left
    fig, axes = plt.subplots(
        1,
        len(outcomes),
        figsize=(5.2 * len(outcomes), 0.6 * 4 + 1.6),
        squeeze=False,
        sharey=same_rows,
    )
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        rows = estimates[estimates["outcome"] == outcome].reset_index(drop=True)
        factor, unit = SCALE.get(outcome, (1.0, rows["units"].iloc[0]))
        ypos = np.arange(len(rows))[::-1]
        raw = (rows["method"] == "difference").to_numpy()
        for mask, colour in ((raw, PALETTE[7]), (~raw, PALETTE[0])):  # one call per colour
            if mask.any():
                part = rows[mask]
                _interval_bars(ax, part, ypos[mask], factor, colour, horizontal=True)
        ax.axvline(0, color="0.3", lw=1, ls="--")
        ax.set_yticks(list(ypos), [METHOD_LABELS.get(m, m) for m in rows["method"]])
        ax.set_ylim(-0.5, len(rows) - 0.5)
        ax.set_xlabel(f"Effect of coaching ({unit})")
        # wrapped so that the titles of neighbouring panels never run into each other
        _title(ax, _fill(OUTCOME_LABELS.get(outcome, outcome), 45), fontsize=11)
    if title:
        fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    return lay_out(fig)


def pooled_forest_plot(pooled, *, ax: Axes | None = None) -> Figure:
    """A forest plot of pooled evidence: each study's effect and interval (markers sized by
    weight), the pooled effect (a diamond) and the prediction interval for a new study."""
    set_style()
    rows = pooled.forest_frame()
    owned = ax is None
    fig, ax = _panel(ax, (8.0, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows.itertuples(index=False), strict=True):
        if row.kind == "pooled":
            mid = row.estimate
            ax.fill(
                [row.ci_low, mid, row.ci_high, mid], [yi, yi + 0.3, yi, yi - 0.3], color=PALETTE[0]
            )
        elif row.kind == "prediction":
            ax.plot(
                [row.ci_low, row.ci_high], [yi, yi], color=PALETTE[1], lw=3, solid_capstyle="butt"
            )
        else:
            ax.plot([row.ci_low, row.ci_high], [yi, yi], color="0.35", lw=1.2)
            ax.plot(row.estimate, yi, "s", color="0.2", markersize=4 + 10 * float(row.weight or 0))
    ax.axvline(0, color="0.3", lw=1, ls="--")
    ax.set_yticks(list(y), [_fill(str(label), 38) for label in rows["label"]])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"Effect of coaching ({rows['unit'].iloc[0]})")
    return _finish(fig, owned)


def trend_plot(trend: pd.DataFrame, *, outcome: str, ax: Axes | None = None) -> Figure:
    """A small chart of how an evaluation's headline effect moved over its successful runs
    (``trend`` has ``started``, ``estimate``, ``ci_low``, ``ci_high``)."""
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (3.6, 1.6))
    factor, unit = SCALE.get(outcome, (1.0, ""))
    x = np.arange(len(trend))
    ax.fill_between(
        x, trend["ci_low"] * factor, trend["ci_high"] * factor, color=PALETTE[0], alpha=0.2
    )
    ax.plot(x, trend["estimate"] * factor, "o-", color=PALETTE[0], markersize=3)
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(
        list(x),
        [str(s)[5:16].replace("T", " ") for s in trend["started"]],
        rotation=30,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel(unit.split()[0] if unit else "", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    return _finish(fig, owned)


def counts_bar(counts: pd.DataFrame, *, by: str, title: str | None = None, ax=None) -> Figure:
    """Bar chart of coached and not-coached learner counts by a group (counts already suppressed).

    `counts` has the group in column `by` and columns ``coached`` and ``not coached``; hidden
    (suppressed) cells are missing and drawn as gaps.
    """
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.2))
    long = counts.melt(id_vars=by, var_name="group", value_name="learners")
    across = sideways(long[by])
    _grouped_bars(
        ax, long, category=by, value="learners", hue="group", colours=PALETTE[:2], horizontal=across
    )
    names = ("Learners", by.replace("_", " ").capitalize())
    ax.set_xlabel(names[0] if across else names[1])
    ax.set_ylabel(names[1] if across else names[0])
    if title:
        _title(ax, _fill(title, 55), fontsize=11, loc="left")
    legend_outside(ax)
    return _finish(fig, owned)


def close(figures: Sequence[Figure]) -> None:
    """Release figures once they are embedded."""
    for fig in figures:
        plt.close(fig)


# Balance and overlap diagnostics (results of lcstats.estimation.balance). Imports are local so that this
# appended section leaves the module's import block untouched.


def love_plot(balance, *, threshold: float = 0.1, title: str | None = None, ax=None) -> Figure:
    """Love plot: absolute standardised mean difference of each covariate before and after weighting.

    Parameters
    ----------
    balance : lcstats.estimation.balance.Balance
        Result of `lcstats.estimation.balance.balance_table` or `compute_balance` (not recomputed here).
    threshold : float
        |SMD| drawn as a dashed vertical line (0.1 is the usual threshold for balance).
    title : str, optional
        Title stating the finding; by default ``balance.reading(threshold)``.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from lcstats.estimation.balance import compute_balance
    >>> df = pd.DataFrame({"t": [1, 1, 0, 0], "x": [1.0, 3.0, 0.0, 2.0]})
    >>> bal = compute_balance(df, treatment="t", covariates=["x"], weights=[1, 1, 3, 1])
    >>> fig = love_plot(bal)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['x']
    >>> close([fig])
    """
    import textwrap

    frame = balance.frame
    before = frame[~frame["adjusted"]].reset_index(drop=True)
    after = frame[frame["adjusted"]].reset_index(drop=True)
    labels = [
        cov if level is None else f"{cov}: {level}"
        for cov, level in zip(before["covariate"], before["level"], strict=True)
    ]
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 0.32 * len(labels) + 1.9))
    ypos = list(range(len(labels)))[::-1]  # first covariate at the top
    ax.scatter(
        before["smd"].abs(),
        ypos,
        marker="o",
        facecolors="none",
        edgecolors=PALETTE[7],
        linewidths=1.5,
        s=45,
        label="Before weighting",
        zorder=3,
    )
    if not after.empty:
        ax.scatter(
            after["smd"].abs(),
            ypos,
            marker="o",
            color=PALETTE[0],
            s=45,
            label="After weighting",
            zorder=4,
        )
    ax.axvline(threshold, color="0.3", lw=1, ls="--", label=f"Threshold ({threshold:g} SD)")
    ax.set_yticks(ypos, labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlim(left=0)
    ax.set_xlabel("Absolute standardised mean difference (SD)")
    legend_outside(ax)
    text = title if title is not None else balance.reading(threshold)
    _title(ax, textwrap.fill(text, 60), fontsize=10, loc="left")
    return _finish(fig, owned)


def propensity_plot(
    propensity,
    treated,
    *,
    bounds: tuple[float, float] | None = None,
    title: str | None = None,
    ax=None,
) -> Figure:
    """Overlapping distributions of the estimated propensity score, coached vs not coached.

    Parameters
    ----------
    propensity : array-like
        Estimated propensity scores (computed elsewhere, e.g. `lcstats.estimation.balance.propensity_scores`).
    treated : array-like
        0/1 treatment indicator of the same length.
    bounds : (float, float), optional
        Trimming bounds to mark with dashed lines.
    title : str, optional
        Title stating the finding (for example `Overlap.reading()`).
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made when None.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = propensity_plot([0.2, 0.4, 0.6, 0.3, 0.5, 0.7], [1, 1, 1, 0, 0, 0])
    >>> len(fig.axes[0].patches)
    2
    >>> close([fig])
    """
    import textwrap

    e = np.asarray(propensity, dtype=float).ravel()
    t = np.asarray(treated, dtype=float).ravel()
    if e.shape != t.shape:
        raise ValueError(f"propensity has {e.size} values but treated has {t.size}")
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.4))
    bins = np.linspace(0, 1, 41)
    for group, label, colour in ((0, "Not coached", PALETTE[7]), (1, "Coached", PALETTE[0])):
        ax.hist(
            e[t == group],
            bins=bins,
            density=True,
            histtype="stepfilled",
            alpha=0.45,
            color=colour,
            edgecolor=colour,
            linewidth=1.2,
            label=label,
        )
    if bounds is not None:
        for b in bounds:
            ax.axvline(b, color="0.3", lw=1, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("Estimated chance of being coached")
    ax.set_ylabel("Density")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        _title(ax, textwrap.fill(title, 60), fontsize=10, loc="left")
    return _finish(fig, owned)


# ----------------------------------------------------------------------------------------------
# Heterogeneity figures (lcstats.estimation.heterogeneity results): dose-response and subgroup forest plots.


def _panel(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        return plt.subplots(figsize=size)
    return ax.figure, ax


def dose_response_plot(dose: DoseResponse, *, ax: Axes | None = None) -> Figure:
    """Effect of each band of coaching sessions against the uncoached, with its interval.

    Parameters
    ----------
    dose : DoseResponse
        The result of `lcstats.estimation.heterogeneity.dose_response` (nothing is re-estimated).
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    Figure
    """
    set_style()
    frame = dose.to_frame()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.6))
    factor, unit = SCALE.get(dose.outcome, (1.0, "outcome units"))
    labels, estimated = [], []
    for x, (_, r) in enumerate(frame.iterrows()):
        n = int(r["n_learners"])
        shown_n = f"n = {n:,}" if n >= dose.min_group_size else f"n < {dose.min_group_size}"
        labels.append(f"{r['band']}\n({shown_n})")
        if r["sessions_min"] == 0 and r["sessions_max"] == 0:
            ax.plot(x, 0, "o", mfc="white", mec="0.3", ms=8, zorder=3)
            ax.annotate(
                "reference",
                (x, 0),
                xytext=(0, 9),
                textcoords="offset points",
                ha="center",
                fontsize=9,
                color="0.3",
            )
        elif pd.isna(r["estimate"]):
            ax.annotate(
                "not estimated",
                (x, 0),
                xytext=(0, 9),
                textcoords="offset points",
                ha="center",
                fontsize=9,
                color="0.4",
            )
            ax.plot(x, 0, "x", color="0.4", ms=7)
        else:
            estimated.append(x)
    if estimated:  # one call for all estimated bands
        est = frame.iloc[estimated]
        _interval_bars(ax, est, estimated, factor, PALETTE[0], horizontal=False)
    ax.axhline(0, color="0.3", lw=1, ls="--")
    ax.set_xticks(range(len(frame)), labels)
    ax.set_xlim(-0.5, len(frame) - 0.5)
    ax.set_xlabel(f"Coaching sessions ({dose.sessions})")
    confidence = round(100 * (1 - dose.alpha))
    ax.set_ylabel(f"Effect vs uncoached\n{_fill(f'({unit}, {confidence}% interval)', 34)}")
    _title(ax, OUTCOME_LABELS.get(dose.outcome, dose.outcome), fontsize=11, loc="left")
    return _finish(fig, owned)


def subgroup_plot(subgroups: SubgroupEffects, *, ax: Axes | None = None) -> Figure:
    """Forest plot of subgroup effects: one row per level, grouped by subgrouping variable.

    Each variable's heading shows its heterogeneity test; levels that were not estimated are
    listed with "not estimated". Intervals are unadjusted; see ``p_adjusted`` in the table.

    Parameters
    ----------
    subgroups : SubgroupEffects
        The result of `lcstats.estimation.heterogeneity.subgroup_effects` (nothing is re-estimated).
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    Figure
    """
    set_style()
    frame = subgroups.to_frame()
    tests = subgroups.heterogeneity_frame().set_index("subgroup_variable")
    variables = list(dict.fromkeys(frame["subgroup_variable"]))
    n_rows = len(frame) + len(variables)
    owned = ax is None
    fig, ax = _panel(ax, (7.0, 0.34 * n_rows + 1.4))
    factor, unit = SCALE.get(subgroups.outcome, (1.0, "outcome units"))
    ticks, tick_labels, headings = [], [], []
    for i, var in enumerate(variables):
        headings.append(len(tick_labels))
        ys, labels = _subgroup_rows(
            ax,
            frame[frame["subgroup_variable"] == var],
            top=n_rows - 1 - len(ticks),
            p_value=tests.loc[var, "p_value"],
            factor=factor,
            colour=PALETTE[i % len(PALETTE)],
        )
        ticks += ys
        tick_labels += labels
    ax.axvline(0, color="0.3", lw=1, ls="--")
    ax.set_yticks(ticks, tick_labels)
    for k in headings:
        ax.get_yticklabels()[k].set_fontweight("bold")
    ax.set_ylim(-0.7, n_rows - 0.3)
    treat = {"coached": "coaching", "manager_coached": "coaching the manager"}.get(
        subgroups.treatment, subgroups.treatment
    )
    confidence = round(100 * (1 - subgroups.alpha))
    ax.set_xlabel(f"Effect of {treat} ({unit})")
    _title(
        ax,
        f"{OUTCOME_LABELS.get(subgroups.outcome, subgroups.outcome)}\n"
        f"{confidence}% intervals, not adjusted for multiple comparisons",
        fontsize=10,
        loc="left",
    )
    return _finish(fig, owned)


def _subgroup_rows(
    ax: Axes,
    levels: pd.DataFrame,
    *,
    top: int,
    p_value: float,
    factor: float,
    colour,
) -> tuple[list[int], list[str]]:
    """One variable's rows from height `top` down (heading and test, levels); heights, labels."""
    from lcstats.estimation.effects import format_p
    from lcstats.estimation.heterogeneity import LEVEL_NAMES

    var = levels["subgroup_variable"].iloc[0]
    het = (
        f"differences: p {'' if p_value < 0.001 else '= '}{format_p(p_value)}"
        if pd.notna(p_value)
        else "differences not tested"
    )
    ax.text(
        0.99,
        top,
        het,
        transform=ax.get_yaxis_transform(),
        ha="right",
        va="center",
        fontsize=9,
        color="0.3",
    )
    ys = list(range(top - 1, top - 1 - len(levels), -1))
    estimated = levels["estimate"].notna().tolist()
    for y in (y for y, ok in zip(ys, estimated, strict=True) if not ok):
        ax.plot(0, y, "x", color="0.4", ms=6)
        ax.annotate(
            "not estimated",
            (0, y),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color="0.4",
        )
    if any(estimated):  # one call per subgrouping variable
        at = [y for y, ok in zip(ys, estimated, strict=True) if ok]
        _interval_bars(ax, levels[estimated], at, factor, colour, horizontal=True, small=True)
    labels = ["   " + LEVEL_NAMES.get((var, v), v) for v in levels["subgroup_level"]]
    return [top, *ys], [var.replace("_", " ").capitalize(), *labels]


def funnel_plot(funnel, *, title: str | None = None, ax=None) -> Figure:
    """Share of committed action items done, and done on time, by coaching group."""
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.0))
    frame = funnel.frame.assign(percent=100 * funnel.frame["share"])
    _grouped_bars(
        ax,
        frame,
        category="stage",
        value="percent",
        hue="group",
        colours=PALETTE[:2],
        horizontal=True,
    )
    for container in ax.containers:
        ax.bar_label(container, fmt="%.0f%%", padding=3, fontsize=9)
    ax.set_xlim(0, 112)
    ax.set_xlabel("Share of committed action items (%)")
    ax.set_ylabel("")
    legend_outside(ax)
    if title:
        _title(ax, _fill(title, 55), fontsize=11, loc="left")
    return _finish(fig, owned)


def completion_plot(curves, *, title: str | None = None, ax=None) -> Figure:
    """Kaplan-Meier curves: share of action items completed by days since they were set."""
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.2))
    for colour, (group, part) in zip(
        PALETTE, curves.frame.groupby("group", sort=True), strict=False
    ):
        ax.step(
            part["days"], 100 * part["share_completed"], where="post", color=colour, label=group
        )
    ax.set_xlabel("Days since the action item was set")
    ax.set_ylabel("Items completed (%)")
    ax.set_ylim(0, 100)
    legend_outside(ax)
    if title:
        _title(ax, _fill(title, 55), fontsize=11, loc="left")
    return _finish(fig, owned)


def event_study_plot(dynamic, *, ax: Axes | None = None) -> Figure:
    """Effect of coaching by periods since it started (an event study), with each period's
    interval (bars) and the simultaneous band over all periods (shaded); before 0 the two groups
    should move alike."""
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (7.5, 3.4))
    factor, unit = SCALE.get(dynamic.outcome, (1.0, ""))
    levels = dynamic.by_level.sort_values("level")
    ax.fill_between(
        levels["level"],
        levels["band_low"] * factor,
        levels["band_high"] * factor,
        color=PALETTE[0],
        alpha=0.15,
        step="mid",
        label="simultaneous band",
    )
    pre = levels["level"] < 0
    for part, colour, label in (
        (levels[pre], PALETTE[7], "before coaching"),
        (levels[~pre], PALETTE[0], "after coaching started"),
    ):
        if len(part):
            _interval_bars(ax, part, part["level"], factor, colour, horizontal=False, small=True)
            ax.plot([], [], "o", color=colour, label=label)
    ax.axhline(0, color="#555", lw=0.8)
    ax.axvline(-0.5, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("Periods since the team started coaching")
    ax.set_ylabel(f"Effect ({unit})")
    legend_outside(ax)
    return _finish(fig, owned)


def adjusted_completion_plot(curves, *, ax: Axes | None = None) -> Figure:
    """Share of action items completed by days since they were set, coached and not, weighted so
    that the two groups are alike in their recorded characteristics."""
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.2))
    names = {1: "Coached", 0: "Not coached"}
    for colour, group in zip(PALETTE, (1, 0), strict=False):
        part = curves.curves[curves.curves["group"] == group]
        ax.step(
            part["days"], 100 * part["completed"], where="post", color=colour, label=names[group]
        )
    ax.set_xlabel("Days since the action item was set")
    ax.set_ylabel("Items completed (%)")
    ax.set_ylim(0, 100)
    legend_outside(ax)
    return _finish(fig, owned)


def group_means_plot(table, *, scale: float = 100.0, unit: str = "%", ax=None) -> Figure:
    """Mean of a learner measure by group level and coaching (hidden cells left empty)."""
    set_style()
    owned = ax is None
    fig, ax = _panel(ax, (6.5, 3.2))
    frame = table.frame.dropna(subset=[table.value]).assign(
        shown=lambda f: scale * f[table.value].astype(float)
    )
    across = sideways(frame[table.by])
    _grouped_bars(
        ax,
        frame,
        category=table.by,
        value="shown",
        hue="group",
        colours=PALETTE[:2],
        horizontal=across,
    )
    names = (
        f"{table.value.replace('_', ' ').capitalize()} ({unit})",
        table.by.replace("_", " ").capitalize(),
    )
    ax.set_xlabel(names[0] if across else names[1])
    ax.set_ylabel(names[1] if across else names[0])
    legend_outside(ax)
    return _finish(fig, owned)


def _annotation_colour(rgba: Sequence[float]) -> str:
    """Dark text on light cells, white on dark ones (seaborn's rule: relative luminance > .408)."""
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return ".15" if luminance > 0.408 else "w"


def skill_heatmap(grid, *, by: str = "role") -> Figure:
    """Mean skills gap by role and skill, before and after the programme (hidden cells blank)."""
    set_style()
    frame = grid.frame
    waves = [w for w in ("pre", "post") if w in set(frame["wave"])]
    lines = max((_fill(str(r), 24).count("\n") + 1 for r in frame[by].unique()), default=1)
    fig, axes = plt.subplots(
        1,
        max(len(waves), 1),
        figsize=(5.25 * max(len(waves), 1), (0.2 + 0.25 * lines) * frame[by].nunique() + 2.2),
        squeeze=False,
    )
    vmax = float(frame["gap"].max()) if frame["gap"].notna().any() else 1.0
    cmap = plt.get_cmap("cividis_r")
    mesh = None
    for ax, wave in zip(axes[0], waves, strict=False):
        wide = (
            frame[frame["wave"] == wave]
            .pivot(index=by, columns="skill", values="gap")
            .astype(float)
        )
        values = wide.to_numpy()
        n_rows, n_cols = values.shape
        mesh = ax.pcolormesh(
            np.ma.masked_invalid(values),
            cmap=cmap,
            vmin=0,
            vmax=vmax,
            edgecolor="white",
            linewidth=0.5,
        )
        for (i, j), v in np.ndenumerate(values):  # hidden cells stay blank
            if not np.isnan(v):
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    f"{v:.1f}",
                    ha="center",
                    va="center",
                    color=_annotation_colour(cmap(mesh.norm(v))),
                )
        ax.set_xlim(0, n_cols)
        ax.set_ylim(n_rows, 0)  # first row at the top
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xticks(np.arange(n_cols) + 0.5, [str(c) for c in wide.columns])
        ax.set_yticks(np.arange(n_rows) + 0.5, [_fill(str(r), 24) for r in wide.index])
        ax.tick_params(length=0)
        _title(ax, "Before the programme" if wave == "pre" else "After the programme", fontsize=11)
        ax.set_xlabel("")
        ax.set_ylabel(by.replace("_", " ").capitalize() if ax is axes[0][0] else "")
        plt.setp(
            ax.get_xticklabels(), rotation=90
        )  # narrow cells: names read upwards, never overlap
    if mesh is not None:
        bar = fig.colorbar(mesh, ax=axes[0][len(waves) - 1], label="Mean gap (points)")
        bar.outline.set_linewidth(0)
    return lay_out(fig)
