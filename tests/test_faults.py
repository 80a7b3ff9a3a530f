"""Runs that survive faults: each fault is injected for real, and the promise is checked every time.

The promise: a clear message, the right exit code, no traceback, the last good report untouched,
no learner data left behind (no hidden ``.partial`` folder, no handed-over tables, no file with a
learner id outside published run folders), no kernel left running, and the next run succeeding.

Faults: the kernel killed (SIGKILL, as the out-of-memory killer does) while starting, right
after a cell and inside a cell; a cell that never ends (the run's limit, the per-cell limit, a
run-all worker that will not stop); a full disk (refused up front, and writes failing at every
point of a run) and an output folder that cannot be written; a damaged ledger and many writers
at once; a run-all worker killed; a damaged ``latest`` link; an input deleted between
``validate`` and ``run``.

Full disks and read-only folders are real: small tmpfs mounts, which need root (as the README's
test command is run, and as CI runs it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from lcstats.running.ledger import RunRecord, list_runs, record_run
from tests.conftest import ROOT, write_params

LCSTATS = Path(sys.executable).parent / "lcstats"
EVALUATION = "faulty"
KILL_TO_EXIT_S = 10.0  # the promise: a run ends within 10 s of its kernel's death


# --- helpers ----------------------------------------------------------------------------------

MEASURED = ROOT / "reports" / "measurements" / "faults.json"


@pytest.fixture(scope="module", autouse=True)
def measured_times():
    """Seconds from each fault to the run's exit, kept in reports/measurements/faults.json."""
    times: dict[str, float] = {}
    yield times
    if times:
        MEASURED.parent.mkdir(parents=True, exist_ok=True)
        MEASURED.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    seconds: float  # from the fault (or the start) to the exit


def start(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc: subprocess.Popen, t0: float, timeout: float = 180) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err, time.monotonic() - t0)


def lcstats(*args: str, timeout: float = 180) -> Result:
    t0 = time.monotonic()
    return finish(start([str(LCSTATS), *map(str, args)]), t0, timeout)


DRIVER = """
import sys
from lcstats.core.errors import install_termination_handler
from lcstats.running.runner import run_evaluation
install_termination_handler()
o = run_evaluation(sys.argv[1], output_dir=sys.argv[2], notebook=sys.argv[3])
print(o.run_dir or "")
print(o.message, file=sys.stderr)
sys.exit(o.exit_code)
"""


def run_with_notebook(params: Path, reports: Path, notebook: Path) -> subprocess.Popen:
    """`lcstats run` with another notebook (the runner's `notebook=`), in a process of its own."""
    return start([sys.executable, "-c", DRIVER, str(params), str(reports), str(notebook)])


def kernels_of(pid: int) -> list[psutil.Process]:
    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def notebook(path: Path, *cells: tuple[str, str]) -> Path:
    """A notebook with the evaluation's parameters and the given (heading, code) steps."""
    from lcstats.running.runner import NOTEBOOK_DIR

    real = nbformat.read(NOTEBOOK_DIR / "evaluation.ipynb", as_version=4)
    params_cell = next(c for c in real.cells if "parameters" in c.metadata.get("tags", []))
    nb = nbformat.v4.new_notebook(metadata=real.metadata)
    nb.cells = [params_cell]
    for heading, code in cells:
        nb.cells += [
            nbformat.v4.new_markdown_cell(f"## {heading}"),
            nbformat.v4.new_code_cell(code),
        ]
    nb.nbformat_minor = 4  # as the project's notebooks: no cell ids
    for cell in nb.cells:
        cell.pop("id", None)
    nbformat.write(nb, path)
    return path


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A small file system of its own at `path` (root only; no silent skip)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, (
        "the fault tests mount small tmpfs file systems and need root: run `make test` as root "
        f"(as CI does). mount said: {done.stderr.strip()}"
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, *, leave: int) -> Path:
    """Fill the file system of `folder` so that about `leave` bytes stay free."""
    filler = folder / "filler.bin"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "ab") as fh:
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - leave))
    return filler


class Promise:
    """The state of an output folder after a good run, and the checks every fault must pass."""

    def __init__(self, reports: Path, params: Path, learner_id: str) -> None:
        self.reports, self.params, self.learner_id = reports, params, learner_id
        self.latest = (reports / EVALUATION / "latest").resolve()
        self.report = (self.latest / "report.html").read_bytes()

    def published(self) -> set[Path]:
        return {
            p
            for p in (self.reports / EVALUATION).iterdir()
            if p.is_dir() and not p.name.startswith(".")
        }

    def check(
        self, result: Result, *, code: int, says: tuple[str, ...] = (), next_run: bool = True
    ) -> None:
        assert result.code == code, (result.code, result.err)
        assert "Traceback" not in result.err and "internal error" not in result.err, result.err
        for words in says:
            assert words in result.err, (words, result.err)
        assert (self.reports / EVALUATION / "latest").resolve() == self.latest
        assert (self.latest / "report.html").read_bytes() == self.report
        self.no_learner_data_left()
        if next_run:
            again = lcstats("run", self.params, "--output-dir", self.reports)
            assert again.code == 0, again.err
            self.latest = (self.reports / EVALUATION / "latest").resolve()
            self.report = (self.latest / "report.html").read_bytes()

    def no_learner_data_left(self) -> None:
        root = self.reports / EVALUATION
        assert not list(root.glob(".*.partial")), list(root.glob(".*.partial"))
        assert not list(self.reports.rglob("*.pickle"))
        published = self.published()
        for path in self.reports.rglob("*"):
            if path.is_file() and not any(p in path.parents for p in published):
                if path.name == "filler.bin":
                    continue
                assert self.learner_id.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def setup(small_programme_dir, tmp_path_factory):
    """A params file and an output folder holding one good run of the evaluation."""
    tmp = tmp_path_factory.mktemp("faults")
    params = write_params(tmp / "faulty.yaml", small_programme_dir, evaluation=EVALUATION)
    reports = tmp / "reports"
    first = lcstats("run", params, "--output-dir", reports)
    assert first.code == 0, first.err
    learner_id = (small_programme_dir / "learners.csv").read_text().splitlines()[1].split(",")[0]
    return tmp, params, reports, learner_id


@pytest.fixture
def promise(setup) -> Promise:
    tmp, params, reports, learner_id = setup
    return Promise(reports, params, learner_id)


# --- 1. the kernel dies --------------------------------------------------------------------

STEP_ONE = (
    "Step one",
    "import pathlib, time\npathlib.Path(output_dir, 'in-cell').write_text('1')\ntime.sleep(600)",
)
AFTER_A_CELL = (
    ("Step one", "import pathlib\npathlib.Path(output_dir, 'cell-done').write_text('1')"),
    ("Step two", "x = sum(range(10))"),
    ("Step three", "import time\ntime.sleep(600)"),
)


@pytest.mark.parametrize("moment", ["while starting", "right after a cell", "inside a cell"])
def test_a_kernel_killed_at_any_moment_ends_the_run_within_seconds(
    promise, setup, moment, tmp_path, measured_times
):
    _, params, reports, _ = setup
    nb = notebook(
        tmp_path / "slow.ipynb", *({"inside a cell": (STEP_ONE,)}.get(moment, AFTER_A_CELL))
    )
    proc = run_with_notebook(params, reports, nb)
    marker = {"inside a cell": "in-cell", "right after a cell": "cell-done"}.get(moment)
    if marker:
        wait_for(lambda: list((reports / EVALUATION).glob(f".*.partial/{marker}")), what=marker)
    else:
        wait_for(lambda: kernels_of(proc.pid), what="the kernel")
    kernel = kernels_of(proc.pid)[0]
    t0 = time.monotonic()
    kernel.kill()
    result = finish(proc, t0)
    measured_times[f"kernel killed {moment}: kill to exit"] = round(result.seconds, 2)
    assert result.seconds < KILL_TO_EXIT_S, result
    step = {"while starting": "starting the notebook's kernel", "inside a cell": "Step one"}
    says = ["the notebook's kernel stopped (ended by signal 9)", "running out of memory"]
    if moment in step:
        says.append(f"failed at step '{step[moment]}'")
    promise.check(result, code=1, says=tuple(says))
    failed = [
        r for r in list_runs(reports, evaluation=EVALUATION).itertuples() if r.status == "failed"
    ]
    assert failed and "kernel stopped" in failed[0].message
    page = Path(failed[0].run_dir) / "failure.html"
    assert "kernel stopped" in page.read_text()


# --- 2. time limits -------------------------------------------------------------------------


def test_a_cell_that_never_ends_is_stopped_at_the_runs_time_limit(
    promise, setup, tmp_path, measured_times
):
    _, params, reports, _ = setup
    limited = tmp_path / "limited.yaml"
    limited.write_text(params.read_text() + "timeout_minutes: 0.1\n")
    nb = notebook(
        tmp_path / "forever.ipynb", ("Step one", "pass"), ("Step two", "while True:\n    pass")
    )
    result = finish(run_with_notebook(limited, reports, nb), time.monotonic())
    measured_times["run time limit of 6 s: start to exit"] = round(result.seconds, 2)
    assert 6 <= result.seconds < 6 + KILL_TO_EXIT_S, result
    promise.check(
        result,
        code=1,
        says=("failed at step 'Step two'", "stopped after", "time limit of 0.1 minutes"),
    )


def test_the_per_cell_limit_and_the_command_line_override(promise, setup, tmp_path):
    _, params, reports, _ = setup
    limited = tmp_path / "cell.yaml"
    limited.write_text(params.read_text() + "cell_timeout_minutes: 0.05\n")
    nb = notebook(tmp_path / "slow.ipynb", ("Step one", "import time\ntime.sleep(600)"))
    result = finish(run_with_notebook(limited, reports, nb), time.monotonic())
    assert result.seconds < 3 + KILL_TO_EXIT_S, result
    promise.check(result, code=1, says=("per-cell limit of 0.05 minutes",), next_run=False)
    # --timeout overrides the params file: the real notebook cannot finish in 0.01 minutes
    result = lcstats("run", params, "--output-dir", reports, "--timeout", "0.01")
    promise.check(result, code=1, says=("time limit of 0.01 minutes",))


def test_run_all_stops_a_hung_evaluation_and_runs_the_others(setup, tmp_path, small_programme_dir):
    from lcstats.running.run_all import run_all

    folder = tmp_path / "params"
    folder.mkdir()
    write_params(
        folder / "a-hung.yaml", small_programme_dir, evaluation="hung", timeout_minutes=0.01
    )
    write_params(folder / "b-fine.yaml", small_programme_dir, evaluation="fine")
    t0 = time.monotonic()
    outcomes = run_all(folder, jobs=1, output_dir=tmp_path / "reports")
    assert [o.status for o in outcomes] == ["failed", "succeeded"], outcomes
    assert "time limit" in outcomes[0].message
    assert time.monotonic() - t0 < 120
    assert not list((tmp_path / "reports" / "hung").glob(".*.partial"))


def test_run_all_kills_a_worker_that_does_not_stop(tmp_path, small_programme_dir):
    """A worker stopped dead (SIGSTOP) cannot stop itself: run-all kills it at its hard limit."""
    from lcstats.running import run_all as run_all_module

    folder = tmp_path / "params"
    folder.mkdir()
    write_params(
        folder / "a-stuck.yaml", small_programme_dir, evaluation="stuck", timeout_minutes=0.3
    )
    write_params(folder / "b-fine.yaml", small_programme_dir, evaluation="fine")
    reports = tmp_path / "reports"
    stopper = start([sys.executable, "-c", STOPPER, str(reports / "stuck")])
    t0 = time.monotonic()
    outcomes = run_all_module.run_all(folder, jobs=2, output_dir=reports, stop_grace_s=2)
    stopper.wait(timeout=150)
    assert outcomes[1].status == "succeeded", outcomes
    assert outcomes[0].status == "failed" and "was killed" in outcomes[0].message, outcomes
    assert time.monotonic() - t0 < 90
    assert not list((reports / "stuck").glob(".*.partial"))  # tidied by run-all
    statuses = set(list_runs(reports, evaluation="stuck")["status"])
    assert "running" not in statuses


# the stopper freezes the run's process (not its kernel) once the run has its folder
STOPPER = """
import os, signal, sys, time, pathlib, psutil
root = pathlib.Path(sys.argv[1])
deadline = time.time() + 120
while time.time() < deadline:
    if list(root.glob(".*.partial/.validated-inputs.pickle")):
        pid = int((root / ".lock").read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        break
    time.sleep(0.02)
"""


# --- 3. full disks and folders that cannot be written ------------------------------------------


@pytest.fixture
def small_disk(tmp_path, small_programme_dir) -> Iterator[tuple[Path, Promise]]:
    """An output folder on a 16 MB file system holding one good run."""
    with tmpfs(tmp_path / "disk", "size=16m") as disk:
        reports = disk / "reports"
        params = write_params(tmp_path / "faulty.yaml", small_programme_dir, evaluation=EVALUATION)
        first = lcstats("run", params, "--output-dir", reports)
        assert first.code == 0, first.err
        learner_id = (
            (small_programme_dir / "learners.csv").read_text().splitlines()[1].split(",")[0]
        )
        yield disk, Promise(reports, params, learner_id)


def test_a_disk_clearly_too_full_is_refused_before_the_run(small_disk):
    disk, promise = small_disk
    filler = fill(disk, leave=64 * 1024)
    result = lcstats("run", promise.params, "--output-dir", promise.reports)
    filler.unlink()
    promise.check(
        result, code=1, says=("is full: this run needs about", "are free", str(promise.reports))
    )


def _footprint(promise: Promise) -> tuple[int, int]:
    """What the run's pre-flight asks for (bytes) and what a run really writes at its peak."""
    from lcstats.params import load_params
    from lcstats.running.run_folder import space_needed
    from lcstats.running.runner import _tables_bytes, preflight

    handover = _tables_bytes(preflight(load_params(promise.params))[1])
    folder = sum(f.stat().st_size for f in promise.latest.iterdir())
    return space_needed(handover), handover + 2 * folder


def test_writes_failing_at_every_point_of_a_run_fail_cleanly(small_disk):
    """Free space from just above the refusal threshold (half of what the pre-flight asks for)
    to above what a run writes: the writes that fail move through the run."""
    disk, promise = small_disk
    need, peak = _footprint(promise)
    ends = []
    for leave in range(need // 2 + 50_000, peak + 100_000, (peak - need // 2) // 6):
        filler = fill(disk, leave=leave)
        result = lcstats("run", promise.params, "--output-dir", promise.reports)
        filler.unlink()
        if result.code == 0:  # room enough after all: this is the new last good run
            ends.append("succeeded")
            promise.latest = (promise.reports / EVALUATION / "latest").resolve()
            promise.report = (promise.latest / "report.html").read_bytes()
            continue
        promise.check(result, code=1, says=("is full", "are free"), next_run=False)
        ends.append(result.err.splitlines()[1].split(":")[0])
    assert ends[-1] == "succeeded" and len(set(ends)) >= 2, ends


def test_running_out_of_files_fails_cleanly_wherever_it_happens(tmp_path, small_programme_dir):
    """File systems with few inodes: each limit makes another file the first that cannot be
    created (the lock, the run folder, the hand-over, the notebook's outputs, latest, the
    ledger); every time the run fails cleanly or, with room enough, succeeds."""
    params = write_params(tmp_path / "faulty.yaml", small_programme_dir, evaluation=EVALUATION)
    learner_id = (small_programme_dir / "learners.csv").read_text().splitlines()[1].split(",")[0]
    steps = []
    for inodes in range(3, 15):
        with tmpfs(tmp_path / f"inodes{inodes}", f"size=32m,nr_inodes={inodes}") as disk:
            result = lcstats("run", params, "--output-dir", disk / "reports")
            assert "Traceback" not in result.err and "internal error" not in result.err, result.err
            assert result.code in (0, 1), (inodes, result.err)
            if result.code == 1:
                assert "is full" in result.err and "--output-dir" in result.err, result.err
            steps.append("succeeded" if result.code == 0 else result.err.splitlines()[1][:40])
            root = disk / "reports" / EVALUATION
            published = [p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")]
            assert not root.exists() or not list(root.glob(".*.partial")), inodes
            assert not list(disk.rglob("*.pickle"))
            for path in disk.rglob("*"):
                if path.is_file() and not any(p in path.parents for p in published):
                    assert learner_id.encode() not in path.read_bytes(), path
    assert steps[-1] == "succeeded" and len(set(steps)) >= 5, steps


def test_an_output_folder_that_cannot_be_written_is_exit_2(tmp_path, small_programme_dir):
    params = write_params(tmp_path / "faulty.yaml", small_programme_dir, evaluation=EVALUATION)
    with tmpfs(tmp_path / "ro", "size=1m,ro") as disk:
        result = lcstats("run", params, "--output-dir", disk / "reports")
    assert result.code == 2, result.err
    assert "the output folder cannot be written to (Read-only file system)" in result.err
    assert str(disk / "reports") in result.err and "--output-dir" in result.err
    assert "Traceback" not in result.err


# --- 4. the ledger -----------------------------------------------------------------------------


def test_a_damaged_ledger_is_moved_aside_and_the_run_completes(promise, setup):
    _, params, reports, _ = setup
    ledger = reports / "runs.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    ledger.write_bytes(b"this is a truncated backup, not a database" * 10)
    result = lcstats("run", params, "--output-dir", reports)
    assert result.code == 0, result.err
    assert "could not be read" in result.err and "a new ledger was started" in result.err
    moved = list(reports.glob("runs.sqlite.damaged-*"))
    assert len(moved) == 1
    listing = lcstats("runs", "--output-dir", reports)
    assert listing.code == 0 and "succeeded" in listing.out
    assert f"older runs are recorded in {moved[0]}" in listing.err
    assert "Traceback" not in result.err
    promise.no_learner_data_left()


def _write_records(args: tuple[str, int, int]) -> int:
    root, worker, n = args
    for i in range(n):
        record_run(
            root,
            RunRecord(
                f"eval{worker}", f"run{i}", "succeeded", "2026-01-01", 1.0, None, None, None, None
            ),
        )
    return n


@pytest.mark.parametrize("start", ["no ledger", "older rollback-journal ledger"])
def test_many_writers_at_once_never_fail_on_a_locked_ledger(tmp_path, start):
    if start != "no ledger":  # as written before the ledger used a write-ahead log
        import sqlite3

        with sqlite3.connect(tmp_path / "runs.sqlite") as con:
            con.execute("PRAGMA journal_mode = DELETE")
            con.execute(
                "CREATE TABLE runs (evaluation TEXT, run_id TEXT, status TEXT, "
                "started TEXT, duration_s REAL, inputs_sha256 TEXT, params_sha256 TEXT, "
                "code_version TEXT, run_dir TEXT, message TEXT, "
                "PRIMARY KEY (evaluation, run_id))"
            )
        con.close()
    jobs = [(str(tmp_path), w, 40) for w in range(8)]
    with ProcessPoolExecutor(8) as pool:
        assert sum(pool.map(_write_records, jobs)) == 320
    assert len(list_runs(tmp_path, limit=1000)) == 320
    import sqlite3

    with sqlite3.connect(tmp_path / "runs.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- 5. run-all workers, latest, inputs -------------------------------------------------------


def test_a_killed_run_all_worker_leaves_no_learner_data_and_the_others_finish(
    tmp_path, small_programme_dir
):
    folder = tmp_path / "params"
    folder.mkdir()
    for name in ("a-victim", "b-other"):
        write_params(folder / f"{name}.yaml", small_programme_dir, evaluation=name)
    reports = tmp_path / "reports"
    proc = start(
        [str(LCSTATS), "run-all", str(folder), "--jobs", "2", "--output-dir", str(reports)]
    )
    wait_for(
        lambda: list((reports / "a-victim").glob(".*.partial/.validated-inputs.pickle")),
        what="the victim's run",
    )
    worker = int((reports / "a-victim" / ".lock").read_text().strip())
    os.kill(worker, signal.SIGKILL)
    result = finish(proc, time.monotonic())
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    lines = result.out.splitlines()
    assert any(line.split()[:2] == ["a-victim", "failed"] for line in lines), result.out
    assert any(line.split()[:2] == ["b-other", "succeeded"] for line in lines), result.out
    assert "was killed (signal 9)" in result.err
    assert not list((reports / "a-victim").glob(".*.partial"))
    assert "running" not in set(list_runs(reports, evaluation="a-victim")["status"])
    again = lcstats("run", folder / "a-victim.yaml", "--output-dir", reports)
    assert again.code == 0, again.err


@pytest.mark.parametrize("damage", ["dangling link", "a file", "a folder"])
def test_a_damaged_latest_link_is_replaced_by_the_next_good_run(promise, setup, damage):
    _, params, reports, _ = setup
    latest = reports / EVALUATION / "latest"
    latest.unlink()
    if damage == "dangling link":
        latest.symlink_to("20000101T000000Z-gone")
    elif damage == "a file":
        latest.write_text("not a link")
    else:
        latest.mkdir()
        (latest / "report.html").write_text("a copy someone made")
    result = lcstats("run", params, "--output-dir", reports)
    assert result.code == 0, result.err
    assert latest.is_symlink() and (latest / "report.html").is_file()
    assert latest.resolve().name == Path(result.out.strip().splitlines()[-1]).name
    if damage == "a folder":
        assert list((reports / EVALUATION).glob("latest.replaced-*/report.html"))
    promise.latest, promise.report = latest.resolve(), (latest / "report.html").read_bytes()


def test_an_input_deleted_between_validate_and_run(promise, setup, small_programme_dir, tmp_path):
    _, params, reports, _ = setup
    data = tmp_path / "data"
    data.mkdir()
    for name in ("learners.csv", "action_items.csv", "skill_assessments.csv"):
        (data / name).write_bytes((small_programme_dir / name).read_bytes())
    moved = write_params(tmp_path / "moved.yaml", data, evaluation=EVALUATION)
    assert lcstats("validate", moved).code == 0
    (data / "action_items.csv").unlink()
    result = lcstats("run", moved, "--output-dir", reports)
    promise.check(result, code=2, says=("action_items.csv", "does not exist"), next_run=False)
    assert list_runs(reports, evaluation=EVALUATION)["status"][0] == "invalid"
