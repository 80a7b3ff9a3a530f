"""Writes the notebooks in notebooks/ (stored without outputs). Edit here, then run:

    .venv/bin/python tools/make_notebooks.py

The evaluation, data-quality and diagnostics notebooks share one parameters cell, so a params file
works with any of them; explore.ipynb reads a params file itself.
"""

from pathlib import Path

import nbformat as nbf

md = nbf.v4.new_markdown_cell
ROOT = Path(__file__).resolve().parent.parent

PARAMETERS = """# Parameters: papermill injects the values of params/<evaluation>.yaml after this cell.
evaluation: str = "example"  # short name of the evaluation; names the report folder
title: str = "Coaching evaluation: example programme"  # title of the report
# each table: a path (CSV, Parquet, Excel), or {path, sheet, date_format | dayfirst}, or {source, table | query}
learners = "../data/example/learners.csv"  # learners table
action_items = "../data/example/action_items.csv"  # action-plan items table
skill_assessments = "../data/example/skill_assessments.csv"  # skill assessments table
coaching_sessions = "../data/example/coaching_sessions.csv"  # None, or a log of coaching sessions (gives coached_from)
activity = "../data/example/activity.parquet"  # None, or xAPI statements / an activity table (gives pre_* features)
baseline_end = None  # None or "YYYY-MM-DD": activity cut-off of learners never coached (default: first coaching start)
activity_window_days: int = 182  # days of activity before each learner's cut-off that count
unknown_learners: str = "exclude"  # rows naming learners absent from the learners table: exclude (counted) or reject
costs = None  # None, or {per_session, per_learner, currency[, value_per_follow_through, value_per_skill_point]}
design: str = "observational"  # observational (adjust for covariates), staggered (teams coached in waves) or randomised
period: str = "month"  # staggered: period of the follow-through panel (month or quarter)
hazard_max_items = 200_000  # None, or at most this many action items in the Cox model (whole teams drawn at random)
control_group: str = "never_treated"  # staggered: compare with teams never_treated or not_yet_treated
columns: dict = {}  # per table, canonical column name -> the column's name in your export
treatment: str = "coached"  # 0/1 column of the learners table: who was coached
covariates: list = ["tenure_months", "engagement", "pre_active_weeks", "role", "cohort", "manager_coached"]  # confounders to adjust for
cluster = "team_id"  # str or None: learners in the same team share influences, so cluster the standard errors
methods: list = ["difference", "regression", "ipw", "aipw"]  # estimators to run
headline_method: str = "aipw"  # the estimator quoted in the executive summary
estimand: str = "ATE"  # ATE: effect over all learners; ATT: over the coached learners
alpha: float = 0.05  # 1 - confidence level of the intervals
scale_min: int = 1  # lowest level of the skill scale
scale_max: int = 5  # highest level of the skill scale
skill_waves: list = ["pre", "post"]  # assessment waves: pre, post and any in between (ordered by assessed_on)
as_of: str = "2026-06-30"  # the evaluation's "as of" date (YYYY-MM-DD); never the clock
min_group_size: int = 5  # smallest group the report may show
followed_through_share: float = 0.8  # a learner "followed through" when at least this share of items was on time
trim = None  # None or [low, high]: leave out learners whose chance of coaching is outside it (e.g. [0.05, 0.95])
output_dir: str = "../reports/interactive"  # where results.json and report.html are written (set by lcstats run)
run_id: str = "interactive"  # identifier of this run (set by lcstats run)
prepared_inputs = None  # None, or the tables lcstats run has already validated (set by lcstats run)
previous_results = None  # None, or the previous successful run's results.json (set by lcstats run)"""

SETUP = """from pathlib import Path

import lcstats as lc

params = lc.params.parse_params(
    {name: globals()[name] for name in lc.params.notebook_fields()},
    source="notebook parameters",
    base_dir=Path.cwd(),
)
programme = lc.load_inputs(params, prepared=prepared_inputs)
outcomes = lc.learner_outcomes(programme, as_of=params.as_of)"""


def code(source: str, **kw) -> nbf.NotebookNode:
    return nbf.v4.new_code_cell(source, **kw)


def notebook(cells: list) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python (lcstats)", "language": "python", "name": "lcstats"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat_minor = 4
    return nb


EVALUATION = [
    md("""# Coaching evaluation

Did coaching raise learners' **follow-through** on their action plans (share of items done on time), and did it
**close skills gaps** (target minus assessed level after the programme)? This notebook runs one evaluation: it loads
and validates the three input tables, computes learner-level outcomes, estimates the effect of coaching with several
methods, checks how far to trust the estimates, and writes `results.json` and the leadership `report.html`.

Run it as it is against the example programme in `data/example`, or through `lcstats run params/<evaluation>.yaml`,
which injects the values of the params file below the next cell."""),
    code(PARAMETERS, metadata={"tags": ["parameters"]}),
    md("""## 1. Load and validate the inputs

Every problem in every table is reported at once; nothing is dropped silently. Learner-level outcomes follow:
follow-through counts the items due by the as-of date; the skills gap is measured before and after the programme."""),
    code(SETUP + "\nprogramme"),
    code("outcomes.quality  # rows read, used, and excluded by reason, for every table"),
    md("""## 2. Effects of coaching

The raw difference is shown for comparison only: coaching was not assigned at random, so the adjusted estimates
(regression adjustment, inverse probability weighting, doubly robust AIPW) are the ones to read."""),
    code("""effects = lc.estimate_effects(
    outcomes,
    treatment=params.treatment,
    covariates=params.covariates,
    methods=params.methods,
    estimand=params.estimand,
    cluster=params.cluster,
    alpha=params.alpha,
    trim=params.trim,
)
effects"""),
    code("""lc.plots.forest_plot(effects.to_frame(), title="Effect of coaching, by method");"""),
    md("""## 3. How far to trust them

Balance and overlap of the propensity model, E-values, dose-response, subgroups and manager coaching."""),
    code("""diagnostics = lc.diagnose(
    outcomes, effects,
    treatment=params.treatment, covariates=params.covariates, cluster=params.cluster,
    headline_method=params.headline_method, estimand=params.estimand, alpha=params.alpha,
    min_group_size=params.min_group_size,
)
diagnostics"""),
    code(
        """lc.plots.love_plot(diagnostics.balance, title="Balance before and after weighting");"""
    ),
    code(
        "diagnostics.readings()  # balance, overlap, sensitivity, dose, subgroups, manager coaching"
    ),
    md("""## 4. The design

What identifies the effect (an adjusted comparison, a roll-out in waves, or a randomised pilot), the design's own
estimates, and the time it took to complete action items."""),
    code("""design = lc.design_estimates(params, programme, outcomes, effects)
design"""),
    code("""# follow-through over time: share of action items completed, coached and not, weighted alike
if design.completion is not None:
    lc.plots.adjusted_completion_plot(design.completion);"""),
    code("""# what it cost (when the parameters give costs): cost per outcome, and a return on investment
value = lc.evaluation.value_for_money(params, effects, design)
value"""),
    md("## 5. Results and report"),
    code("""from lcstats.reporting.changes import since_last_run
from lcstats.reporting.report import build_report
from lcstats.reporting.results import results_document, write_results

out = Path(output_dir)
doc = results_document(params=params, programme=programme, outcomes=outcomes, effects=effects,
                       diagnostics=diagnostics, design=design, value=value)
write_results(doc, out)
changes = since_last_run(doc, previous_results) if run_id != "interactive" else None
build_report(params=params, programme=programme, outcomes=outcomes, effects=effects, diagnostics=diagnostics,
             design=design, value=value, changes=changes, run_id=run_id).write(out / "report.html")
print(f"wrote {out / 'results.json'} and {out / 'report.html'}")"""),
]

DATA_QUALITY = [
    md("""# Data quality

What arrived, what was used, and what was excluded and why, for one evaluation's input tables. Analyst material:
it shows learner-level rows, so it never goes to leadership."""),
    code(PARAMETERS, metadata={"tags": ["parameters"]}),
    md(
        "## Inputs and validation\n\n`load_programme` raises one error listing every problem; when it passes, the tables meet the contract."
    ),
    code(SETUP + "\nprogramme"),
    md("## Rows used and excluded"),
    code(
        "outcomes.quality  # every table: rows read, used, excluded by reason, values changed while reading"
    ),
    code("""import pandas as pd

samples = {
    outcome: lc.analysis_sample(
        outcomes, outcome=outcome, treatment=params.treatment,
        covariates=lc.analysis.outcome_covariates(outcome, params.covariates), cluster=params.cluster,
    )
    for outcome in ("follow_through", "skills_gap")
}
pd.DataFrame({o: s.as_dict() for o, s in samples.items()}).T"""),
    md("## Completeness of every learner column"),
    code(
        """programme.learners.isna().mean().rename("share missing").to_frame().style.format("{:.1%}")"""
    ),
    md("## Distributions of the outcomes"),
    code(
        """outcomes.data[["n_items", "follow_through", "skills_gap_pre", "skills_gap", "median_days_to_complete"]].describe().T"""
    ),
    code("""import seaborn as sns

sns.histplot(outcomes.data, x="follow_through", hue=params.treatment, bins=20, stat="percent", common_norm=False)"""),
]

DIAGNOSTICS = [
    md("""# Diagnostics: balance, overlap and outcome-model residuals

Checks behind the adjusted estimates, for analysts. The leadership report shows a summary of the first two."""),
    code(PARAMETERS, metadata={"tags": ["parameters"]}),
    code(
        SETUP
        + """
effects = lc.estimate_effects(outcomes, treatment=params.treatment, covariates=params.covariates,
                              methods=params.methods, estimand=params.estimand, cluster=params.cluster,
                              alpha=params.alpha, trim=params.trim)
sample = effects.samples["follow_through"].data"""
    ),
    md("## Balance before and after weighting"),
    code("""from lcstats.reporting import plots
from lcstats.estimation.balance import balance_table, overlap_summary, propensity_scores

for method in ("ipw", "overlap"):
    balance = balance_table(sample, treatment=params.treatment, covariates=params.covariates, method=method,
                            estimand="ATO" if method == "overlap" else params.estimand)
    print(method, ":", balance.reading())
balance = balance_table(sample, treatment=params.treatment, covariates=params.covariates, method="ipw",
                        estimand=params.estimand)
plots.love_plot(balance);"""),
    md("## Overlap of the propensity score"),
    code("""propensity = propensity_scores(sample, treatment=params.treatment, covariates=params.covariates)
overlap = overlap_summary(propensity, sample[params.treatment].to_numpy())
print(overlap.reading())
plots.propensity_plot(propensity, sample[params.treatment].to_numpy());"""),
    md(
        "## Outcome-model residuals\n\nResiduals against fitted values of the linear outcome model in each group: look for curvature or fans."
    ),
    code("""import seaborn as sns
from lcstats.estimation.diagnostics import outcome_residuals

for outcome in ("follow_through", "skills_gap"):
    data = effects.samples[outcome].data
    resid = outcome_residuals(data, outcome=outcome, treatment=params.treatment,
                              covariates=lc.analysis.outcome_covariates(outcome, params.covariates))
    grid = sns.relplot(resid, x="fitted", y="residual", col="group", s=8, alpha=0.4, height=3)
    grid.figure.suptitle(outcome, y=1.05)"""),
]

EXPLORE = [
    md("""# Ask your own question

The evaluation notebook answers the standard questions. This one shows how to ask your own with the package:
a different set of covariates, one subgroup, and two sensitivity checks, side by side at the end. Every answer is
an `EffectEstimate`: `.reading()` says it in words, `.to_frame()` gives one tidy row. Copy a cell and change it.

The example evaluation is used here; point `params` at your own params file instead."""),
    code("""import pandas as pd

import lcstats as lc

params = lc.load_params("../params/example.yaml")
ev = lc.evaluate(params)  # inputs -> outcomes -> effects -> diagnostics -> design, as a run does
ev"""),
    md("""## 1. A different set of covariates

Does the answer depend on which differences between learners we adjust for? The learners are those the
evaluation used for follow-through (`ev.effects.samples`), so only the adjustment changes."""),
    code("""learners = ev.effects.samples["follow_through"].data
question = dict(outcome="follow_through", treatment=params.treatment, cluster=params.cluster, method="aipw")

answers = {
    "As in the evaluation": lc.estimate_effect(learners, covariates=params.covariates, **question),
    "Without engagement (recorded or from activity)": lc.estimate_effect(
        learners, covariates=[c for c in params.covariates if c != "engagement" and not c.startswith("pre_")],
        **question,
    ),
    "Tenure and role only": lc.estimate_effect(learners, covariates=["tenure_months", "role"], **question),
}
lc.Readings({label: answer.reading() for label, answer in answers.items()})"""),
    md("""## 2. A subgroup

The effect for one group of learners: here those in their first year. With few learners the interval widens;
`subgroup_effects` does every level of a variable at once, with p-values adjusted for the number of groups."""),
    code("""new_joiners = learners[learners["tenure_months"] < 12]
answers["In their first year"] = lc.estimate_effect(new_joiners, covariates=params.covariates, **question)
answers["In their first year"]"""),
    code("""lc.subgroup_effects(ev.outcomes, outcome="follow_through", by=["role"], covariates=params.covariates,
                    cluster=params.cluster, min_group_size=params.min_group_size)"""),
    md("""## 3. Sensitivity checks

**Trimming**: leave out learners who were almost certain to be coached, or not to be (their comparison rests on
few look-alikes). **A placebo outcome**: coaching cannot have changed the skills gap measured *before* it started,
so an adjusted "effect" on it should be close to zero; a clear one would point to differences the covariates miss.
**E-value**: how strong an unmeasured difference would have to be to explain the effect away."""),
    code("""answers["Trimmed to chances of 5-95%"] = lc.estimate_effect(
    learners, covariates=params.covariates, trim=(0.05, 0.95), **question
)
placebo_question = dict(outcome="skills_gap_pre", treatment=params.treatment, covariates=params.covariates,
                        cluster=params.cluster)
baseline = lc.analysis_sample(ev.outcomes, **placebo_question).data  # learners with a gap measured before
placebo = lc.estimate_effect(baseline, method="aipw", **placebo_question)
lc.Readings({
    "Trimmed": answers["Trimmed to chances of 5-95%"].reading(),
    "Placebo (gap before coaching)": placebo.reading(),
    "E-value": ev.diagnostics.evalues["follow_through"].reading(),
})"""),
    md("## 4. All the answers side by side"),
    code("""table = pd.concat([a.to_frame().assign(method=label) for label, a in answers.items()], ignore_index=True)
lc.plots.forest_plot(table, title="Effect of coaching on follow-through, by question asked");"""),
    code(
        """table[["method", "estimate", "ci_low", "ci_high", "n_treated", "n_control"]].rename(columns={"method": "question"})"""
    ),
]

for name, cells in (
    ("evaluation", EVALUATION),
    ("explore", EXPLORE),
    ("data_quality", DATA_QUALITY),
    ("diagnostics", DIAGNOSTICS),
):
    nbf.write(notebook(cells), ROOT / "notebooks" / f"{name}.ipynb")
