"""results.json: the machine-readable outcome of one evaluation (byte-identical for the same inputs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from lcstats.core.files import write_json
from lcstats.data.load import Programme, SourceFile
from lcstats.estimation.analysis import EffectSet
from lcstats.estimation.costs import ValueForMoney
from lcstats.estimation.designs import DesignResult, design_of, headline_estimates
from lcstats.estimation.diagnostics import Diagnostics
from lcstats.outcomes.learner import LearnerOutcomes
from lcstats.params import Params

DIGITS = 10  # significant digits kept in results.json


def _clean(value: Any) -> Any:
    """Round floats, turn missing values into null, and numpy scalars into Python ones."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.{DIGITS}g}")
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        _clean(r) for r in frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    ]


def _input(source: SourceFile) -> dict[str, Any]:
    """What results.json says of one input: its rows, their fingerprint (the same whatever the
    source) and where they came from (no folder, no credentials)."""
    if source.kind == "file":
        where = {"kind": "file", "name": Path(source.path).name, "sha256": source.sha256}
    else:
        where = {"kind": source.kind, "description": source.path}
    return {"rows_read": source.rows_read, "fingerprint": source.fingerprint, "source": where}


def _programme_block(params: Params, outcomes: LearnerOutcomes) -> dict[str, Any]:
    """Who the evaluation covers: learners, coached, cohorts (labels only), the design."""
    data = outcomes.data
    cohorts = sorted(data["cohort"].dropna().astype(str).unique()) if "cohort" in data else []
    return {
        "title": params.title,
        "design": params.design,
        "learners": int(len(data)),
        "coached": int((data[params.treatment] == 1).sum()),
        "cohorts": cohorts,
        "min_group_size": params.min_group_size,
    }


def _dynamic_rows(design: DesignResult) -> list[dict[str, Any]]:
    """The event study of a staggered design: one estimate record per period since coaching
    started (``aggregation: dynamic`` with its ``event_time``)."""
    dynamic = design.aggregates.get("dynamic")
    if dynamic is None:
        return []
    base = {
        k: v
        for k, v in dynamic.as_dict().items()
        if k not in ("estimate", "std_error", "ci_low", "ci_high", "p_value")
    }
    return [
        {
            **base,
            "event_time": int(row["level"]),
            **{k: row[k] for k in ("estimate", "std_error", "ci_low", "ci_high")},
            "band_low": row["band_low"],
            "band_high": row["band_high"],
            "p_value": None,
        }
        for row in dynamic.by_level.to_dict(orient="records")
    ]


def _design_block(design: DesignResult) -> dict[str, Any]:
    """What the design adds: its assumption, the roll-out's group-time effects, the time to
    follow-through."""
    block: dict[str, Any] = {
        "design": design.design,
        "assumption": design.assumption,
        "skipped": design.skipped,
    }
    if design.staggered is not None:
        s = design.staggered
        block["staggered"] = {
            "att_gt": _records(s.att_gt),
            "pre_trend": s.pre_trend.as_dict() if s.pre_trend else None,
            "aggregations": {k: _records(a.by_level) for k, a in design.aggregates.items()},
            "notes": list(s.notes),
        }
    if design.skills is not None:
        s = design.skills
        block["staggered_skills_gap"] = {
            "att_gt": _records(s.att_gt),
            "pre_trend": s.pre_trend.as_dict() if s.pre_trend else None,
            "panel": design.skills_panel.summary() if design.skills_panel else None,
            "notes": list(s.notes),
        }
    if design.hazard is not None:
        block["time_to_follow_through"] = {
            "hazard_ratio": design.hazard.as_dict(),
            "median_days": {str(k): v for k, v in design.completion.medians.items()}
            if design.completion
            else None,
        }
    if design.balance is not None:
        block["randomisation_balance"] = _records(design.balance.to_frame())
    return block


def results_document(
    *,
    params: Params,
    programme: Programme,
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    diagnostics: Diagnostics | None = None,
    design: DesignResult | None = None,
    value: ValueForMoney | None = None,
) -> dict[str, Any]:
    """Assemble the results.json document (no clock, no run id: it depends only on the inputs)."""
    kind = design.design if design is not None else params.design
    estimates = [{**e.as_dict(), "design": design_of(e, kind)} for e in effects.estimates]
    if design is not None:
        estimates += [{**e.as_dict(), "design": design_of(e, kind)} for e in design.estimates]
    doc: dict[str, Any] = {
        "evaluation": params.evaluation,
        "as_of": outcomes.as_of,
        "headline_method": params.headline_method,
        "estimates": estimates,
        "data_quality": {t: q.as_dict() for t, q in outcomes.quality.items()},
        "samples": {o: s.as_dict() for o, s in effects.samples.items()},
        "inputs": {t: _input(s) for t, s in programme.sources.items()},
        "parameters": params.notebook_parameters(),
    }
    doc["programme"] = _programme_block(params, outcomes)
    doc["headlines"] = [
        {**h.as_dict(), "design": design_of(h, kind)}
        for h in headline_estimates(params, effects, design)
    ]
    if value is not None:
        doc["value_for_money"] = value.as_dict()
    if design is not None:
        doc["design"] = _design_block(design)
        doc["estimates"] += _dynamic_rows(design)
    if diagnostics is not None:
        d = diagnostics
        doc["estimates"] += [
            {**m.manager.as_dict(), "design": "observational"} for m in d.manager.values()
        ]
        doc["diagnostics"] = {
            "balance": {
                "max_abs_smd_before": d.balance.max_abs_smd(adjusted=False),
                "max_abs_smd_after": d.balance.max_abs_smd(adjusted=True),
                "table": _records(d.balance.to_frame()),
            },
            "overlap": _records(d.overlap.to_frame()),
            "evalues": {o: _records(e.to_frame()) for o, e in d.evalues.items()},
            "dose_response": {o: _records(r.to_frame()) for o, r in d.dose.items()},
            "subgroups": {o: _records(r.to_frame()) for o, r in d.subgroups.items()},
            "manager_coaching": {o: _records(r.to_frame()) for o, r in d.manager.items()},
            "across_cohorts": {
                o: {"pooled": p.as_dict(), "cohorts": _records(p.studies)}
                for o, p in d.cohorts.items()
            },
            "skipped": d.skipped,
        }
    return _clean(doc)


def write_results(doc: dict[str, Any], output_dir: str | Path) -> Path:
    """Write results.json into the run folder."""
    return write_json(Path(output_dir) / "results.json", doc)
