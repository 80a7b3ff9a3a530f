"""`lcstats run` end to end on a small programme: run folder, results, provenance, exit codes."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lcstats.cli import main
from lcstats.running.runner import HANDOVER_FILE, identifier_leaks, run_evaluation
from tests.conftest import ROOT, write_params

LCSTATS = Path(sys.executable).parent / "lcstats"


def kernel_processes(pid: int | None = None) -> list:
    """The Jupyter kernels among a process's children (default: this process's).

    Children that end while being looked at (e.g. the run's short ``git`` calls, which can be
    zombies for a moment) are skipped.
    """
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=pid is None):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def kernels_left() -> list[int]:
    """Process ids of this process's children that are Jupyter kernels."""
    return [c.pid for c in kernel_processes()]


@pytest.fixture(scope="module")
def good_run(small_programme_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    params = write_params(tmp / "small.yaml", small_programme_dir, evaluation="small")
    outcome = run_evaluation(params, output_dir=tmp / "reports")
    return outcome, tmp


def test_run_writes_a_complete_run_folder(good_run):
    outcome, tmp = good_run
    assert outcome.status == "succeeded", outcome.message
    assert outcome.exit_code == 0
    run_dir = outcome.run_dir
    assert run_dir.parent == tmp / "reports" / "small"
    for name in ("report.html", "results.json", "run.json", "evaluation.ipynb"):
        assert (run_dir / name).is_file(), name
    assert (run_dir.parent / "latest").resolve() == run_dir.resolve()
    assert not list(run_dir.parent.glob(".*.partial"))
    assert not (run_dir / HANDOVER_FILE).exists()  # the validated tables do not outlive the run
    assert kernels_left() == []


def test_results_hold_finite_estimates_with_intervals_for_both_outcomes(good_run):
    outcome, _ = good_run
    doc = json.loads((outcome.run_dir / "results.json").read_text())
    assert doc["evaluation"] == "small"
    found = {(e["outcome"], e["method"]) for e in doc["estimates"] if e["treatment"] == "coached"}
    for outcome_id in ("follow_through", "skills_gap"):
        assert (outcome_id, "aipw") in found
    for e in doc["estimates"]:
        for key in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
            assert math.isfinite(e[key])
        assert e["ci_low"] < e["estimate"] < e["ci_high"]
        assert e["n_treated"] > 0 and e["n_control"] > 0
    for table in ("learners", "action_items", "skill_assessments"):
        q = doc["data_quality"][table]
        assert q["rows_used"] + sum(q["excluded"].values()) == q["rows_read"]


def test_evaluate_gives_the_notebooks_results(good_run):
    from lcstats.core.files import dumps_json
    from lcstats.estimation.evaluation import evaluate
    from lcstats.params import load_params
    from lcstats.reporting.results import results_document

    outcome, tmp = good_run
    done = evaluate(load_params(tmp / "small.yaml"))
    doc = results_document(**{k: v for k, v in done.report_arguments("x").items() if k != "run_id"})
    assert dumps_json(doc) == (outcome.run_dir / "results.json").read_text(encoding="utf-8")


def test_run_json_records_provenance(good_run, small_programme_dir):
    from lcstats.core.files import sha256_file

    outcome, _ = good_run
    run = json.loads((outcome.run_dir / "run.json").read_text())
    assert run["status"] == "succeeded"
    assert run["inputs"]["learners"]["sha256"] == sha256_file(small_programme_dir / "learners.csv")
    assert run["parameters"]["alpha"] == 0.05  # defaults filled in
    assert {"python", "pandas", "statsmodels", "lcstats"} <= set(run["versions"])
    assert {"commit", "dirty"} <= set(run["git"])
    if (ROOT / ".git").exists():  # a clone (as CI's): the commit is always known
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        assert run["git"]["commit"] == head.stdout.strip()
    assert run["started"] <= run["ended"]


def test_report_is_self_contained_and_shows_no_identifier(good_run, small_programme_dir):
    import pandas as pd

    outcome, _ = good_run
    html = (outcome.run_dir / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    ids = set(pd.read_csv(small_programme_dir / "learners.csv", dtype=str)["learner_id"])
    assert identifier_leaks(html, ids) == []
    assert "Executive summary" in html


def test_invalid_params_exit_2_with_no_run_folder_and_no_kernel_left(
    tmp_path, small_programme_dir, capsys
):
    params = write_params(tmp_path / "bad.yaml", small_programme_dir, alhpa=0.1)
    code = main(["run", str(params), "--output-dir", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown parameter 'alhpa'" in err and "did you mean 'alpha'" in err
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir() if not p.name.startswith("runs.sqlite")) == []
    from lcstats.running.ledger import list_runs

    runs = list_runs(reports)
    assert list(runs["status"]) == ["invalid"] and list(runs["evaluation"]) == ["bad"]
    assert "alhpa" in runs["message"][0]
    assert kernels_left() == []


def test_no_comparison_group_fails_in_kernel_with_exit_2_and_keeps_latest(
    tmp_path, good_run, small_programme_dir
):
    import pandas as pd

    outcome, _ = good_run
    data = tmp_path / "data"
    data.mkdir()
    for name in ("action_items.csv", "skill_assessments.csv"):
        (data / name).write_bytes((small_programme_dir / name).read_bytes())
    learners = pd.read_csv(small_programme_dir / "learners.csv", dtype=str)
    learners["coached"] = "1"
    learners["coaching_sessions"] = "3"
    learners.to_csv(data / "learners.csv", index=False)
    reports = outcome.run_dir.parent.parent
    before = (reports / "small" / "latest").resolve()
    params = write_params(tmp_path / "small.yaml", data, evaluation="small")
    failed = run_evaluation(params, output_dir=reports)
    assert failed.status == "invalid" and failed.exit_code == 2
    assert "comparison group" in failed.message
    assert (failed.run_dir / "failure.html").is_file()
    assert (failed.run_dir / "evaluation.ipynb").is_file()  # partly executed, kept for analysts
    assert json.loads((failed.run_dir / "run.json").read_text())["status"] == "invalid"
    assert (reports / "small" / "latest").resolve() == before
    assert not (failed.run_dir / HANDOVER_FILE).exists()
    assert kernels_left() == []


def test_the_cli_frees_its_tables_before_the_notebook_runs(
    small_programme_dir, tmp_path, monkeypatch
):
    """The kernel reads its own copy: the run's process must not hold a second one meanwhile
    (at 1M learners that halved the peak memory of the run)."""
    import gc
    import weakref

    from lcstats.running import runner

    tables, alive = [], []
    preflight, papermill = runner.preflight, runner.Attempt._papermill

    def watched_preflight(params):
        hashes, programme = preflight(params)
        tables.append(weakref.ref(programme))
        return hashes, programme

    def counting(self, *args, **kwargs):
        gc.collect()
        alive.append([ref() is not None for ref in tables])
        return papermill(self, *args, **kwargs)

    monkeypatch.setattr(runner, "preflight", watched_preflight)
    monkeypatch.setattr(runner.Attempt, "_papermill", counting)
    params = write_params(tmp_path / "small.yaml", small_programme_dir, evaluation="small")
    outcome = run_evaluation(params, output_dir=tmp_path / "reports")
    assert outcome.status == "succeeded", outcome.message
    assert alive == [[False]]


def test_identifier_leaks_finds_whole_words_only():
    html = "<p>Cohort EMP-0001234 had 12 learners</p><img src='data:image/png;base64,EMP00012'>"
    assert identifier_leaks(html, {"EMP-0001234", "EMP00012", "12", "EMP-000123"}) == [
        "EMP-0001234"
    ]


def test_console_script_runs_and_prints_the_run_folder(tmp_path, small_programme_dir):
    params = write_params(tmp_path / "cli.yaml", small_programme_dir, evaluation="cli")
    proc = subprocess.run(
        [str(LCSTATS), "run", str(params), "--output-dir", str(tmp_path / "reports")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert (run_dir / "report.html").is_file()
    assert "Traceback" not in proc.stderr


def _without_provenance(html: str) -> str:
    """The report without what depends on the run's history: its provenance block and the line
    on what changed since the previous successful run."""
    start, end = (
        html.index('<section id="provenance">'),
        html.index("</section>", html.index('<section id="provenance">')),
    )
    html = html[:start] + html[end:]
    return re.sub(r'<p id="since-last-run">.*?</p>', "", html, flags=re.S)


def test_same_inputs_give_identical_results_and_report(good_run):
    outcome, tmp = good_run
    again = run_evaluation(tmp / "small.yaml", output_dir=tmp / "reports")
    assert again.status == "succeeded"
    assert again.run_dir != outcome.run_dir
    assert (again.run_dir / "results.json").read_bytes() == (
        outcome.run_dir / "results.json"
    ).read_bytes()
    first = (outcome.run_dir / "report.html").read_text()
    second = (again.run_dir / "report.html").read_text()
    assert first != second  # the provenance block names the run
    assert _without_provenance(first) == _without_provenance(second)
    assert "This is the first successful run of this evaluation" in first
    assert f"Since the last successful run ({outcome.run_dir.name})" in second
    assert (
        "is unchanged at" in second and "no change in the learners, cohorts or parameters" in second
    )


def test_skip_unchanged_skips_only_when_nothing_changed(good_run, tmp_path):
    import yaml

    outcome, tmp = good_run
    skipped = run_evaluation(tmp / "small.yaml", output_dir=tmp / "reports", skip_unchanged=True)
    assert skipped.status == "skipped" and skipped.exit_code == 0
    changed = yaml.safe_load((tmp / "small.yaml").read_text())
    changed["alpha"] = 0.1
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(changed))
    rerun = run_evaluation(tmp_path / "small.yaml", output_dir=tmp / "reports", skip_unchanged=True)
    assert rerun.status == "succeeded"


def test_ledger_records_every_run(good_run, capsys):
    outcome, tmp = good_run
    assert main(["runs", "--output-dir", str(tmp / "reports"), "--evaluation", "small"]) == 0
    out = capsys.readouterr().out
    assert outcome.run_dir.name in out and "succeeded" in out


def test_run_all_runs_each_file_and_reports_failures(tmp_path, small_programme_dir, capsys):
    folder = tmp_path / "params"
    folder.mkdir()
    write_params(folder / "a.yaml", small_programme_dir, evaluation="a")
    write_params(folder / "b.yaml", small_programme_dir, evaluation="b", alpha="x")
    code = main(["run-all", str(folder), "--jobs", "2", "--output-dir", str(tmp_path / "reports")])
    captured = capsys.readouterr()
    assert code == 2  # one invalid evaluation, none failed
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["evaluation", "status"]
    assert any(line.split()[:2] == ["a", "succeeded"] for line in lines)
    assert any(line.split()[:2] == ["b", "invalid"] for line in lines)
    assert "[2/2]" in captured.err
    assert (tmp_path / "reports" / "a" / "latest" / "report.html").is_file()


def test_killed_run_leaves_nothing_that_blocks_the_next_and_no_kernel(
    tmp_path, small_programme_dir
):
    import os
    import signal
    import time

    import psutil

    params = write_params(tmp_path / "killed.yaml", small_programme_dir, evaluation="killed")
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [str(LCSTATS), "run", str(params), "--output-dir", str(reports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list((reports / "killed").glob(f".*.partial/{HANDOVER_FILE}")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    kernels = kernel_processes(proc.pid)
    assert kernels, "the run's kernel should be running by now"
    os.kill(proc.pid, signal.SIGKILL)  # mid-run, as an out-of-memory killer or a timeout would
    proc.wait()
    _, alive = psutil.wait_procs(kernels, timeout=30)  # the kernel notices its parent is gone
    assert alive == []
    assert not (reports / "killed" / "latest").exists()
    assert not list((reports / "killed").glob("*/report.html"))  # nothing half-published

    outcome = run_evaluation(params, output_dir=reports)
    assert outcome.status == "succeeded", outcome.message
    assert (reports / "killed" / "latest").resolve() == outcome.run_dir.resolve()


def test_a_kernel_started_by_the_caller_is_used_and_stopped(
    small_programme_dir, tmp_path, monkeypatch
):
    """The command line starts the kernel before importing the rest: the run must use that
    kernel (start no other) and stop it."""
    from lcstats.running import runner
    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    kernel = RunKernel(NOTEBOOK_DIR)
    pid = kernel.pid if kernel.km else None
    assert pid in [p.pid for p in kernel_processes()]

    def no_second_kernel(*args, **kwargs):
        raise AssertionError("the run started a kernel of its own")

    monkeypatch.setattr(runner, "RunKernel", no_second_kernel)
    params = write_params(tmp_path / "small.yaml", small_programme_dir, evaluation="small")
    outcome = run_evaluation(params, output_dir=tmp_path / "reports", kernel=kernel)
    assert outcome.status == "succeeded", outcome.message
    assert pid not in kernels_left()  # stopped: its process has ended


def _user_expressions(km, expressions: dict[str, str]) -> dict[str, str]:
    """Evaluate expressions in a started kernel; their text forms by name."""
    from jupyter_core.utils import run_sync

    client = km.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=120)
        msg_id = client.execute("", silent=True, user_expressions=expressions)
        while True:
            reply = run_sync(client.get_shell_msg)(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
    finally:
        client.stop_channels()
    found = reply["content"]["user_expressions"]
    return {name: found[name]["data"]["text/plain"] for name in expressions}


def test_the_run_kernel_is_launched_first_keeps_no_history_and_freezes_its_imports():
    """The command line waits only for the kernel's launch; the kernel then imports the
    statistics, takes them out of the garbage collector's sweeps and writes no input history."""
    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    kernel = RunKernel(NOTEBOOK_DIR)
    try:
        kernel.wait_started()
        assert kernel.pid in [p.pid for p in kernel_processes()]
        found = kernel.run(
            lambda km: _user_expressions(
                km,
                {
                    "frozen": "__import__('gc').get_freeze_count()",
                    "collecting": "__import__('gc').isenabled()",
                    "history": "get_ipython().history_manager.enabled",
                    "imported": "'lcstats.reporting.report' in __import__('sys').modules",
                    # statsmodels imported without polars, which stays importable (moderndid)
                    "polars_left_out": "'polars' in __import__('sys').modules",
                    "polars": "__import__('polars').__name__",
                    # and without formulaic: patsy stays statsmodels' formula engine
                    "formulaic_left_out": "'formulaic' in __import__('sys').modules",
                    "engine": "__import__('statsmodels.formula._manager', fromlist=['x'])"
                    ".DEFAULT_FORMULA_ENGINE",
                    "formulaic": "__import__('formulaic').__name__",
                    # started without the debugger's debugpy, which stays importable
                    "debugger": "__import__('ipykernel.debugger').debugger._is_debugpy_available",
                    "debugpy_left_out": "'debugpy' in __import__('sys').modules",
                    "debugpy": "__import__('debugpy').__name__",
                    "frozen_modules": "__import__('sys')._xoptions.get('frozen_modules')",
                    "cwd_first": "__import__('sys').path[0] in ('', __import__('os').getcwd())",
                },
            ),
            timeout=180,
        )
    finally:
        kernel.stop()
    assert found["debugger"] == "False" and found["debugpy_left_out"] == "False"
    assert found["debugpy"] == "'debugpy'" and found["frozen_modules"] == "None"
    assert found["cwd_first"] == "False"  # as ipykernel_launcher: imports do not start at cwd
    assert int(found["frozen"]) > 100_000  # the warm-up's objects
    assert found["collecting"] == "True"  # off only while the warm-up imports
    assert found["history"] == "False"
    assert found["imported"] == "True"
    assert found["polars_left_out"] == "False" and found["polars"] == "'polars'"
    assert found["formulaic_left_out"] == "False" and found["formulaic"] == "'formulaic'"
    assert found["engine"] == "'patsy'"


def test_a_run_kernel_without_warm_up_collects_garbage():
    """The garbage collector is off from the kernel's first line (`LAUNCH`) and on again once it
    has started, whether or not it has imports to warm up."""
    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    kernel = RunKernel(NOTEBOOK_DIR, warm_imports="")
    try:
        found = kernel.run(
            lambda km: _user_expressions(km, {"collecting": "__import__('gc').isenabled()"}),
            timeout=180,
        )
    finally:
        kernel.stop()
    assert found["collecting"] == "True"


def test_the_run_kernel_hands_papermill_a_client_connected_while_it_warmed_up(tmp_path):
    """The client nbclient asks the manager for is the one connected during the warm-up (no
    second client, no second wait), and the first cell's output arrives on it."""
    import nbformat
    import papermill as pm

    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('first cell')")])
    nbformat.write(nb, tmp_path / "one.ipynb")
    kernel = RunKernel(NOTEBOOK_DIR, warm_imports="import lcstats.reporting.report")
    try:
        kernel.run(
            lambda km: pm.execute_notebook(
                str(tmp_path / "one.ipynb"),
                str(tmp_path / "out.ipynb"),
                kernel_name="lcstats",
                km=km,
                progress_bar=False,
            ),
            timeout=180,
        )
        made = kernel.km.clients_made
        assert len(made) == 1 and made[0].answered and kernel.km.ready_client is None
    finally:
        kernel.stop()
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert [o.get("text") for o in outputs] == ["first cell\n"]


def test_a_run_kernel_stopped_while_warming_up_stops_at_once():
    """A run that ends before its notebook (bad input) stops its kernel without waiting for
    the warm-up, which the connection step would otherwise wait for."""
    import time

    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    kernel = RunKernel(NOTEBOOK_DIR, warm_imports="import time; time.sleep(120)")
    kernel.wait_started()
    pid = kernel.pid
    time.sleep(1.0)  # the connection is waiting for the kernel's answer
    t0 = time.monotonic()
    kernel.stop()
    assert time.monotonic() - t0 < 15  # not the warm-up's 120 s (a hang, not a speed test)
    assert pid not in kernels_left()


def test_a_killed_kernel_takes_the_processes_it_forked_with_it(tmp_path):
    """Killing a run's kernel (a fault, or the run's time limit) ends its process group: a
    forked copy drawing the report's figures, or anything else the notebook started, does not
    outlive it."""
    import time

    import psutil

    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    note = tmp_path / "copy.pid"
    kernel = RunKernel(
        NOTEBOOK_DIR,
        warm_imports=(
            "import os, time; copy = os.fork(); copy or (time.sleep(120), os._exit(0)); "
            f"open({str(note)!r}, 'w').write(str(copy))"
        ),
    )
    try:
        kernel.wait_started()
        deadline = time.monotonic() + 60
        while not note.exists() or not note.read_text():
            assert time.monotonic() < deadline, "the kernel did not fork"
            time.sleep(0.05)
        copy = int(note.read_text())
        assert psutil.pid_exists(copy)
        kernel.kill()
        deadline = time.monotonic() + 10
        while not _ended(copy):
            assert time.monotonic() < deadline, "the kernel's copy outlived it"
            time.sleep(0.05)
    finally:
        kernel.stop()


def _ended(pid: int) -> bool:
    """Whether a process has ended (gone, or a zombie waiting to be reaped)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_console_entry_exits_with_mains_code_after_freezing_the_heap(monkeypatch):
    import gc

    from lcstats import cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    held = {name: sys.modules.pop(name, None) for name in cli.UNUSED_IMPORTS}
    try:
        with pytest.raises(SystemExit) as stop:
            cli.entry()
        assert stop.value.code == 3
        assert gc.get_freeze_count() > 0
        assert all(sys.modules[name] is None for name in cli.UNUSED_IMPORTS)  # never imported
    finally:
        gc.unfreeze()
        for name, module in held.items():  # this process goes on: give them back
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_a_failed_warm_up_import_leaves_the_kernel_collecting_garbage():
    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    kernel = RunKernel(NOTEBOOK_DIR, warm_imports="import lcstats_has_no_such_module")
    try:
        found = kernel.run(
            lambda km: _user_expressions(
                km,
                {
                    "collecting": "__import__('gc').isenabled()",
                    "imported": "'lcstats_has_no_such_module' in __import__('sys').modules",
                },
            ),
            timeout=180,
        )
    finally:
        kernel.stop()
    assert found == {"collecting": "True", "imported": "False"}


def test_the_console_entry_exits_with_the_runs_code_while_a_given_up_step_is_in_duckdb(
    tmp_path,
):
    # a step given up at the time limit may still be inside DuckDB when the run ends: the
    # interpreter's usual exit then aborted the process (134, "terminate called ...")
    script = tmp_path / "given_up.py"
    script.write_text(
        "import threading, time\n"
        "import duckdb\n"
        "from lcstats import cli\n"
        "from lcstats.core.threads import STEP_THREAD\n"
        "def stuck():\n"
        "    with duckdb.connect() as con:\n"
        "        con.execute('SET threads TO 2')\n"
        "        con.execute('SELECT count(*) FROM range(100000000000)').fetchall()\n"
        "def main():\n"
        "    threading.Thread(target=stuck, name=STEP_THREAD, daemon=True).start()\n"
        "    time.sleep(1)\n"
        "    print('given up', end='')\n"
        "    return 1\n"
        "cli.main = main\n"
        "cli.entry()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "given up"), done.stderr
    assert "terminate" not in done.stderr
