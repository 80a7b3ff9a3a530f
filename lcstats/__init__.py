"""lcstats: evaluate whether coaching raised learners' follow-through and closed skills gaps.

Data flows one way: ``load`` (contract, reading, validation) -> ``metrics`` (learner-level
outcomes) -> ``effects`` / ``analysis`` (estimates) -> ``report`` (tables, figures, HTML), with
``runner`` and ``cli`` on top. See ARCHITECTURE.md.
"""

from importlib.metadata import PackageNotFoundError, version

from lcstats import params
from lcstats.analysis import EffectSet, estimate_effects
from lcstats.diagnostics import Diagnostics, diagnose
from lcstats.effects import EffectEstimate, estimate_effect
from lcstats.errors import EstimationError, InputError, LcstatsError, Problem
from lcstats.load import Programme, load_programme
from lcstats.metrics import AnalysisSample, LearnerOutcomes, analysis_sample, learner_outcomes
from lcstats.params import Params, load_params

try:
    __version__ = version("lcstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "AnalysisSample",
    "Diagnostics",
    "EffectEstimate",
    "EffectSet",
    "EstimationError",
    "InputError",
    "LcstatsError",
    "LearnerOutcomes",
    "Params",
    "Problem",
    "Programme",
    "analysis_sample",
    "params",
    "diagnose",
    "estimate_effect",
    "estimate_effects",
    "learner_outcomes",
    "load_params",
    "load_programme",
]
