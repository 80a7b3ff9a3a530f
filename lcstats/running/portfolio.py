"""The portfolio page of a reports folder, from the successful runs in its ledger."""

from __future__ import annotations

from pathlib import Path

from lcstats.core.errors import InputError, Problem
from lcstats.running.ledger import list_runs


def refresh_portfolio(
    root: str | Path, *, output: str | Path | None = None, pdf: bool = False
) -> tuple[Path, Path]:
    """Write ``index.html`` and ``portfolio.json`` for the successful runs recorded in `root`.

    Parameters
    ----------
    root : path
        The reports folder (its ledger lists the runs).
    output : path, optional
        The page to write (default ``<root>/index.html``); portfolio.json goes beside it.
    pdf : bool
        Also print the page to ``index.pdf`` beside it (headless Chromium).

    Raises
    ------
    InputError
        When the folder has no successful run.
    """
    from lcstats.reporting.portfolio import PortfolioRun, build_portfolio

    root = Path(root).resolve()
    page = Path(output).resolve() if output else root / "index.html"
    runs = list_runs(root, limit=1_000_000)
    done = runs[runs["status"] == "succeeded"] if not runs.empty else runs
    listed = [
        PortfolioRun(r.evaluation, r.run_id, r.started, Path(r.run_dir))
        for r in done.itertuples(index=False)
        if r.run_dir and Path(r.run_dir).is_dir()
    ]
    if not listed:
        raise InputError(
            Problem(
                str(root),
                "no successful run is recorded in this reports folder",
                hint="run evaluations first: lcstats run-all params/",
            )
        )
    written = build_portfolio(listed, page_dir=page.parent).write(page)
    if pdf:
        from lcstats.reporting.pdf import write_pdf

        write_pdf(
            page,
            page.with_suffix(".pdf"),
            title="Coaching programmes: portfolio",
            date=max(r.started for r in listed)[:10],
        )
    return written
