"""One evaluation run: check inputs, execute the notebook with papermill, write the run folder.

A run holds its evaluation's lock, builds its folder under a hidden ``.partial`` name (see
`lcstats.running.run_folder`) and renames it into place when complete; ``latest`` points only to
successful runs. Every attempt is recorded in the ledger: invalid, failed and interrupted ones
too. Whatever stops a run (bad input, an error in a cell, a dead kernel, a time limit, a full
disk, Ctrl-C) ends it with a message, an exit code, the last good report untouched and no
learner data left in a hidden folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lcstats import __version__
from lcstats.core.allocator import hand_back_freed_memory, keep_freed_memory
from lcstats.core.errors import InputError, Interrupted, LcstatsError
from lcstats.core.files import dumps_json, write_atomic, write_json
from lcstats.core.resources import input_memory_need
from lcstats.core.threads import STEP_THREAD
from lcstats.data.inputs import (
    file_hashes,
    hand_over,
    input_hashes,
    params_fingerprint,
    read_inputs,
    reads_a_database,
)
from lcstats.params import INPUT_KEYS, table_location
from lcstats.running.failures import (
    HANDING_OVER,
    READING,
    Failure,
    RunContext,
    explain,
    failure_page,
    timeout_cause,
)
from lcstats.running.kernel import KERNEL_NAME, NOTEBOOK_DIR, KernelBusy, RunKernel
from lcstats.running.ledger import (
    LedgerError,
    RunRecord,
    last_success,
    record_run,
    recorded_run_ids,
)
from lcstats.running.locks import EvaluationBusy, evaluation_lock
from lcstats.running.run_folder import (
    OUTPUT_ALLOWANCE,
    DiskFull,
    RunFolder,
    check_space,
    check_writable,
    disk_full_message,
    disk_is_full,
    is_disk_full,
    new_run_folder,
    point_latest,
    remove_stale_partials,
    run_id_base,
    space_needed,
)
from lcstats.running.watchdog import Watchdog

# papermill -> nbformat -> jsonschema imports `rfc3987_syntax` and `isoduration` when they are
# installed (JupyterLab's event schemas bring them) to check URI and duration formats: the first
# builds its grammars on import (1.8 s of every run's start, measured), the second imports `arrow`
# and its locales (0.11 s). nbformat's schemas use neither format, so processes that run
# evaluations go without them.
sys.modules.setdefault("rfc3987_syntax", None)
sys.modules.setdefault("isoduration", None)

if TYPE_CHECKING:
    import pandas as pd

    from lcstats.data.load import Programme
    from lcstats.params import Params

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EVALUATION_NOTEBOOK = "evaluation.ipynb"
HANDOVER_FILE = ".validated-inputs.pickle"
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
T = TypeVar("T")
MB = 1e6


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run: its status, exit code, folder and a message for people."""

    evaluation: str
    status: str  # succeeded | failed | invalid | skipped | busy
    exit_code: int
    run_dir: Path | None
    message: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True)
class RunOptions:
    """How to run: where to write, whether to skip unchanged inputs, limits, queueing."""

    output_dir: Path = Path("reports")
    skip_unchanged: bool = False
    notebook: Path | None = None
    timeout_minutes: float | None = None  # overrides the params file's
    wait: bool = False
    pdf: bool = False  # also print report.pdf
    notify: Callable[[str], None] = field(
        default=lambda line: print(line, file=sys.stderr, flush=True), repr=False
    )


def code_fingerprint() -> str:
    """SHA-256 over the package's source, templates and notebooks: what produced the numbers."""
    h = hashlib.sha256(__version__.encode())
    files = sorted(PACKAGE_DIR.rglob("*.py")) + sorted(PACKAGE_DIR.rglob("templates/*"))
    files += sorted(NOTEBOOK_DIR.glob("*.ipynb")) if NOTEBOOK_DIR.exists() else []
    for path in files:
        h.update(path.relative_to(PACKAGE_DIR.parent).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def inputs_fingerprint(hashes: dict[str, str]) -> str:
    """SHA-256 over the input files' own SHA-256 values."""
    return hashlib.sha256(dumps_json(hashes).encode()).hexdigest()


ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+\-]*[A-Za-z0-9]|[A-Za-z0-9]")
DATA_URI = re.compile(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+")


def identifier_leaks(report_html: str, identifiers: Iterable[str] | pd.Series) -> list[str]:
    """Identifiers (learner ids, manager ids) that appear as whole words in a report's text.

    Matching ignores case; e-mail addresses count as one word, and identifiers containing spaces
    (names) are searched as plain text. Images (data URIs) are skipped. Identifiers shorter than 3
    characters or made only of digits cannot be told apart from numbers and are not searched.
    The report's words are looked up among the identifiers (a million take about 0.5 s, most of
    it in `SearchableIds`, which a run prepares while its notebook runs).
    """
    return SearchableIds.of(identifiers).leaks(report_html)


@dataclass(frozen=True)
class SearchableIds:
    """The identifiers the privacy gate looks for, with their case-folded search keys."""

    ids: pd.Series
    keys: pd.Series

    @classmethod
    def of(cls, identifiers: Iterable[str] | pd.Series) -> SearchableIds:
        """Keep the identifiers that can be told apart from numbers and words (see
        `identifier_leaks`), each with its key."""
        import pandas as pd

        ids = pd.Series(
            list(identifiers) if not isinstance(identifiers, pd.Series) else identifiers
        )
        ids = ids.astype("str")
        keys = ids.str.strip().str.casefold()
        searchable = (keys.str.len() >= 3) & ~keys.str.isdigit()
        return cls(ids[searchable], keys[searchable])

    def leaks(self, report_html: str) -> list[str]:
        """The identifiers that appear in `report_html` (see `identifier_leaks`), sorted."""
        ids, keys = self.ids, self.keys
        text = html.unescape(DATA_URI.sub(" ", report_html))
        tokens = {t.casefold() for t in ID_TOKEN.findall(text)}
        found = set(ids[keys.isin(tokens)])
        # identifiers with spaces (names) are looked for as plain text
        spaced = keys.str.contains(" ", regex=False)
        lowered = text.casefold()
        found |= {i for key, i in zip(keys[spaced], ids[spaced], strict=True) if key in lowered}
        return sorted(found)


def preflight(params: Params) -> tuple[dict[str, str], Programme]:
    """Check the input tables against the contract (before the notebook runs).

    Returns what identifies each input (a file's SHA-256, a database table's rows'
    fingerprint), and the validated programme.
    """
    from lcstats.estimation.designs import check_design

    programme = read_inputs(params)
    check_design(params, programme)
    return input_hashes(programme), programme


def _identifiers(programme: Programme) -> pd.Series:
    """Learner and manager ids: what the privacy gate looks for in the report."""
    import pandas as pd

    learners = programme.learners
    return pd.concat([learners["learner_id"], learners["manager_id"].drop_duplicates()])


def _provenance() -> tuple[dict[str, Any], dict[str, str]]:
    """The code's git state and the versions of the packages that shape the numbers."""
    from lcstats.core.provenance import git_state, package_versions

    with ThreadPoolExecutor(1) as pool:
        git = pool.submit(git_state)
        versions = package_versions()
        return git.result(), versions


def _tables(programme: Programme) -> tuple[pd.DataFrame, ...]:
    """The three validated tables."""
    return (programme.learners, programme.action_items, programme.skill_assessments)


def _tables_bytes(programme: Programme) -> int:
    """Memory the validated tables take: about what the hand-over writes."""
    return int(sum(f.memory_usage(deep=True).sum() for f in _tables(programme)))


def time_limits(params: Params, override: float | None = None) -> tuple[float, float]:
    """The run's and each cell's time limit, in minutes.

    The params' ``timeout_minutes`` (or `override`) and ``cell_timeout_minutes``; by default 30
    minutes plus 1 per 10 MB, and 20 plus 1 per 20 MB, of the memory the inputs need (see
    `lcstats.core.resources.input_memory_need`): generous for a scheduled run, and growing
    with the data.
    """
    files = {t: table_location(getattr(params, t)) for t in INPUT_KEYS if getattr(params, t)}
    need = input_memory_need({t: path for t, path in files.items() if path})
    run = override or params.timeout_minutes or 30 + need / (10 * MB)
    cell = params.cell_timeout_minutes or 20 + need / (20 * MB)
    return float(run), float(min(cell, run))


class RunTimedOut(Exception):
    """The run's time limit passed while its own process was waiting for a step."""


def within(seconds: float, work: Callable[[], T]) -> T:
    """Call `work` in a daemon thread and wait at most `seconds` for it (Ctrl-C interrupts the
    wait). Raises `RunTimedOut` when it has not finished: a stuck read never holds the run.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=STEP_THREAD, daemon=True)
    thread.start()
    thread.join(max(seconds, 0.0))
    if thread.is_alive():
        raise RunTimedOut
    if "error" in box:
        raise box["error"]
    return box["value"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_evaluation(
    params_path: str | Path,
    *,
    output_dir: str | Path = "reports",
    skip_unchanged: bool = False,
    notebook: str | Path | None = None,
    timeout_minutes: float | None = None,
    wait: bool = False,
    pdf: bool = False,
    kernel: RunKernel | None = None,
) -> RunOutcome:
    """Run one evaluation end to end and return what happened (never raises for bad input).

    The notebook's kernel is started first and imports the statistics libraries while this
    process checks the parameters and inputs; the validated tables are handed to the kernel, so
    the data is read once.

    Parameters
    ----------
    params_path : path
        The evaluation's YAML parameters.
    output_dir : path
        Root of the run folders (``<output_dir>/<evaluation>/<run_id>/``) and of the ledger.
    skip_unchanged : bool
        Do not run again when inputs, parameters and code match the last successful run.
    notebook : path, optional
        Evaluation notebook to execute (default ``notebooks/evaluation.ipynb``).
    timeout_minutes : float, optional
        Time limit of the whole run, overriding the params file's ``timeout_minutes``.
    wait : bool
        When the evaluation is already running, wait for that run instead of refusing.
    pdf : bool
        Also print the report to ``report.pdf`` (headless Chromium).
    kernel : RunKernel, optional
        The notebook's kernel, already starting in `NOTEBOOK_DIR` (the command line starts it
        before importing the rest); by default the run starts one. The run stops it.

    Raises
    ------
    Interrupted, KeyboardInterrupt
        After cleaning up, when the run was stopped by a signal; the message says what was left.
    """
    keep_freed_memory()  # given back once the tables are handed over (`Attempt._execute`)
    options = RunOptions(
        Path(output_dir).resolve(),
        skip_unchanged,
        Path(notebook) if notebook else None,
        timeout_minutes,
        wait,
        pdf=pdf,
    )
    return Attempt(Path(params_path), options, kernel).run()


class Attempt:
    """One attempt at a run: the state its steps share, and the steps in order."""

    def __init__(
        self, params_path: Path, options: RunOptions, kernel: RunKernel | None = None
    ) -> None:
        self.params_path, self.options = params_path, options
        self.root = options.output_dir
        self.started, self.t0 = _now(), time.perf_counter()
        self.nb_in = options.notebook or NOTEBOOK_DIR / EVALUATION_NOTEBOOK
        self.kernel = kernel
        self.params: Params | None = None
        self.folder: RunFolder | None = None
        self.fingerprints: dict[str, str] = {}
        self.hashes: dict[str, str] = {}
        self.sources: dict[str, Any] = {}
        self.activity_source = ""
        self.cell_index: int | None = None  # the last notebook cell that began
        self.limits: tuple[float, float] = (0.0, 0.0)  # run and cell time limits, minutes
        self.timed_out = False
        self.provenance: Future[tuple[dict[str, Any], dict[str, str]]] | None = None

    # -- the run, top to bottom ------------------------------------------------------------

    def run(self) -> RunOutcome:
        """Do the attempt; always stop the kernel; record interrupts before re-raising them."""
        if self.kernel is None and not self.options.skip_unchanged:
            self.kernel = RunKernel(self.nb_in.parent)  # it warms up while we check the inputs
        try:
            return self._run()
        except (KeyboardInterrupt, Interrupted) as exc:
            raise self._interrupted(exc) from None
        except OSError as exc:  # a write the steps below do not expect to fail (lock, folder)
            return self._write_failed(exc)
        finally:
            if self.kernel is not None:
                self.kernel.stop()

    def _run(self) -> RunOutcome:
        """Parameters, output folder, lock; then the locked part."""
        try:
            self.params = self._load_params()
            check_writable(self.root)
        except InputError as exc:
            return self._invalid(exc.describe())
        except DiskFull as exc:
            return self._end("failed", EXIT_FAILED, str(exc), record=False)
        self.limits = time_limits(self.params, self.options.timeout_minutes)
        eval_root = self.root / self.params.evaluation
        try:
            with evaluation_lock(eval_root, wait=self.options.wait, on_wait=self.options.notify):
                self._tidy(eval_root)
                return self._locked(eval_root)
        except EvaluationBusy as exc:
            return self._end("busy", EXIT_FAILED, str(exc), record=False)

    def _locked(self, eval_root: Path) -> RunOutcome:
        """Skip check, pre-flight, space check, folder, notebook, publication."""
        skipped = self._skip_if_unchanged()
        if skipped is not None:
            return skipped
        if self.kernel is None:
            self.kernel = RunKernel(self.nb_in.parent)
        try:
            self.hashes, programme = within(self._remaining(), lambda: preflight(self.params))
        except InputError as exc:
            return self._invalid(exc.describe())
        except RunTimedOut:
            cause = timeout_cause(self.limits[0], self._elapsed())
            return self._end("failed", EXIT_FAILED, f"failed at step '{READING}': {cause}")
        self.sources = programme.sources
        self.activity_source = programme.activity.source if programme.activity else ""
        if self.options.skip_unchanged and reads_a_database(self.params):  # rows known only now
            skipped = self._skip_if_unchanged(self.hashes)
            if skipped is not None:
                return skipped
        need = space_needed(_tables_bytes(programme))
        try:
            check_space(self.root, need=need)
        except DiskFull as exc:
            return self._end("failed", EXIT_FAILED, str(exc))
        self.fingerprints["inputs"] = inputs_fingerprint(self.hashes)
        tag = hashlib.sha256(
            (self.fingerprints["inputs"] + self.fingerprints["parameters"]).encode()
        )
        self.folder = new_run_folder(
            eval_root, self.started, tag.hexdigest(), recorded=self._recorded(tag.hexdigest())
        )
        self._record("running", "")
        held = [programme]  # the only reference: `_execute` frees the tables once handed over
        del programme
        return self._finish(self._execute(held, need), need)

    def _recorded(self, tag: str) -> set[str]:
        """Run ids of this second and tag that the ledger already holds (none if unreadable)."""
        try:
            return recorded_run_ids(
                self.root, self.params.evaluation, run_id_base(self.started, tag)
            )
        except LedgerError:
            return set()

    def _write_failed(self, exc: OSError) -> RunOutcome:
        """A file or folder of the run could not be written: remove the run's folder, say why."""
        if self.folder is not None:
            self.folder.discard()
        if is_disk_full(exc):
            cause = disk_full_message(self.root, need=OUTPUT_ALLOWANCE)
        else:
            cause = f"writing {exc.filename or self.root} failed ({exc.strerror or exc})."
        return self._end("failed", EXIT_FAILED, cause + (_REMOVED if self.folder else ""))

    def _remaining(self) -> float:
        """Seconds left before the run's time limit."""
        return self.limits[0] * 60 - self._elapsed()

    def _load_params(self) -> Params:
        """Read and check the params file (InputError when invalid)."""
        from lcstats.params import load_params

        params = load_params(self.params_path)
        self.fingerprints = {"parameters": params_fingerprint(params), "code": code_fingerprint()}
        return params

    def _name(self) -> str:
        """The evaluation's name, or the params file's stem before the params are read."""
        return self.params.evaluation if self.params else self.params_path.stem

    def _tidy(self, eval_root: Path) -> None:
        """Under the lock: remove folders of runs that were killed, close their ledger records."""
        from lcstats.running.ledger import unfinished_runs

        for path in remove_stale_partials(eval_root):
            self.options.notify(
                f"removed {path}: the unfinished folder of a run that was stopped (it could hold "
                "learner data)"
            )
        for record in unfinished_runs(self.root, self.params.evaluation):
            self._safe_record(
                RunRecord(
                    **{
                        **record.__dict__,
                        "status": "interrupted",
                        "message": "the run's process ended before it finished (killed?)",
                        "pid": None,
                    }
                )
            )

    def _skip_if_unchanged(self, hashes: dict[str, str] | None = None) -> RunOutcome | None:
        """The 'skipped' outcome when inputs, parameters and code match the last success.

        Without `hashes`, the input files are hashed (databases: not yet known, no skip).
        """
        if not self.options.skip_unchanged:
            return None
        last = last_success(self.root, self.params.evaluation)
        hashes = hashes or (file_hashes(self.params) if last else None)
        if not (last and hashes):
            return None
        now = (
            inputs_fingerprint(hashes),
            self.fingerprints["parameters"],
            self.fingerprints["code"],
        )
        if now != (last.inputs_sha256, last.params_sha256, last.code_version):
            return None
        run_dir = Path(last.run_dir) if last.run_dir else None
        message = f"unchanged since run {last.run_id}"
        return RunOutcome(self._name(), "skipped", EXIT_OK, run_dir, message, self._elapsed())

    def _execute(self, held: list[Programme], need: int) -> Failure | None:
        """Hand the tables over and run the notebook; a `Failure` when anything stops it.

        `held` holds the only reference to the validated tables: they are freed (and the memory
        handed back) before the notebook runs, so that the data are in memory once, in the
        kernel.
        """
        staging = self.folder.staging
        handover = staging / HANDOVER_FILE
        from lcstats.data.load import RELEASE_AFTER_VALUES, release_memory

        programme = held.pop()
        ids = _identifiers(programme)
        large = sum(f.size for f in _tables(programme)) >= RELEASE_AFTER_VALUES
        watchdog = Watchdog(self.kernel)
        try:
            hand_over(programme, self.params, handover)
        except OSError as exc:
            handover.unlink(missing_ok=True)
            cause = disk_full_message(self.root, need=need) if is_disk_full(exc) else str(exc)
            return Failure("failed", EXIT_FAILED, HANDING_OVER, cause, discard=True)
        del programme  # the kernel reads its own copy: one copy of the data in memory
        if large:  # a collection takes 0.1 s here: more than it frees from small tables
            release_memory()
            hand_back_freed_memory()
        # while the notebook runs, this process prepares what it needs afterwards
        meanwhile = ThreadPoolExecutor(1, thread_name_prefix="lcstats-meanwhile")
        self.provenance = meanwhile.submit(_provenance)
        gate = meanwhile.submit(SearchableIds.of, ids)
        del ids
        try:
            with watchdog:
                self._papermill(staging, handover, cell_limit=self.limits[1])
            self._check_report(staging / "report.html", gate.result())
        except Exception as exc:  # every failure becomes a message: see failures.explain
            if isinstance(exc, KernelBusy):  # the run's time limit: stop the kernel
                self.timed_out = True
                self.kernel.kill()
            self.kernel.settle()  # let papermill finish with the notebook before we touch it
            return explain(exc, self._context(need, watchdog))
        finally:
            handover.unlink(missing_ok=True)
            meanwhile.shutdown(wait=False)
        return self._print_pdf(staging / "report.html") if self.options.pdf else None

    def _papermill(self, staging: Path, handover: Path, *, cell_limit: float) -> None:
        """Execute the evaluation notebook in the run's kernel, then stop the kernel."""
        import papermill as pm

        parameters = self.params.notebook_parameters() | {
            "output_dir": str(staging),
            "run_id": self.folder.run_id,
            "prepared_inputs": str(handover),
            "previous_results": self._previous_results(),
        }
        self.kernel.run(
            timeout=self._remaining(),
            work=lambda km: pm.execute_notebook(
                str(self.nb_in),
                str(staging / self.nb_in.name),
                parameters=parameters,
                kernel_name=KERNEL_NAME,
                km=km,
                language="python",
                cwd=str(self.nb_in.parent),
                progress_bar=False,
                log_output=False,
                execution_timeout=max(1, round(cell_limit * 60)),
                on_cell_start=self._cell_started,
            ),
        )
        self.kernel.stop()

    def _previous_results(self) -> str | None:
        """The results.json of the evaluation's last successful run (None: this is the first)."""
        try:
            last = last_success(self.root, self.params.evaluation)
        except LedgerError:
            return None
        if last is None or not last.run_dir:
            return None
        path = Path(last.run_dir) / "results.json"
        return str(path) if path.is_file() else None

    def _print_pdf(self, report: Path) -> Failure | None:
        """report.pdf beside report.html, for circulation; a `Failure` when it cannot be made."""
        from lcstats.reporting.pdf import write_pdf

        try:
            write_pdf(
                report, report.with_suffix(".pdf"), title=self.params.title, date=self.params.as_of
            )
        except Exception as exc:  # no browser, a browser that crashed, a full disk
            cause = str(exc) if isinstance(exc, LcstatsError) else f"{type(exc).__name__}: {exc}"
            return Failure("failed", EXIT_FAILED, "printing the report to PDF", cause)
        return None

    def _cell_started(self, cell: Any, cell_index: int) -> None:
        """nbclient's hook: remember which cell is running (for failure messages)."""
        self.cell_index = cell_index

    def _check_report(self, report: Path, ids: SearchableIds) -> None:
        """The notebook wrote a report and it shows no identifier (the privacy gate)."""
        if not report.is_file():
            raise LcstatsError("the notebook finished without writing report.html")
        leaks = ids.leaks(report.read_text(encoding="utf-8"))
        if leaks:
            report.rename(report.with_name("report.blocked.html"))
            raise LcstatsError(
                f"privacy gate: the report shows {len(leaks)} learner or manager identifier(s) "
                "(for example a value of learner_id); it was not published. Check labels and "
                "text built from the data."
            )

    def _context(self, need: int, watchdog: Watchdog) -> RunContext:
        """What `explain` needs to word a failure."""
        executed = self.folder.staging / self.nb_in.name
        return RunContext(
            notebook=executed if executed.is_file() else self.nb_in,
            cell_index=self.cell_index,
            output_root=self.root,
            space_needed=need,
            memory=watchdog.memory,
            timed_out=self.timed_out,
            limits=self.limits,
            elapsed_s=self._elapsed(),
            kernel_exit=self.kernel.exit_code if self.kernel else None,
        )

    def _finish(self, failure: Failure | None, need: int) -> RunOutcome:
        """Write the failure page and run.json, publish (or remove) the folder, point latest."""
        if failure is not None and failure.discard:  # a full disk: free what the run took
            self.folder.discard()
            cause = disk_full_message(self.root, need=need)
            message = f"failed at step '{failure.step}': {cause}{_REMOVED}"
            return self._end(failure.status, failure.exit_code, message)
        status = failure.status if failure else "succeeded"
        message = failure.message if failure else ""
        try:
            if failure is not None:
                page = failure_page(self.params.evaluation, self.folder.run_id, failure)
                write_atomic(self.folder.staging / "failure.html", page)
            write_json(self.folder.staging / "run.json", self._run_json(status, message))
            final = self.folder.publish()
        except OSError as exc:
            self.folder.discard()
            cause = disk_full_message(self.root, need=need) if is_disk_full(exc) else str(exc)
            return self._end(
                "failed", EXIT_FAILED, f"writing the run folder failed: {cause}{_REMOVED}"
            )
        if failure is not None:
            return self._end(status, failure.exit_code, message, run_dir=final)
        try:
            point_latest(final.parent, final.name)
        except OSError as exc:
            cause = disk_full_message(self.root, need=1) if is_disk_full(exc) else str(exc)
            message = f"{final} was written but 'latest' could not be moved to it: {cause}"
            return self._end("failed", EXIT_FAILED, message, run_dir=final)
        return self._end("succeeded", EXIT_OK, "", run_dir=final)

    def _run_json(self, status: str, message: str) -> dict[str, Any]:
        """Provenance of the run: parameters, inputs, fingerprints, versions."""
        git, versions = self.provenance.result() if self.provenance else _provenance()
        return {
            "evaluation": self.params.evaluation,
            "run_id": self.folder.run_id,
            "status": status,
            "message": message,
            "started": self.started.isoformat(timespec="seconds"),
            "ended": _now().isoformat(timespec="seconds"),
            "duration_s": round(self._elapsed(), 3),
            "parameters": self.params.model_dump(mode="json"),
            "params_file": str(self.params_path.resolve()),
            "inputs": self._inputs(),
            "fingerprints": self.fingerprints,
            "lcstats_version": __version__,
            "git": git,
            "versions": versions,
            "kernel": KERNEL_NAME,
        }

    def _inputs(self) -> dict[str, dict[str, Any]]:
        """run.json's inputs: where each came from (no credentials), rows, SHA-256/fingerprint."""
        inputs = {
            t: {
                "source": s.path,
                "kind": s.kind,
                "rows_read": s.rows_read,
                "sha256": s.sha256,
                "rows_fingerprint": s.fingerprint,
            }
            for t, s in self.sources.items()
        }
        if "activity" in self.hashes:
            inputs["activity"] = {
                "source": str(self.params.activity),
                "sha256": self.hashes["activity"],
            }
        return inputs

    # -- endings ---------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _run_id(self) -> str:
        """The run's id; attempts that never got a folder get one from the time and process."""
        if self.folder is not None:
            return self.folder.run_id
        return f"{self.started:%Y%m%dT%H%M%S%fZ}-attempt-{os.getpid()}"

    def _record(self, status: str, message: str, run_dir: Path | None = None) -> str:
        """Write the attempt's ledger record; return a note when the ledger cannot be written."""
        record = RunRecord(
            self._name(),
            self._run_id(),
            status,
            self.started.isoformat(timespec="seconds"),
            round(self._elapsed(), 3),
            self.fingerprints.get("inputs"),
            self.fingerprints.get("parameters"),
            self.fingerprints.get("code"),
            str(run_dir) if run_dir else None,
            message,
            os.getpid() if status == "running" else None,
        )
        return self._safe_record(record)

    def _safe_record(self, record: RunRecord) -> str:
        """Record, turning a ledger that cannot be written into a note (never raises)."""
        try:
            record_run(self.root, record)
        except LedgerError as exc:
            full = is_disk_full(exc) or disk_is_full(self.root)
            cause = disk_full_message(self.root, need=1) if full else str(exc)
            return f"the run could not be recorded in the ledger: {cause}"
        return ""

    def _end(
        self,
        status: str,
        exit_code: int,
        message: str,
        *,
        run_dir: Path | None = None,
        record: bool = True,
    ) -> RunOutcome:
        """Record the attempt and return its outcome; a ledger failure fails the run."""
        note = self._record(status, message, run_dir) if record else ""
        if note:
            message = f"{message}\n{note}" if message else note
            exit_code = exit_code or EXIT_FAILED
            status = "failed" if status == "succeeded" else status
        return RunOutcome(self._name(), status, exit_code, run_dir, message, self._elapsed())

    def _invalid(self, message: str) -> RunOutcome:
        """An attempt stopped by invalid parameters or inputs (exit 2), recorded as such."""
        return self._end("invalid", EXIT_INVALID, message)

    def _interrupted(self, exc: BaseException) -> Interrupted:
        """Clean up after Ctrl-C or SIGTERM, record it, and say in one line what is left."""
        with _signals_ignored():
            if self.kernel is not None:
                logging.disable(logging.CRITICAL)  # Jupyter's own lines about the kernel we stop
                try:
                    self.kernel.kill()
                    self.kernel.stop()
                finally:
                    logging.disable(logging.NOTSET)
            left = "nothing was left behind"
            if self.folder is not None and self.folder.staging.exists():
                self.folder.discard()
                left = (
                    f"the unfinished run folder {self.folder.staging.name} (it held learner data) "
                    "was removed"
                )
            name = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
            message = (
                f"interrupted by {name}: the kernel was stopped and {left}; nothing was "
                "published and the last good report is unchanged. Nothing needs deleting."
            )
            if self.params is not None:
                self._record("interrupted", message)
        signum = signal.SIGINT if isinstance(exc, KeyboardInterrupt) else exc.signum
        return Interrupted(signum, message)


_REMOVED = " The run's unfinished folder was removed (it held learner data)."


class _signals_ignored:
    """Ignore SIGINT and SIGTERM while cleaning up (main thread only)."""

    def __enter__(self) -> None:
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
