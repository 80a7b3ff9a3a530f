"""Who gains most from coaching: dose-response over sessions (`dose`), effects by subgroup with
multiple-testing adjustment and Cochran Q (`subgroups`), and manager coaching (`manager`)."""

from lcstats.estimation.heterogeneity.dose import DoseBand, DoseResponse, dose_response
from lcstats.estimation.heterogeneity.manager import ManagerEffects, manager_effects
from lcstats.estimation.heterogeneity.subgroups import (
    LEVEL_NAMES,
    HeterogeneityTest,
    SubgroupEffect,
    SubgroupEffects,
    subgroup_effects,
)

__all__ = [
    "LEVEL_NAMES",
    "DoseBand",
    "DoseResponse",
    "HeterogeneityTest",
    "ManagerEffects",
    "SubgroupEffect",
    "SubgroupEffects",
    "dose_response",
    "manager_effects",
    "subgroup_effects",
]
