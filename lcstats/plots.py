"""Figures for notebooks and the report. Each takes results (never raw data to re-estimate from),
accepts ``ax=None`` where it draws one panel, and returns the matplotlib figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lcstats.options import OUTCOME_LABELS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lcstats.heterogeneity import DoseResponse, SubgroupEffects

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


def _style() -> None:
    # text.parse_math off: labels come from the data, and '$' must print as a dollar sign
    sns.set_theme(
        style="whitegrid", context="notebook", palette=PALETTE, rc={"text.parse_math": False}
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
    _style()
    outcomes = list(dict.fromkeys(estimates["outcome"]))
    fig, axes = plt.subplots(
        1, len(outcomes), figsize=(5.2 * len(outcomes), 0.6 * 4 + 1.6), squeeze=False
    )
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        rows = estimates[estimates["outcome"] == outcome].reset_index(drop=True)
        factor, unit = SCALE.get(outcome, (1.0, rows["units"].iloc[0]))
        ypos = range(len(rows))[::-1]
        for y, (_, r) in zip(ypos, rows.iterrows(), strict=True):
            colour = PALETTE[0] if r["method"] != "difference" else PALETTE[7]
            ax.errorbar(
                r["estimate"] * factor,
                y,
                xerr=[
                    [(r["estimate"] - r["ci_low"]) * factor],
                    [(r["ci_high"] - r["estimate"]) * factor],
                ],
                fmt="o",
                color=colour,
                capsize=4,
                markersize=7,
            )
        ax.axvline(0, color="0.3", lw=1, ls="--")
        ax.set_yticks(list(ypos), [METHOD_LABELS.get(m, m) for m in rows["method"]])
        ax.set_xlabel(f"Effect of coaching ({unit})")
        ax.set_title(OUTCOME_LABELS.get(outcome, outcome), fontsize=11)
    if title:
        fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def counts_bar(counts: pd.DataFrame, *, by: str, title: str | None = None, ax=None) -> Figure:
    """Bar chart of coached and not-coached learner counts by a group (counts already suppressed).

    `counts` has the group in column `by` and columns ``coached`` and ``not coached``; hidden
    (suppressed) cells are missing and drawn as gaps.
    """
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
    else:
        fig = ax.figure
    long = counts.melt(id_vars=by, var_name="group", value_name="learners").dropna()
    long["learners"] = long["learners"].astype(float)
    sns.barplot(long, x=by, y="learners", hue="group", ax=ax, palette=PALETTE[:2])
    ax.set_ylabel("Learners")
    ax.set_xlabel(by.replace("_", " ").capitalize())
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    ax.legend(title=None, frameon=False)
    fig.tight_layout()
    return fig


def close(figures: Sequence[Figure]) -> None:
    """Release figures once they are embedded."""
    for fig in figures:
        plt.close(fig)


# Balance and overlap diagnostics (results of lcstats.balance). Imports are local so that this
# appended section leaves the module's import block untouched.


def love_plot(balance, *, threshold: float = 0.1, title: str | None = None, ax=None) -> Figure:
    """Love plot: absolute standardised mean difference of each covariate before and after weighting.

    Parameters
    ----------
    balance : lcstats.balance.Balance
        Result of `lcstats.balance.balance_table` or `compute_balance` (not recomputed here).
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
    >>> from lcstats.balance import compute_balance
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
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(labels) + 1.9))
    else:
        fig = ax.figure
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
    ax.legend(frameon=False, loc="lower right", fontsize=9)
    text = title if title is not None else balance.reading(threshold)
    ax.set_title(textwrap.fill(text, 60), fontsize=10, loc="left")
    fig.tight_layout()
    return fig


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
        Estimated propensity scores (computed elsewhere, e.g. `lcstats.balance.propensity_scores`).
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

    import numpy as np

    e = np.asarray(propensity, dtype=float).ravel()
    t = np.asarray(treated, dtype=float).ravel()
    if e.shape != t.shape:
        raise ValueError(f"propensity has {e.size} values but treated has {t.size}")
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
    else:
        fig = ax.figure
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
        ax.set_title(textwrap.fill(title, 60), fontsize=10, loc="left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Heterogeneity figures (lcstats.heterogeneity results): dose-response and subgroup forest plots.


def _panel(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


def dose_response_plot(dose: DoseResponse, *, ax: Axes | None = None) -> Figure:
    """Effect of each band of coaching sessions against the uncoached, with its interval.

    Parameters
    ----------
    dose : DoseResponse
        The result of `lcstats.heterogeneity.dose_response` (nothing is re-estimated).
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    Figure
    """
    _style()
    frame = dose.to_frame()
    fig, ax = _panel(ax, (6.5, 3.6))
    factor, unit = SCALE.get(dose.outcome, (1.0, "outcome units"))
    labels = []
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
            ax.errorbar(
                x,
                r["estimate"] * factor,
                yerr=[
                    [(r["estimate"] - r["ci_low"]) * factor],
                    [(r["ci_high"] - r["estimate"]) * factor],
                ],
                fmt="o",
                color=PALETTE[0],
                capsize=4,
                markersize=7,
            )
    ax.axhline(0, color="0.3", lw=1, ls="--")
    ax.set_xticks(range(len(frame)), labels)
    ax.set_xlim(-0.5, len(frame) - 0.5)
    ax.set_xlabel(f"Coaching sessions ({dose.sessions})")
    confidence = round(100 * (1 - dose.alpha))
    ax.set_ylabel(f"Effect vs uncoached\n({unit}, {confidence}% interval)")
    ax.set_title(OUTCOME_LABELS.get(dose.outcome, dose.outcome), fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def subgroup_plot(subgroups: SubgroupEffects, *, ax: Axes | None = None) -> Figure:
    """Forest plot of subgroup effects: one row per level, grouped by subgrouping variable.

    Each variable's heading shows its heterogeneity test; levels that were not estimated are
    listed with "not estimated". Intervals are unadjusted; see ``p_adjusted`` in the table.

    Parameters
    ----------
    subgroups : SubgroupEffects
        The result of `lcstats.heterogeneity.subgroup_effects` (nothing is re-estimated).
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    Figure
    """
    from lcstats.effects import format_p
    from lcstats.heterogeneity import LEVEL_NAMES

    _style()
    frame = subgroups.to_frame()
    tests = subgroups.heterogeneity_frame().set_index("subgroup_variable")
    variables = list(dict.fromkeys(frame["subgroup_variable"]))
    n_rows = len(frame) + len(variables)
    fig, ax = _panel(ax, (7.0, 0.34 * n_rows + 1.4))
    factor, unit = SCALE.get(subgroups.outcome, (1.0, "outcome units"))
    y = n_rows
    ticks, tick_labels, headings = [], [], []
    for i, var in enumerate(variables):
        colour = PALETTE[i % len(PALETTE)]
        y -= 1
        p = tests.loc[var, "p_value"]
        het = (
            f"differences: p {'' if p < 0.001 else '= '}{format_p(p)}"
            if pd.notna(p)
            else "differences not tested"
        )
        ticks.append(y)
        tick_labels.append(var.replace("_", " ").capitalize())
        headings.append(len(tick_labels) - 1)
        ax.text(
            0.99,
            y,
            het,
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=9,
            color="0.3",
        )
        for _, r in frame[frame["subgroup_variable"] == var].iterrows():
            y -= 1
            ticks.append(y)
            tick_labels.append(
                "   " + LEVEL_NAMES.get((var, r["subgroup_level"]), r["subgroup_level"])
            )
            if pd.isna(r["estimate"]):
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
                continue
            ax.errorbar(
                r["estimate"] * factor,
                y,
                xerr=[
                    [(r["estimate"] - r["ci_low"]) * factor],
                    [(r["ci_high"] - r["estimate"]) * factor],
                ],
                fmt="o",
                color=colour,
                capsize=3,
                markersize=6,
            )
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
    ax.set_title(
        f"{OUTCOME_LABELS.get(subgroups.outcome, subgroups.outcome)}\n"
        f"{confidence}% intervals, not adjusted for multiple comparisons",
        fontsize=10,
        loc="left",
    )
    fig.tight_layout()
    return fig


def funnel_plot(funnel, *, title: str | None = None, ax=None) -> Figure:
    """Share of committed action items done, and done on time, by coaching group."""
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.0))
    else:
        fig = ax.figure
    frame = funnel.frame.assign(percent=100 * funnel.frame["share"])
    sns.barplot(frame, y="stage", x="percent", hue="group", ax=ax, palette=PALETTE[:2], orient="h")
    for container in ax.containers:
        ax.bar_label(container, fmt="%.0f%%", padding=3, fontsize=9)
    ax.set_xlim(0, 112)
    ax.set_xlabel("Share of committed action items (%)")
    ax.set_ylabel("")
    ax.legend(title=None, frameon=False, loc="lower right")
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def completion_plot(curves, *, title: str | None = None, ax=None) -> Figure:
    """Kaplan-Meier curves: share of action items completed by days since they were set."""
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
    else:
        fig = ax.figure
    for colour, (group, part) in zip(
        PALETTE, curves.frame.groupby("group", sort=True), strict=False
    ):
        ax.step(
            part["days"], 100 * part["share_completed"], where="post", color=colour, label=group
        )
    ax.set_xlabel("Days since the action item was set")
    ax.set_ylabel("Items completed (%)")
    ax.set_ylim(0, 100)
    ax.legend(title=None, frameon=False)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def group_means_plot(table, *, scale: float = 100.0, unit: str = "%", ax=None) -> Figure:
    """Mean of a learner measure by group level and coaching (hidden cells left empty)."""
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
    else:
        fig = ax.figure
    frame = table.frame.dropna(subset=[table.value]).assign(
        shown=lambda f: scale * f[table.value].astype(float)
    )
    sns.barplot(frame, x=table.by, y="shown", hue="group", ax=ax, palette=PALETTE[:2])
    ax.set_ylabel(f"{table.value.replace('_', ' ').capitalize()} ({unit})")
    ax.set_xlabel(table.by.replace("_", " ").capitalize())
    ax.legend(title=None, frameon=False)
    fig.tight_layout()
    return fig


def skill_heatmap(grid, *, by: str = "role") -> Figure:
    """Mean skills gap by role and skill, before and after the programme (hidden cells blank)."""
    _style()
    frame = grid.frame
    waves = [w for w in ("pre", "post") if w in set(frame["wave"])]
    fig, axes = plt.subplots(
        1, len(waves), figsize=(5.4 * len(waves), 0.45 * frame[by].nunique() + 2.2), squeeze=False
    )
    vmax = float(frame["gap"].max()) if frame["gap"].notna().any() else 1.0
    for ax, wave in zip(axes[0], waves, strict=True):
        wide = (
            frame[frame["wave"] == wave]
            .pivot(index=by, columns="skill", values="gap")
            .astype(float)
        )
        sns.heatmap(
            wide,
            ax=ax,
            vmin=0,
            vmax=vmax,
            cmap="cividis_r",
            annot=True,
            fmt=".1f",
            cbar=ax is axes[0][-1],
            cbar_kws={"label": "Mean gap (points)"},
            linewidths=0.5,
        )
        ax.set_title(
            "Before the programme" if wave == "pre" else "After the programme", fontsize=11
        )
        ax.set_xlabel("")
        ax.set_ylabel(by.replace("_", " ").capitalize() if ax is axes[0][0] else "")
        ax.tick_params(axis="x", rotation=35)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    fig.tight_layout()
    return fig
