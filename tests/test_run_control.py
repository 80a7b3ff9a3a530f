"""Runs that explain themselves: Ctrl-C and SIGTERM, every attempt in the ledger, stale folders
removed, one run of an evaluation at a time, and output pipes that close early."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcstats.running.ledger import RunRecord, list_runs, record_run
from tests.conftest import write_params

LCSTATS = Path(sys.executable).parent / "lcstats"


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [str(LCSTATS), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_handover(reports: Path, evaluation: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list((reports / evaluation).glob(".*.partial/.validated-inputs.pickle")):
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.02)


@pytest.fixture
def params(tmp_path, small_programme_dir) -> Path:
    return write_params(tmp_path / "ctl.yaml", small_programme_dir, evaluation="ctl")


@pytest.mark.parametrize(
    ("sig", "code", "name"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_stops_the_run_says_what_was_left_and_is_recorded(
    params, tmp_path, sig, code, name
):
    reports = tmp_path / "reports"
    proc = start("run", params, "--output-dir", reports)
    wait_for_handover(reports, "ctl")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, and no words from Jupyter about the stopped kernel
    assert lines[-1].startswith(f"interrupted by {name}: the kernel was stopped"), err
    assert "was removed" in lines[-1] and "Nothing needs deleting" in lines[-1]
    assert "Traceback" not in err
    assert not list((reports / "ctl").glob(".*.partial"))
    runs = list_runs(reports, evaluation="ctl")
    assert list(runs["status"]) == ["interrupted"] and name in runs["message"][0]


def test_invalid_and_interrupted_attempts_and_successes_are_all_listed(
    params, tmp_path, small_programme_dir
):
    reports = tmp_path / "reports"
    bad = write_params(tmp_path / "ctl-bad.yaml", small_programme_dir, evaluation="ctl", alpha=7)
    assert start("run", bad, "--output-dir", reports).wait(timeout=120) == 2
    proc = start("run", params, "--output-dir", reports)
    wait_for_handover(reports, "ctl")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert start("run", params, "--output-dir", reports).wait(timeout=120) == 0
    listing = subprocess.run(
        [str(LCSTATS), "runs", "--output-dir", str(reports), "--json"],
        capture_output=True,
        text=True,
    )
    statuses = [r["status"] for r in json.loads(listing.stdout)["runs"]]
    assert sorted(statuses) == ["interrupted", "invalid", "succeeded"]
    table = subprocess.run(
        [str(LCSTATS), "runs", "--output-dir", str(reports)], capture_output=True, text=True
    )
    for status in ("interrupted", "invalid", "succeeded"):
        assert status in table.stdout


def test_a_killed_runs_folder_is_removed_by_the_next_run_with_a_line(params, tmp_path):
    reports = tmp_path / "reports"
    proc = start("run", params, "--output-dir", reports)
    wait_for_handover(reports, "ctl")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stale = list((reports / "ctl").glob(".*.partial"))
    assert len(stale) == 1  # what SIGKILL leaves: nothing can run in the killed process
    assert list(list_runs(reports)["status"]) == ["running"]
    again = subprocess.run(
        [str(LCSTATS), "run", str(params), "--output-dir", str(reports)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert again.returncode == 0, again.stderr
    assert f"removed {stale[0]}: the unfinished folder of a run that was stopped" in again.stderr
    assert not stale[0].exists()
    statuses = list(list_runs(reports)["status"])
    assert sorted(statuses) == ["interrupted", "succeeded"]


def test_a_second_run_of_the_same_evaluation_refuses_or_waits(params, tmp_path):
    reports = tmp_path / "reports"
    first = start("run", params, "--output-dir", reports)
    wait_for_handover(reports, "ctl")
    second = subprocess.run(
        [str(LCSTATS), "run", str(params), "--output-dir", str(reports)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "evaluation 'ctl' is already running (process" in second.stderr
    assert "--wait" in second.stderr and "Traceback" not in second.stderr
    queued = start("run", params, "--output-dir", reports, "--wait")
    assert first.wait(timeout=180) == 0
    out, err = queued.communicate(timeout=180)
    assert queued.returncode == 0, err
    assert "already running" in err and "waiting for it" in err
    assert len([p for p in (reports / "ctl").iterdir() if p.is_dir() and p.name[0].isdigit()]) == 2


def test_the_lock_of_a_killed_run_is_released_at_once(params, tmp_path):
    from lcstats.running.locks import is_locked

    reports = tmp_path / "reports"
    proc = start("run", params, "--output-dir", reports)
    wait_for_handover(reports, "ctl")
    assert is_locked(reports / "ctl")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not is_locked(reports / "ctl")


def test_run_all_never_runs_one_evaluation_twice_at_once(tmp_path, small_programme_dir):
    folder = tmp_path / "params"
    folder.mkdir()
    for name in ("a", "b"):  # two files, one evaluation
        write_params(folder / f"{name}.yaml", small_programme_dir, evaluation="twice")
    reports = tmp_path / "reports"
    done = subprocess.run(
        [str(LCSTATS), "run-all", str(folder), "--jobs", "2", "--output-dir", str(reports)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    runs = list_runs(reports, evaluation="twice").sort_values("started")
    assert list(runs["status"]) == ["succeeded", "succeeded"]
    first_end = (
        time.mktime(time.strptime(runs["started"].iloc[0][:19], "%Y-%m-%dT%H:%M:%S"))
        + runs["duration_s"].iloc[0]
    )
    second_start = time.mktime(time.strptime(runs["started"].iloc[1][:19], "%Y-%m-%dT%H:%M:%S"))
    assert second_start >= first_end - 1  # one after the other (to the second)


def test_no_command_prints_a_traceback_when_its_pipe_closes(tmp_path):
    for i in range(3000):
        record_run(
            tmp_path,
            RunRecord(
                "e",
                f"r{i:05d}",
                "succeeded",
                f"2026-01-01T00:00:{i % 60:02d}",
                1.0,
                None,
                None,
                None,
                None,
                "x" * 50,
            ),
        )
    for extra in ([], ["--json"]):
        shell = f'{LCSTATS} runs --output-dir {tmp_path} --limit 5000 {" ".join(extra)} | head -1; echo "exit=${{PIPESTATUS[0]}}" >&2'
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
        assert "internal error" not in done.stderr
        assert done.stdout.count("\n") == 1
        assert "exit=141" in done.stderr or "exit=0" in done.stderr


def test_a_run_id_the_ledger_holds_is_not_given_again(tmp_path):
    """A run killed and cleaned up within the same second as the next run of the same inputs
    keeps its ledger record: the next run takes another id (seen in CI, where the ledger then
    listed only the success)."""
    import datetime as dt

    from lcstats.running.ledger import recorded_run_ids
    from lcstats.running.run_folder import new_run_folder, run_id_base

    stamp = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)
    base = run_id_base(stamp, "abcdef123456")
    for run_id, evaluation in ((base, "e"), (base + "-3", "e"), (base, "other")):
        record_run(
            tmp_path,
            RunRecord(
                evaluation, run_id, "interrupted", stamp.isoformat(), 1.0, "i", "p", "c", None
            ),
        )
    record_run(  # another tag
        tmp_path,
        RunRecord(
            "e",
            base.replace("abcdef12", "abcdef13"),
            "failed",
            stamp.isoformat(),
            1,
            "i",
            "p",
            "c",
            None,
        ),
    )
    taken = recorded_run_ids(tmp_path, "e", base)
    assert taken == {base, base + "-3"}
    (tmp_path / "e").mkdir()
    assert new_run_folder(tmp_path / "e", stamp, "abcdef123456", recorded=taken).run_id == (
        base + "-2"
    )
    assert new_run_folder(tmp_path / "e", stamp, "abcdef123456").run_id == base  # no ledger


def test_runs_json_gives_every_field(tmp_path):
    record_run(
        tmp_path,
        RunRecord("e", "r1", "failed", "2026-01-01T00:00:00", 2.5, "i", "p", "c", "/x", "why"),
    )
    done = subprocess.run(
        [str(LCSTATS), "runs", "--output-dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
    )
    doc = json.loads(done.stdout)
    assert doc["runs"] == [
        {
            "evaluation": "e",
            "run_id": "r1",
            "status": "failed",
            "started": "2026-01-01T00:00:00",
            "duration_s": 2.5,
            "inputs_sha256": "i",
            "params_sha256": "p",
            "code_version": "c",
            "run_dir": "/x",
            "message": "why",
            "pid": None,
        }
    ]
    assert doc["older_ledgers"] == []
