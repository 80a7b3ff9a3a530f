"""Figures for notebooks and the report. Each takes results (never raw data to re-estimate from),
accepts ``ax=None`` where it draws one panel, and returns the matplotlib figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lcstats.options import OUTCOME_LABELS

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
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)


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
