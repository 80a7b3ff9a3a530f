"""lcstats: did coaching raise learners' follow-through and close their skills gaps?

Quick start (in a notebook or script run from the repository)::

    import lcstats as lc

    params = lc.load_params("params/example.yaml")
    ev = lc.evaluate(params)                 # inputs -> outcomes -> effects -> diagnostics
    ev.effects.to_frame()                    # one row per outcome x method
    lc.estimate_effect(ev.outcomes.data.dropna(subset=["follow_through"]),
                       outcome="follow_through", treatment="coached",
                       covariates=["tenure_months", "engagement"], method="aipw")

From the shell: ``lcstats validate params/example.yaml``, ``lcstats run params/example.yaml``.

The package is layered; each layer uses only those before it (checked by import-linter):
``core`` -> ``params`` -> ``data`` -> ``outcomes`` -> ``estimation`` -> ``reporting`` ->
``running`` -> ``cli``. See ARCHITECTURE.md. The names below are imported on first use, so that
the command line does not pay for statistics and plotting libraries it does not need.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lcstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_EXPORTS = {
    "AnalysisSample": "lcstats.outcomes.learner",
    "Diagnostics": "lcstats.estimation.diagnostics",
    "EffectEstimate": "lcstats.estimation.effects",
    "EffectSet": "lcstats.estimation.analysis",
    "EstimationError": "lcstats.core.errors",
    "InputError": "lcstats.core.errors",
    "LcstatsError": "lcstats.core.errors",
    "LearnerOutcomes": "lcstats.outcomes.learner",
    "Params": "lcstats.params",
    "Problem": "lcstats.core.errors",
    "Programme": "lcstats.data.load",
    "analysis_sample": "lcstats.outcomes.learner",
    "diagnose": "lcstats.estimation.diagnostics",
    "estimate_effect": "lcstats.estimation.effects",
    "estimate_effects": "lcstats.estimation.analysis",
    "Evaluation": "lcstats.estimation.evaluation",
    "evaluate": "lcstats.estimation.evaluation",
    "learner_outcomes": "lcstats.outcomes.learner",
    "load_inputs": "lcstats.data.inputs",
    "load_params": "lcstats.params",
    "load_programme": "lcstats.data.load",
    "DesignResult": "lcstats.estimation.designs",
    "design_estimates": "lcstats.estimation.designs",
    "staggered_att": "lcstats.estimation.staggered",
    "StaggeredResult": "lcstats.estimation.staggered",
    "randomised_effect": "lcstats.estimation.randomised",
    "completion_times": "lcstats.estimation.survival",
    "completion_curves": "lcstats.estimation.survival",
    "completion_hazard": "lcstats.estimation.survival",
    "follow_through_panel": "lcstats.outcomes.panel",
    "pool_effects": "lcstats.estimation.pooling",
    "cost_effectiveness": "lcstats.estimation.costs",
    "evaluation_costs": "lcstats.estimation.costs",
    "TableSpec": "lcstats.params",
    "Readings": "lcstats.core.display",
    "subgroup_effects": "lcstats.estimation.heterogeneity.subgroups",
}
# short names of submodules kept from before the layered layout (``lc.plots``, ``lc.params`` ...)
_SUBMODULES = {
    "analysis": "lcstats.estimation.analysis",
    "balance": "lcstats.estimation.balance",
    "diagnostics": "lcstats.estimation.diagnostics",
    "evaluation": "lcstats.estimation.evaluation",
    "inputs": "lcstats.data.inputs",
    "params": "lcstats.params",
    "plots": "lcstats.reporting.plots",
    "report": "lcstats.reporting.report",
    "results": "lcstats.reporting.results",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'lcstats' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
