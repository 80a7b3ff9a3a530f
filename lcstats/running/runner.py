"""One evaluation run: check inputs, execute the notebook with papermill, write the run folder.

A run folder ``<output>/<evaluation>/<run_id>/`` is built under a hidden ``.partial`` name and
renamed into place when complete, so nothing half-written is ever visible under its final name;
``latest`` points only to successful runs. Every run is recorded in the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lcstats import __version__
from lcstats.core.errors import InputError, LcstatsError
from lcstats.core.files import dumps_json, sha256_file, write_atomic, write_json
from lcstats.core.provenance import git_state, package_versions
from lcstats.data.inputs import hand_over, params_fingerprint, read_inputs
from lcstats.running.kernel import KERNEL_NAME, start_kernel, stop_kernel
from lcstats.running.ledger import RunRecord, last_success, record_run

# papermill -> nbformat -> jsonschema imports `rfc3987_syntax` when it is installed (JupyterLab's
# event schemas bring it) and builds its grammars on import: 1.8 s of every run's start, measured.
# nbformat's schemas use no URI formats, so processes that run evaluations go without it.
sys.modules.setdefault("rfc3987_syntax", None)

if TYPE_CHECKING:
    from lcstats.data.load import Programme
    from lcstats.params import Params

PACKAGE_DIR = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = PACKAGE_DIR.parent / "notebooks"
EVALUATION_NOTEBOOK = "evaluation.ipynb"
HANDOVER_FILE = ".validated-inputs.pickle"
USER_ERRORS = ("InputError", "EstimationError")

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run: its status, exit code, folder and a message for people."""

    evaluation: str
    status: str  # succeeded | failed | invalid | skipped
    exit_code: int
    run_dir: Path | None
    message: str = ""
    duration_s: float = 0.0


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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_run_dir(root: Path, stamp: dt.datetime, tag: str) -> tuple[str, Path]:
    base = f"{stamp:%Y%m%dT%H%M%SZ}-{tag[:8]}"
    run_id, n = base, 1
    while (root / run_id).exists() or (root / f".{run_id}.partial").exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id, root / f".{run_id}.partial"


def _point_latest(eval_root: Path, run_id: str) -> None:
    link = eval_root / "latest"
    tmp = eval_root / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id, target_is_directory=True)
    os.replace(tmp, link)


ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+\-]*[A-Za-z0-9]|[A-Za-z0-9]")
DATA_URI = re.compile(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+")


def identifier_leaks(report_html: str, identifiers: set[str]) -> list[str]:
    """Identifiers (learner ids, manager ids) that appear as whole words in a report's text.

    Matching ignores case; e-mail addresses count as one word, and identifiers containing spaces
    (names) are searched as plain text. Images (data URIs) are skipped. Identifiers shorter than 3
    characters or made only of digits cannot be told apart from numbers and are not searched.
    """
    searchable = {
        i.strip().casefold(): i
        for i in identifiers
        if len(i.strip()) >= 3 and not i.strip().isdigit()
    }
    text = html.unescape(DATA_URI.sub(" ", report_html))
    tokens = {t.casefold() for t in ID_TOKEN.findall(text)}
    found = {searchable[t] for t in tokens & set(searchable)}
    # identifiers with spaces (names) are looked for as plain text
    found |= {i for key, i in searchable.items() if " " in key and key in text.casefold()}
    return sorted(found)


def _failure_step(nb_path: Path, cell_index: int | None) -> str:
    """The heading of the notebook section in which a cell failed."""
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "the evaluation notebook"
    heading = "setting up"
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            src = "".join(cell.get("source", ""))
            for line in src.splitlines():
                if line.startswith("#"):
                    heading = line.lstrip("# ").strip()
                    break
        if cell_index is not None and i >= cell_index:
            break
    return heading


def _failure_page(evaluation: str, run_id: str, step: str, cause: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Run failed: {html.escape(evaluation)}</title></head><body style='font-family:sans-serif;max-width:50rem;margin:2rem auto'>"
        f"<h1>The evaluation '{html.escape(evaluation)}' did not complete</h1>"
        f"<p><strong>Step:</strong> {html.escape(step)}</p>"
        f"<p><strong>Cause:</strong></p><pre style='white-space:pre-wrap'>{html.escape(cause)}</pre>"
        f"<p>Run <code>{html.escape(run_id)}</code>. The last successful report is unchanged. The partly executed "
        "notebook is in this folder for analysts.</p></body></html>"
    )


def preflight(params: Params) -> tuple[dict[str, str], Programme]:
    """Check the input tables against the contract (before the notebook runs).

    Returns the input files' SHA-256 by table, and the validated programme.
    """
    programme = read_inputs(params)
    return {t: s.sha256 for t, s in programme.sources.items()}, programme


def _input_hashes(params: Params) -> dict[str, str] | None:
    """SHA-256 of the three input files, or None when one cannot be read."""
    try:
        return {
            t: sha256_file(getattr(params, t))
            for t in ("learners", "action_items", "skill_assessments")
        }
    except OSError:
        return None


def _identifiers(programme: Programme) -> set[str]:
    learners = programme.learners
    return set(learners["learner_id"].astype(str)) | set(learners["manager_id"].astype(str))


def _provenance() -> tuple[dict, dict]:
    return git_state(), package_versions()


def run_evaluation(
    params_path: str | Path,
    *,
    output_dir: str | Path = "reports",
    skip_unchanged: bool = False,
    notebook: str | Path | None = None,
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
    """
    started = _now()
    t0 = time.perf_counter()
    nb_in = Path(notebook) if notebook else NOTEBOOK_DIR / EVALUATION_NOTEBOOK
    km = None if skip_unchanged else start_kernel(nb_in.parent)
    try:
        return _run(params_path, Path(output_dir).resolve(), skip_unchanged, nb_in, km, started, t0)
    finally:
        if km is not None:
            stop_kernel(km)


def _run(params_path, root, skip_unchanged, nb_in, km, started, t0) -> RunOutcome:  # noqa: PLR0915
    """`run_evaluation`'s body; `km` is the started kernel (None when it may be skipped)."""
    from lcstats.params import load_params

    try:
        params = load_params(params_path)
    except InputError as exc:
        name = Path(params_path).stem
        return RunOutcome(
            name, "invalid", EXIT_INVALID, None, exc.describe(), time.perf_counter() - t0
        )
    params_sha, code_sha = params_fingerprint(params), code_fingerprint()
    if skip_unchanged:
        last = last_success(root, params.evaluation)
        hashes = _input_hashes(params) if last else None
        if (
            last
            and hashes
            and (last.inputs_sha256, last.params_sha256, last.code_version)
            == (
                inputs_fingerprint(hashes),
                params_sha,
                code_sha,
            )
        ):
            return RunOutcome(
                params.evaluation,
                "skipped",
                EXIT_OK,
                Path(last.run_dir) if last.run_dir else None,
                f"unchanged since run {last.run_id}",
                time.perf_counter() - t0,
            )
        km = start_kernel(nb_in.parent)
    try:
        hashes, programme = preflight(params)
    except InputError as exc:
        return RunOutcome(
            params.evaluation,
            "invalid",
            EXIT_INVALID,
            None,
            exc.describe(),
            time.perf_counter() - t0,
        )
    inputs_sha = inputs_fingerprint(hashes)
    eval_root = root / params.evaluation
    eval_root.mkdir(parents=True, exist_ok=True)
    run_id, staging = _new_run_dir(
        eval_root, started, hashlib.sha256((inputs_sha + params_sha).encode()).hexdigest()
    )
    staging.mkdir()
    handover = hand_over(programme, params, staging / HANDOVER_FILE)
    ids = _identifiers(programme)
    del programme  # the kernel reads its own copy; keep one copy of the data in memory
    nb_out = staging / nb_in.name
    status, exit_code, message = "succeeded", EXIT_OK, ""
    with ThreadPoolExecutor(1) as pool:
        provenance = pool.submit(_provenance)  # while the kernel works
        import papermill as pm

        try:
            pm.execute_notebook(
                str(nb_in),
                str(nb_out),
                parameters=params.notebook_parameters()
                | {"output_dir": str(staging), "run_id": run_id, "prepared_inputs": str(handover)},
                kernel_name=KERNEL_NAME,
                km=km,
                language="python",
                cwd=str(nb_in.parent),
                progress_bar=False,
                log_output=False,
            )
            stop_kernel(km)
            report = staging / "report.html"
            if not report.is_file():
                raise LcstatsError("the notebook finished without writing report.html")
            leaks = identifier_leaks(report.read_text(encoding="utf-8"), ids)
            if leaks:
                report.rename(staging / "report.blocked.html")
                raise LcstatsError(
                    f"privacy gate: the report shows {len(leaks)} learner or manager identifier(s) "
                    "(for example a value of learner_id); it was not published. Check labels and "
                    "text built from the data."
                )
        except pm.PapermillExecutionError as exc:
            step = _failure_step(nb_out, exc.cell_index)
            user = exc.ename in USER_ERRORS
            status, exit_code = ("invalid", EXIT_INVALID) if user else ("failed", EXIT_FAILED)
            message = f"{exc.ename}: {exc.evalue}" if not user else str(exc.evalue)
            write_atomic(
                staging / "failure.html", _failure_page(params.evaluation, run_id, step, message)
            )
            message = f"failed at step '{step}': {message}"
        except LcstatsError as exc:
            status, exit_code, message = "failed", EXIT_FAILED, str(exc)
            write_atomic(
                staging / "failure.html",
                _failure_page(params.evaluation, run_id, "privacy gate", message),
            )
        except Exception as exc:  # kernel died, timeout, disk full: record the run as failed
            status, exit_code, message = "failed", EXIT_FAILED, f"{type(exc).__name__}: {exc}"
            write_atomic(
                staging / "failure.html",
                _failure_page(params.evaluation, run_id, "running the notebook", message),
            )
        finally:
            handover.unlink(missing_ok=True)
        git, versions = provenance.result()

    duration = time.perf_counter() - t0
    run_json = {
        "evaluation": params.evaluation,
        "run_id": run_id,
        "status": status,
        "message": message,
        "started": started.isoformat(timespec="seconds"),
        "ended": _now().isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "parameters": params.notebook_parameters(),
        "params_file": str(Path(params_path).resolve()),
        "inputs": {t: {"path": getattr(params, t), "sha256": h} for t, h in hashes.items()},
        "fingerprints": {"inputs": inputs_sha, "parameters": params_sha, "code": code_sha},
        "lcstats_version": __version__,
        "git": git,
        "versions": versions,
        "kernel": KERNEL_NAME,
    }
    write_json(staging / "run.json", run_json)
    final = eval_root / run_id
    os.replace(staging, final)
    if status == "succeeded":
        _point_latest(eval_root, run_id)
    record_run(
        root,
        RunRecord(
            params.evaluation,
            run_id,
            status,
            run_json["started"],
            round(duration, 3),
            inputs_sha,
            params_sha,
            code_sha,
            str(final),
            message,
        ),
    )
    return RunOutcome(params.evaluation, status, exit_code, final, message, duration)


def _run_one(args: tuple[str, str, bool]) -> RunOutcome:
    params_path, output_dir, skip_unchanged = args
    try:
        return run_evaluation(params_path, output_dir=output_dir, skip_unchanged=skip_unchanged)
    except Exception as exc:  # a bug in one run must not stop the others
        return RunOutcome(
            Path(params_path).stem, "failed", EXIT_FAILED, None, f"{type(exc).__name__}: {exc}"
        )


def params_files(folder: str | Path) -> list[Path]:
    """The params files of a folder (``*.yaml`` and ``*.yml``), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder of params files", source=str(folder))
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise InputError(f"no params files (*.yaml) in '{folder}'", source=str(folder))
    return files


def _worker_context():
    """Processes for run-all: each run in a fresh process, forked from a server that has
    imported the runner and papermill once (measured: 8 runs 122 s with spawn, 85 s with it).
    Falls back to spawn where fork is not available."""
    from multiprocessing import get_all_start_methods, get_context

    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(
        ["lcstats.running.runner", "papermill", "lcstats.data.inputs", "lcstats.data.load"]
    )
    return ctx


def run_all(
    folder: str | Path,
    *,
    jobs: int = 1,
    output_dir: str | Path = "reports",
    skip_unchanged: bool = False,
    progress: Callable[[int, int, RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Run every params file of a folder, each run in a fresh process, `jobs` at a time.

    One failing evaluation never stops the others. `progress(done, total, outcome)` is called as
    each run ends. Returns the outcomes in the order of the files.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if jobs < 1:
        raise InputError(f"--jobs must be at least 1 (found {jobs})", source="lcstats run-all")
    files = params_files(folder)
    tasks = [(str(f), str(output_dir), skip_unchanged) for f in files]
    outcomes: dict[int, RunOutcome] = {}
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=_worker_context(), max_tasks_per_child=1
    ) as pool:
        futures = {pool.submit(_run_one, task): i for i, task in enumerate(tasks)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            try:
                outcomes[i] = future.result()
            except Exception as exc:  # the worker process died
                outcomes[i] = RunOutcome(
                    files[i].stem, "failed", EXIT_FAILED, None, f"worker died: {exc}"
                )
            if progress:
                progress(done, len(tasks), outcomes[i])
    return [outcomes[i] for i in range(len(tasks))]
