"""results.json: the machine-readable outcome of one evaluation (byte-identical for the same inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcstats.analysis import EffectSet
from lcstats.files import write_json
from lcstats.load import Programme
from lcstats.metrics import LearnerOutcomes

ROUND = 10  # significant digits kept in results.json


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{ROUND}g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def results_document(
    *,
    evaluation: str,
    programme: Programme,
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    parameters: dict[str, Any],
    headline_method: str,
) -> dict[str, Any]:
    """Assemble the results.json document (no clock, no run id: it depends only on the inputs)."""
    return _round(
        {
            "evaluation": evaluation,
            "as_of": outcomes.as_of,
            "headline_method": headline_method,
            "estimates": [e.as_dict() for e in effects.estimates],
            "data_quality": {t: q.as_dict() for t, q in outcomes.quality.items()},
            "samples": {o: s.as_dict() for o, s in effects.samples.items()},
            "inputs": {
                t: {"sha256": s.sha256, "rows_read": s.rows_read}
                for t, s in programme.sources.items()
            },
            "parameters": {
                k: v for k, v in parameters.items() if k not in ("output_dir", "run_id")
            },
        }
    )


def write_results(doc: dict[str, Any], output_dir: str | Path) -> Path:
    """Write results.json into the run folder."""
    return write_json(Path(output_dir) / "results.json", doc)
