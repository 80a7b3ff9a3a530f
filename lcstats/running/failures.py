"""Why a run failed, in plain words: the step it was in, the cause, and what to do.

`explain` turns whatever stopped the notebook (an error in a cell, a dead kernel, a time limit, a
full disk) into a `Failure`: the ledger status and exit code, the notebook step, a sentence for
people and whether the run's folder must be removed rather than published.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from lcstats.core.errors import LcstatsError
from lcstats.running.run_folder import disk_full_message, is_disk_full
from lcstats.running.watchdog import MemorySeen

EXIT_FAILED, EXIT_INVALID = 1, 2
READING = "reading and checking the inputs"
HANDING_OVER = "handing the checked tables to the notebook"
USER_ERRORS = ("InputError", "EstimationError")


@dataclass(frozen=True)
class Failure:
    """What stopped a run: status, exit code, step, plain-language cause."""

    status: str  # failed | invalid
    exit_code: int
    step: str
    cause: str
    discard: bool = False  # remove the run folder (it cannot be completed, e.g. a full disk)

    @property
    def message(self) -> str:
        """One message for the command line and the ledger."""
        return f"failed at step '{self.step}': {self.cause}"


@dataclass(frozen=True)
class RunContext:
    """What `explain` needs to know about the run that failed."""

    notebook: Path  # as executed (with the injected parameters), or the input when not written
    cell_index: int | None  # the last cell that began, None when none did
    output_root: Path
    space_needed: int
    memory: MemorySeen
    timed_out: bool
    limits: tuple[float | None, float | None]  # run and cell limits, minutes
    elapsed_s: float
    kernel_exit: int | None = None


def notebook_step(notebook: Path, cell_index: int | None) -> str:
    """The heading of the notebook section that holds cell `cell_index` (None: no cell began)."""
    if cell_index is None:
        return "starting the notebook's kernel"
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return "the evaluation notebook"
    heading = "setting up"
    for cell in cells[: cell_index + 1]:
        if cell.get("cell_type") == "markdown":
            lines = [
                ln for ln in "".join(cell.get("source", "")).splitlines() if ln.startswith("#")
            ]
            heading = lines[0].lstrip("# ").strip() if lines else heading
    return heading


def _minutes(seconds: float) -> str:
    """Elapsed time for people ("12 seconds", "31 minutes")."""
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    return f"{seconds / 60:.0f} minutes"


def _dead_kernel(ctx: RunContext) -> str:
    """Cause of a kernel that stopped by itself (or was killed from outside)."""
    how = ""
    if ctx.kernel_exit is not None and ctx.kernel_exit < 0:
        how = f" (ended by signal {-ctx.kernel_exit})"
    seen = ctx.memory.sentence()
    return (
        f"the notebook's kernel stopped{how}; this is often the machine running out of memory"
        + (f": {seen}" if seen else "")
        + ". Run it on a machine with more memory, or reduce the inputs; if memory was not the "
        "cause, look for the process that stopped it."
    )


def timeout_cause(run_limit: float, elapsed_s: float) -> str:
    """Cause of a run that passed its time limit."""
    return (
        f"stopped after {_minutes(elapsed_s)}: the run's time limit of {run_limit:g} minutes "
        "(timeout_minutes, or --timeout) was reached and the kernel was stopped. Raise the limit "
        "if the data has grown; if this step usually takes seconds, something is stuck."
    )


def _cell_timeout(ctx: RunContext) -> str:
    """Cause of a cell that passed the per-cell time limit."""
    return (
        f"a cell ran longer than the per-cell limit of {ctx.limits[1]:g} minutes "
        "(cell_timeout_minutes); the kernel was stopped. Raise the limit in the params file "
        "if the data has grown; if this step usually takes seconds, something is stuck."
    )


def _kind(exc: BaseException, ctx: RunContext) -> str:
    """Which kind of failure `exc` is: disk, user, cell, timeout, cell-timeout, kernel, other."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    cell_error = isinstance(exc, pm.PapermillExecutionError)
    if is_disk_full(exc) or (cell_error and "No space left" in str(exc.evalue)):
        return "disk"
    if cell_error:
        return "user" if exc.ename in USER_ERRORS else "cell"
    if ctx.timed_out:
        return "timeout"
    if isinstance(exc, CellTimeoutError):
        return "cell-timeout"
    if isinstance(exc, DeadKernelError) or "Kernel died" in str(exc):
        return "kernel"
    return "other"


def explain(exc: BaseException, ctx: RunContext) -> Failure:
    """Turn what stopped the notebook into a `Failure` (never raises)."""
    index = getattr(exc, "cell_index", None)
    step = notebook_step(ctx.notebook, ctx.cell_index if index is None else index)
    kind = _kind(exc, ctx)
    failed = {"status": "failed", "exit_code": EXIT_FAILED, "step": step}
    causes = {
        "disk": lambda: disk_full_message(ctx.output_root, need=ctx.space_needed),
        "cell": lambda: f"{exc.ename}: {exc.evalue}",
        "timeout": lambda: timeout_cause(ctx.limits[0], ctx.elapsed_s),
        "cell-timeout": lambda: _cell_timeout(ctx),
        "kernel": lambda: _dead_kernel(ctx),
        "other": lambda: (
            str(exc) if isinstance(exc, LcstatsError) else f"{type(exc).__name__}: {exc}"
        ),
    }
    if kind == "user":
        return Failure("invalid", EXIT_INVALID, step, str(exc.evalue))
    return Failure(**failed, cause=causes[kind](), discard=kind == "disk")


def failure_page(evaluation: str, run_id: str, failure: Failure) -> str:
    """A small self-contained HTML page saying what failed, for the run folder."""
    e = html.escape
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Run failed: {e(evaluation)}</title></head>"
        "<body style='font-family:sans-serif;max-width:50rem;margin:2rem auto'><main>"
        f"<h1>The evaluation '{e(evaluation)}' did not complete</h1>"
        f"<p><strong>Step:</strong> {e(failure.step)}</p>"
        f"<p><strong>Cause:</strong></p><pre style='white-space:pre-wrap'>{e(failure.cause)}</pre>"
        f"<p>Run <code>{e(run_id)}</code>. The last successful report is unchanged. The partly "
        "executed notebook is in this folder for analysts.</p></main></body></html>"
    )
