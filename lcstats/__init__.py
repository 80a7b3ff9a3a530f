"""lcstats: evaluate whether coaching raised learners' follow-through and closed skills gaps.

Data flows one way: ``load`` (contract, reading, validation) -> ``metrics`` (learner-level
outcomes) -> ``effects`` / ``analysis`` (estimates) -> ``report`` (tables, figures, HTML), with
``runner`` and ``cli`` on top. See ARCHITECTURE.md.

The names below are imported on first use, so that the command line and a run's pre-flight do not
pay for statistics and plotting libraries they do not need.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lcstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_EXPORTS = {
    "AnalysisSample": "lcstats.metrics",
    "Diagnostics": "lcstats.diagnostics",
    "EffectEstimate": "lcstats.effects",
    "EffectSet": "lcstats.analysis",
    "EstimationError": "lcstats.errors",
    "InputError": "lcstats.errors",
    "LcstatsError": "lcstats.errors",
    "LearnerOutcomes": "lcstats.metrics",
    "Params": "lcstats.params",
    "Problem": "lcstats.errors",
    "Programme": "lcstats.load",
    "analysis_sample": "lcstats.metrics",
    "diagnose": "lcstats.diagnostics",
    "estimate_effect": "lcstats.effects",
    "estimate_effects": "lcstats.analysis",
    "Evaluation": "lcstats.evaluation",
    "evaluate": "lcstats.evaluation",
    "learner_outcomes": "lcstats.metrics",
    "load_inputs": "lcstats.inputs",
    "load_params": "lcstats.params",
    "load_programme": "lcstats.load",
}
_SUBMODULES = ("analysis", "balance", "diagnostics", "inputs", "params", "plots", "report")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"lcstats.{name}")
    else:
        raise AttributeError(f"module 'lcstats' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
