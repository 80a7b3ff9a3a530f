"""Every evaluation of a folder, each in a process of its own, a few at a time (for schedulers).

Each run is a separate process group: a run that hangs or dies never blocks or breaks the
others. A run past its time limit stops its own kernel (see `lcstats.running.watchdog`); if its
process does not end a few minutes after that, it is killed here. When a run's process dies
(killed by hand, or here), its unfinished folder and ledger record are tidied at once, so no
learner data is left in a hidden folder. Two params files naming the same evaluation never run
at the same time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from lcstats.core.errors import InputError, Interrupted, install_termination_handler
from lcstats.running.locks import evaluation_lock
from lcstats.running.run_folder import remove_stale_partials
from lcstats.running.runner import (
    EXIT_FAILED,
    RunOutcome,
    run_evaluation,
    time_limits,
)

GRACE_S = 300.0  # after its own limit, how long a run may take to stop before it is killed
POLL_S = 0.5


def params_files(folder: str | Path) -> list[Path]:
    """The params files of a folder (``*.yaml`` and ``*.yml``), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder of params files", source=str(folder))
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise InputError(f"no params files (*.yaml) in '{folder}'", source=str(folder))
    return files


@dataclass(frozen=True)
class Task:
    """One params file to run, what it evaluates, and its hard limit in seconds."""

    index: int
    path: Path
    evaluation: str
    hard_limit_s: float


def _task(index: int, path: Path, timeout_minutes: float | None, grace_s: float) -> Task:
    """What to schedule for a params file: its evaluation and its hard limit.

    The run checks its params itself; an invalid file gets the default limit here.
    """
    from lcstats.params import load_params

    try:
        params = load_params(path)
    except InputError:
        return Task(index, path, path.stem, (timeout_minutes or 30) * 60 + grace_s)
    minutes = time_limits(params, timeout_minutes)[0]
    return Task(index, path, params.evaluation, minutes * 60 + grace_s)


def _work(task: Task, options: dict, conn: Connection) -> None:
    """A worker process: one run in a process group of its own; its outcome sent back."""
    os.setpgid(0, 0)
    install_termination_handler()
    try:
        outcome = run_evaluation(task.path, **options)
    except Interrupted as exc:
        outcome = RunOutcome(task.evaluation, "interrupted", exc.exit_code, None, exc.message)
    except Exception as exc:  # a bug in one run must not stop the others
        outcome = RunOutcome(
            task.evaluation, "failed", EXIT_FAILED, None, f"{type(exc).__name__}: {exc}"
        )
    conn.send(outcome)
    conn.close()


@dataclass
class Worker:
    """A running task: its process, the end of its pipe and when it started."""

    task: Task
    process: object
    conn: Connection
    started: float

    def overdue(self) -> bool:
        """Past its hard limit."""
        return time.monotonic() - self.started > self.task.hard_limit_s

    def kill(self) -> None:
        """Kill the worker's whole process group (its kernel too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def _context():
    """Processes forked from a server that has imported the runner once (spawn without fork)."""
    from multiprocessing import get_all_start_methods, get_context

    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["lcstats.running.runner", "papermill", "lcstats.data.load"])
    return ctx


def _tidy_after(task: Task, output_dir: Path) -> str:
    """After a worker died: remove its unfinished folder, close its ledger record."""
    from lcstats.running.ledger import RunRecord, record_run, unfinished_runs

    eval_root = output_dir / task.evaluation
    if not eval_root.is_dir():
        return ""
    with evaluation_lock(eval_root, wait=True):
        removed = remove_stale_partials(eval_root)
        for record in unfinished_runs(output_dir, task.evaluation):
            fields = {**record.__dict__, "status": "failed", "pid": None}
            record_run(output_dir, RunRecord(**(fields | {"message": "its process was killed"})))
    return f"; its unfinished folder was removed ({len(removed)})" if removed else ""


def _collect(worker: Worker, output_dir: Path, *, killed: bool) -> RunOutcome:
    """The outcome a worker sent, or one that says how it died."""
    task = worker.task
    if not killed and worker.conn.poll():
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            pass
    worker.process.join(timeout=10)
    worker.kill()  # whatever is left of its group (a kernel)
    code = worker.process.exitcode
    how = f"was killed (signal {-code})" if code and code < 0 else f"ended with code {code}"
    if killed:
        how = f"did not stop within {task.hard_limit_s / 60:.0f} minutes and was killed"
    note = _tidy_after(task, output_dir)
    elapsed = time.monotonic() - worker.started
    return RunOutcome(
        task.evaluation, "failed", EXIT_FAILED, None, f"the run's process {how}{note}", elapsed
    )


def run_all(
    folder: str | Path,
    *,
    jobs: int = 1,
    output_dir: str | Path = "reports",
    skip_unchanged: bool = False,
    timeout_minutes: float | None = None,
    progress: Callable[[int, int, RunOutcome], None] | None = None,
    stop_grace_s: float = GRACE_S,
) -> list[RunOutcome]:
    """Run every params file of a folder, each in its own process, `jobs` at a time.

    One failing, hung or killed evaluation never stops the others: a run that has not ended
    `stop_grace_s` seconds after its own time limit is killed. `progress(done, total, outcome)`
    is called as each run ends. Returns the outcomes in the order of the files.
    """
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1 (found {jobs})", source="lcstats run-all")
    output_dir = Path(output_dir).resolve()
    tasks = [_task(i, p, timeout_minutes, stop_grace_s) for i, p in enumerate(params_files(folder))]
    options = {"output_dir": output_dir, "skip_unchanged": skip_unchanged}
    options |= {"timeout_minutes": timeout_minutes, "wait": True}
    outcomes: dict[int, RunOutcome] = {}
    pool = _Pool(_context(), jobs, options, output_dir)
    try:
        pool.run(tasks, outcomes, progress)
    except BaseException:
        pool.stop_all()
        raise
    return [outcomes[t.index] for t in tasks]


class _Pool:
    """Starts tasks up to `jobs` at a time, never two of one evaluation, and watches them."""

    def __init__(self, ctx, jobs: int, options: dict, output_dir: Path) -> None:
        self.ctx, self.jobs, self.options, self.output_dir = ctx, jobs, options, output_dir
        self.workers: list[Worker] = []

    def _start(self, task: Task) -> None:
        """Start one task's worker process."""
        receive, send = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=_work, args=(task, self.options, send), daemon=False)
        process.start()
        send.close()
        self.workers.append(Worker(task, process, receive, time.monotonic()))

    def _fill(self, waiting: list[Task]) -> None:
        """Start waiting tasks while there is room, skipping evaluations already running."""
        busy = {w.task.evaluation for w in self.workers}
        for task in list(waiting):
            if len(self.workers) >= self.jobs:
                return
            if task.evaluation not in busy:
                waiting.remove(task)
                busy.add(task.evaluation)
                self._start(task)

    def run(self, tasks: list[Task], outcomes: dict, progress) -> None:
        """Run all tasks, filling `outcomes` by task index."""
        waiting = list(tasks)
        while waiting or self.workers:
            self._fill(waiting)
            ready = wait([w.process.sentinel for w in self.workers], timeout=POLL_S)
            for worker in list(self.workers):
                killed = worker.overdue() and worker.process.sentinel not in ready
                if worker.process.sentinel in ready or killed:
                    if killed:
                        worker.kill()
                    outcomes[worker.task.index] = _collect(worker, self.output_dir, killed=killed)
                    self.workers.remove(worker)
                    if progress:
                        progress(len(outcomes), len(tasks), outcomes[worker.task.index])

    def stop_all(self) -> None:
        """Ask every running worker to stop (SIGTERM: they clean up), then wait for them."""
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.workers:
            worker.process.join(timeout=30)
            worker.kill()
