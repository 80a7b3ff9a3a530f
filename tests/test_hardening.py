"""Hardening (issue 6): every bad input gets a clear answer, nothing leaks, nothing is lost.

The catalogue of bad inputs goes through the real commands, ``lcstats validate`` and
``lcstats run``: each gives exit code 2 and a message naming the file (or parameter), the column
and example rows where relevant, and what to do; never a traceback. One output folder holds a
good run of the same evaluation, made once for the module: no bad input may touch it (its
``latest`` link and report stay byte for byte the same) or be recorded as a success.

`validate` is run on the whole catalogue. `run` stops before any kernel for parameter and data
problems (cheap: every such case is run); estimation problems surface inside the kernel (about
5-10 s each), so only two of them are run end to end.

Also here: string parameters cannot inject code into the kernel, and the memory check refuses
inputs too large for the machine before anything is read.
"""

from __future__ import annotations

import ast
import html
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcstats.cli import main
from lcstats.core import resources
from lcstats.core.errors import InputError
from lcstats.data.load import load_programme
from lcstats.running.ledger import list_runs
from lcstats.running.runner import NOTEBOOK_DIR, run_evaluation
from tests.conftest import EXAMPLE, ROOT, write_params

EVALUATION = "hard"
TABLES = ("learners", "action_items", "skill_assessments")


@pytest.fixture(autouse=True)
def no_memory_override(monkeypatch):
    monkeypatch.delenv(resources.LIMIT_ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def programme_dir(tmp_path_factory) -> Path:
    """A small simulated programme (300 learners) as CSV; tests change copies of it."""
    from lcstats.data.simulate import simulate_programme, write_programme

    out = tmp_path_factory.mktemp("programme")
    write_programme(simulate_programme(n_learners=300, seed=11), out)
    (out / "truth.json").unlink()
    return out


@dataclass(frozen=True)
class GoodRun:
    root: Path
    run_dir: Path
    report: bytes
    latest: str
    folder: Path
    title: str
    learners: Path


# --- injection payloads: Python that, if it ever ran, would create a file PWNED_<token>_<n> -----

TOKEN = uuid.uuid4().hex[:8]


def hostile(n: int, where: str = "") -> str:
    return f"__import__('os').system('touch {where}PWNED_{TOKEN}_{n}')"


def hostile_title(folder: Path) -> str:
    """Breaks out of double, triple and f-string quoting, with a newline and a trailing backslash."""
    return (
        f'"; {hostile(1)}; x = "'
        f"'''; {hostile(2)}; '''"
        f"\n{hostile(3, f'{folder}/')}\n"
        f"{{{hostile(4)}}} <script>alert(1)</script> \\"
    )


HOSTILE_COLUMN = f"t'); {hostile(6)}; ('"


def pwned_files(*folders: Path) -> list[Path]:
    """PWNED files in `folders` (searched through), the kernel's and this process's folders."""
    found = [p for folder in folders for p in folder.rglob(f"PWNED_{TOKEN}_*")]
    for folder in (Path.cwd(), NOTEBOOK_DIR, ROOT, Path(tempfile.gettempdir())):
        found += folder.glob(f"PWNED_{TOKEN}_*")
    return found


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, programme_dir) -> GoodRun:
    """An output folder holding one successful run of the evaluation 'hard'.

    The run doubles as the injection test (a kernel run costs about 10 s): its title, the name
    of its learners file and a column mapping are Python code that would leave a PWNED file if
    it were ever executed rather than treated as text.
    """
    tmp = tmp_path_factory.mktemp("good")
    data = tmp / "data"
    shutil.copytree(programme_dir, data)
    learners = data / f'l\'"; {hostile(5)}; x=".csv'
    edit(data, "learners", lambda f: f.rename(columns={"team_id": HOSTILE_COLUMN}))
    (data / "learners.csv").rename(learners)
    title = hostile_title(tmp)
    params = write_params(
        tmp / "good.yaml",
        data,
        evaluation=EVALUATION,
        title=title,
        learners=str(learners),
        columns={"learners": {"team_id": HOSTILE_COLUMN}},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        outcome = run_evaluation(params, output_dir=tmp / "reports")
    assert outcome.status == "succeeded", outcome.message
    latest = outcome.run_dir.parent / "latest"
    return GoodRun(
        tmp / "reports",
        outcome.run_dir,
        (latest / "report.html").read_bytes(),
        str(latest.readlink()),
        tmp,
        title,
        learners,
    )


def assert_good_run_untouched(good: GoodRun) -> None:
    latest = good.root / EVALUATION / "latest"
    assert str(latest.readlink()) == good.latest
    assert (latest / "report.html").read_bytes() == good.report
    runs = list_runs(good.root, limit=1000)
    assert runs.loc[runs["status"] == "succeeded", "run_id"].tolist() == [good.run_dir.name]
    assert not list((good.root / EVALUATION).glob(".*.partial"))


# --- building bad inputs ----------------------------------------------------------------------


def read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)


def edit(folder: Path, table: str, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
    frame = read(folder, table)
    changed = change(frame)
    (frame if changed is None else changed).to_csv(folder / f"{table}.csv", index=False)


def cells(**values: dict[int, str]) -> Callable[[pd.DataFrame], None]:
    """Set cells: column=value-by-row (0-based data rows; data row i is CSV line i + 2)."""

    def change(frame: pd.DataFrame) -> None:
        for column, rows in values.items():
            for i, value in rows.items():
                frame.loc[i, column] = value

    return change


def keep_learners(folder: Path, ids: list[str]) -> None:
    for table in TABLES:
        edit(folder, table, lambda f: f[f["learner_id"].isin(ids)])


def missing_file(d: Path) -> dict:
    (d / "action_items.csv").unlink()
    return {}


def empty_file(d: Path) -> dict:
    (d / "learners.csv").write_bytes(b"")
    return {}


def wrong_delimiter(d: Path) -> dict:
    read(d, "learners").to_csv(d / "learners.csv", index=False, sep=";")
    return {}


def non_utf8(d: Path) -> dict:
    text = read(d, "learners").assign(role=lambda f: f["role"].where(f.index != 3, "Analysté"))
    (d / "learners.csv").write_bytes(text.to_csv(index=False).encode("latin-1"))
    return {}


def byte_order_mark(d: Path) -> dict:
    for table in TABLES:
        path = d / f"{table}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    return {}


def misspelled_column(d: Path) -> dict:
    edit(d, "learners", lambda f: f.rename(columns={"team_id": "teamid"}))
    return {}


def duplicate_ids(d: Path) -> dict:
    edit(d, "learners", lambda f: pd.concat([f, f.iloc[[4]]], ignore_index=True))
    return {}


def unknown_learner_items(d: Path) -> dict:
    edit(d, "action_items", cells(learner_id={3: "L99999", 10: "L99999"}))
    return {"unknown_learners": "reject"}  # by default they are excluded and counted


def unknown_learner_assessments(d: Path) -> dict:
    edit(d, "skill_assessments", cells(learner_id={2: "X1"}))
    return {"unknown_learners": "reject"}


def unparseable_dates(d: Path) -> dict:
    edit(d, "action_items", cells(due_on={2: "31/02/2026"}, created_on={7: "last week"}))
    return {}


def dates_out_of_range(d: Path) -> dict:
    edit(d, "action_items", cells(completed_on={4: "2263-01-01"}))
    return {}


def dates_out_of_order(d: Path) -> dict:
    edit(d, "action_items", cells(due_on={3: "2020-01-01"}))
    return {}


def level_off_scale(d: Path) -> dict:
    edit(d, "skill_assessments", cells(level={6: "9"}, target_level={8: "0"}))
    return {}


def treatment_not_binary(d: Path) -> dict:
    edit(d, "learners", cells(coached={3: "maybe", 9: "2"}))
    return {}


def yes_no_spellings(d: Path) -> dict:
    def change(f: pd.DataFrame) -> None:
        f["coached"] = f["coached"].map({"1": "Yes", "0": "no"})
        f["manager_coached"] = f["manager_coached"].map({"1": "TRUE", "0": "false"})

    edit(d, "learners", change)
    return {}


def all_coached(d: Path) -> dict:
    edit(d, "learners", lambda f: f.assign(coached="1"))
    return {}


def none_coached(d: Path) -> dict:
    edit(d, "learners", lambda f: f.assign(coached="0", coaching_sessions="0"))
    return {}


def too_few_learners(d: Path) -> dict:
    learners = read(d, "learners")
    ids = [*learners[learners["coached"] == "1"]["learner_id"][:3]]
    keep_learners(d, ids + [*learners[learners["coached"] == "0"]["learner_id"][:3]])
    return {}


def constant_covariate(d: Path) -> dict:
    edit(d, "learners", lambda f: f.assign(engagement="3.5"))
    return {}


def perfect_predictor(d: Path) -> dict:
    edit(d, "learners", lambda f: f.assign(grade=f["coached"].map({"1": "senior", "0": "junior"})))
    return {"covariates": ["tenure_months", "grade"]}


def wrong_types(d: Path) -> dict:
    return {"alpha": "0.05x", "methods": "aipw"}


def unknown_key(d: Path) -> dict:
    return {"alhpa": 0.1}


def data_path_missing(d: Path) -> dict:
    return {"learners": str(d / "exports" / "learners.csv")}


def too_large_for_memory(d: Path) -> dict:
    return {}


@dataclass(frozen=True)
class Case:
    """A bad input, and what the message must say (every fragment, in stderr)."""

    build: Callable[[Path], dict]
    expect: tuple[str | tuple[str, ...], ...]  # a tuple: any one of these
    kind: str = "data"  # data | params | estimation | valid
    env: dict[str, str] = field(default_factory=dict)


WHAT_TO_DO = "what to do: "
CASES = {
    "missing file": Case(
        missing_file,
        ("action_items.csv: the action_items file does not exist", WHAT_TO_DO + "check the path"),
    ),
    "empty file": Case(
        empty_file, ("learners.csv: the file is empty", WHAT_TO_DO + "export the learners table")
    ),
    "wrong delimiter": Case(
        wrong_delimiter,
        (
            "learners.csv: the columns are separated by semicolons, expected commas",
            WHAT_TO_DO + "export as comma-separated CSV",
        ),
    ),
    "non-UTF-8 bytes": Case(
        non_utf8,
        (
            "learners.csv: the file is not UTF-8 text: byte 0xe9 on line 5",
            "[rows 5]",
            WHAT_TO_DO + "save or export it as 'CSV UTF-8'",
        ),
    ),
    "byte-order mark": Case(byte_order_mark, ("valid",), kind="valid"),
    "misspelled column": Case(
        misspelled_column,
        (
            "learners.csv, column 'team_id': required column 'team_id' is missing",
            WHAT_TO_DO + "rename 'teamid' to 'team_id'",
        ),
    ),
    "duplicate learner ids": Case(
        duplicate_ids,
        (
            "learners.csv, column 'learner_id': expected each learner_id only once",
            "'L00005'",
            "[rows 6, 302]",
            WHAT_TO_DO + "remove the duplicated rows",
        ),
    ),
    "action items for unknown learners": Case(
        unknown_learner_items,
        (
            "action_items.csv, column 'learner_id': 2 row(s) name learners that are not in the "
            "learners table",
            "'L99999'",
            "[rows 5, 12]",
            WHAT_TO_DO + "export the learners table and this table from the same population",
        ),
    ),
    "assessments for unknown learners": Case(
        unknown_learner_assessments,
        (
            "skill_assessments.csv, column 'learner_id': 1 row(s) name learners that are not in",
            "'X1'",
            "[rows 4]",
            WHAT_TO_DO + "export the learners table",
        ),
    ),
    "unparseable dates": Case(
        unparseable_dates,
        (
            "action_items.csv, column 'due_on': expected a date written YYYY-MM-DD; dates such as "
            "05/01/2026 are ambiguous (5 January or 1 May?), found '31/02/2026' [rows 4]",
            "dayfirst: true",
            "action_items.csv, column 'created_on': expected a real date written YYYY-MM-DD, "
            "found 'last week' [rows 9]",
            WHAT_TO_DO + "export dates in ISO format",
        ),
    ),
    "dates beyond the calendar range": Case(
        dates_out_of_range,
        (
            "action_items.csv, column 'completed_on': expected a date between 1677-09-22 and "
            "2262-04-11, found '2263-01-01' [rows 6]",
            WHAT_TO_DO + "check the year",
        ),
    ),
    "dates out of order": Case(
        dates_out_of_order,
        (
            "action_items.csv, column 'due_on': 'due_on' is before 'created_on'",
            "[rows 5]",
            WHAT_TO_DO + "check the dates in these rows",
        ),
    ),
    "levels outside the scale": Case(
        level_off_scale,
        (
            "skill_assessments.csv, column 'level': expected a level on the skill scale 1 to 5, "
            "found '9' [rows 8]",
            "skill_assessments.csv, column 'target_level': expected a level on the skill scale 1 "
            "to 5, found '0' [rows 10]",
            WHAT_TO_DO + "check the scale (scale_min / scale_max in the parameters)",
        ),
    ),
    "treatment not 0/1": Case(
        treatment_not_binary,
        (
            "learners.csv, column 'coached': expected 0/1, yes/no, y/n or true/false, found "
            "'maybe', '2' [rows 5, 11]",
            WHAT_TO_DO + "code 'coached' as 1 (yes) or 0 (no)",
        ),
    ),
    "yes/no spellings": Case(yes_no_spellings, ("valid",), kind="valid"),
    "every learner coached": Case(
        all_coached,
        ("every learner was treated ('coached'), so there is no comparison group",),
        kind="estimation",
    ),
    "no learner coached": Case(
        none_coached,
        ("no learner was treated ('coached'), so there is no comparison group",),
        kind="estimation",
    ),
    "too few learners": Case(
        too_few_learners,
        ("too few learners for a difference estimate", "need at least 5 in each group"),
        kind="estimation",
    ),
    "constant covariate": Case(
        constant_covariate,
        (
            "covariate 'engagement' has the same value for every learner",
            "remove it from the covariates",
        ),
        kind="estimation",
    ),
    "covariate predicts coaching": Case(
        perfect_predictor,
        (
            # the covariate is named, or (older wording) the reason and the remedy are given
            ("no comparison group within grade", "predict coaching perfectly"),
            ("cannot be compared", "Remove the covariate"),
        ),
        kind="estimation",
    ),
    "parameters of the wrong type": Case(
        wrong_types,
        (
            "p.yaml: parameter 'alpha': expected a number, found '0.05x'",
            "p.yaml: parameter 'methods': expected a list, found 'aipw'",
            WHAT_TO_DO + "write a plain number",
            WHAT_TO_DO + 'write a list in square brackets, for example methods: ["aipw"]',
        ),
        kind="params",
    ),
    "unknown parameter key": Case(
        unknown_key,
        ("p.yaml: unknown parameter 'alhpa'", WHAT_TO_DO + "did you mean 'alpha'?"),
        kind="params",
    ),
    "data path does not exist": Case(
        data_path_missing,
        (
            "exports/learners.csv: the learners file does not exist",
            WHAT_TO_DO + "check the path in the parameters file",
        ),
    ),
    "too large for the memory": Case(
        too_large_for_memory,
        (
            ".csv: the input tables need about ",
            " MB of memory to analyse, but only 1.0 MB is available (the limit set by "
            "LCSTATS_MEMORY_LIMIT_BYTES)",
            WHAT_TO_DO + "run on a larger machine, or reduce the export",
        ),
        env={resources.LIMIT_ENV_VAR: "1000000"},
    ),
}
# estimation problems run end to end through a kernel (the others stop before one)
KERNEL_RUNS = ("too few learners", "covariate predicts coaching")


@pytest.fixture
def bad_input(request, tmp_path, programme_dir, monkeypatch) -> tuple[Case, Path]:
    case = CASES[request.param]
    data = tmp_path / "data"
    shutil.copytree(programme_dir, data)
    overrides = case.build(data)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    return case, write_params(tmp_path / "p.yaml", data, evaluation=EVALUATION, **overrides)


def command(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "internal error" not in err
    return code, out, err


def assert_clear(case: Case, err: str) -> None:
    for fragment in case.expect:
        options = (fragment,) if isinstance(fragment, str) else fragment
        assert any(f in err for f in options), f"{fragment!r} not in:\n{err}"
    if case.kind in ("data", "params"):
        assert WHAT_TO_DO in err


@pytest.mark.parametrize("bad_input", list(CASES), indirect=True)
def test_validate_gives_a_clear_answer(bad_input, capsys, good_run):
    case, params = bad_input
    code, out, err = command(capsys, "validate", str(params))
    if case.kind == "valid":
        assert code == 0, err
        assert "valid (learners 300 rows" in out
        return
    assert code == 2
    assert out == ""
    assert_clear(case, err)
    if case.kind == "estimation":
        assert err.startswith("cannot estimate: ")
    else:
        assert "problem" in err.splitlines()[0]
    assert_good_run_untouched(good_run)


@pytest.mark.parametrize(
    "bad_input",
    [
        name
        for name, case in CASES.items()
        if case.kind != "valid" and (case.kind != "estimation" or name in KERNEL_RUNS)
    ],
    indirect=True,
)
def test_run_gives_a_clear_answer_and_leaves_the_good_run_alone(bad_input, capsys, good_run):
    case, params = bad_input
    before = sorted(p.name for p in (good_run.root / EVALUATION).iterdir())
    code, out, err = command(capsys, "run", str(params), "--output-dir", str(good_run.root))
    assert code == 2
    assert_clear(case, err)
    assert_good_run_untouched(good_run)
    after = sorted(p.name for p in (good_run.root / EVALUATION).iterdir())
    if case.kind != "estimation":  # stopped before any kernel: nothing written
        assert after == before
        assert out == ""
        return
    # the notebook stopped at the estimate: a run folder with the reason, marked invalid
    assert f"{EVALUATION}: invalid (run folder: " in err
    assert "failed at step '2. Effects of coaching'" in err
    (new,) = set(after) - set(before)
    run_dir = good_run.root / EVALUATION / new
    assert json.loads((run_dir / "run.json").read_text())["status"] == "invalid"
    assert (run_dir / "failure.html").is_file() and not (run_dir / "report.html").exists()
    runs = list_runs(good_run.root, evaluation=EVALUATION)
    assert runs.set_index("run_id").loc[new, "status"] == "invalid"


# --- injection through parameters -------------------------------------------------------------


def test_papermill_writes_string_parameters_as_literals_never_code():
    from papermill.translators import PythonTranslator

    for value in [hostile_title(Path("/tmp")), '\\"', "\\", "'''", '"""', "\x00\u2028é"]:
        code = PythonTranslator.translate(value)
        assert ast.literal_eval(code) == value
        tree = ast.parse(PythonTranslator.codify({"title": value}))
        assert [type(node) for node in tree.body] == [ast.Assign]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(), st.one_of(st.text(), st.lists(st.text(), max_size=3))))
def test_papermill_parameter_cell_round_trips_any_text(params):
    """Papermill does not use repr(): it escapes with unicode_escape and \\". Check it is safe."""
    from papermill.translators import PythonTranslator

    code = PythonTranslator.codify({"title": "x", "values": params})
    namespace: dict = {}
    tree = ast.parse(code)
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    for node in tree.body:
        namespace[node.targets[0].id] = ast.literal_eval(node.value)
    assert namespace == {"title": "x", "values": params}


def test_string_parameters_cannot_run_code_in_the_kernel(good_run):
    """The good run's hostile title, data path and column name reached the kernel as text."""
    assert pwned_files(good_run.folder) == []
    report = good_run.report.decode("utf-8")
    assert good_run.title in html.unescape(report)  # shown literally...
    assert "<script>alert" not in report and "'''" not in report  # ...and escaped
    # the executed notebook holds the parameters as plain literal assignments
    nb = json.loads((good_run.run_dir / "evaluation.ipynb").read_text(encoding="utf-8"))
    (cell,) = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    injected = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}
    assert injected["title"] == good_run.title
    assert injected["learners"] == str(good_run.learners)
    assert injected["columns"] == {"learners": {"team_id": HOSTILE_COLUMN}}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("treatment", f"coached'); {hostile(7)}; ('", "is not in the file"),
        ("cluster", f"{{{hostile(8)}}}", "is not in the file"),
        ("covariates", [f"x\n{hostile(9)}"], "is not in the file"),
        ("as_of", f"2026-06-30'; {hostile(10)}; '", "YYYY-MM-DD"),
        ("evaluation", f"x'; {hostile(11)}; '", "no spaces or slashes"),
        ("estimand", f"ATE'; {hostile(12)}; '", "'ATE'"),
        ("action_items", f"{{{hostile(13)}}}.csv", "does not exist"),
    ],
)
def test_hostile_values_that_are_not_valid_stop_before_any_kernel(
    key, value, expected, tmp_path, programme_dir, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path / "inject.yaml", programme_dir, **{key: value})
    code, out, err = command(capsys, "run", str(params), "--output-dir", str(tmp_path / "reports"))
    assert code == 2
    assert expected in err
    reports = tmp_path / "reports"
    written = [p for p in reports.rglob("*") if p.is_file()]
    assert not [p for p in written if not p.name.startswith(("runs.sqlite", ".lock"))]
    assert list(list_runs(reports)["status"]) == ["invalid"]  # the attempt is recorded
    assert pwned_files(tmp_path) == []


# --- memory -----------------------------------------------------------------------------------


def fake_proc(monkeypatch, tmp_path, meminfo: str | None, cgroup: dict[str, str] | None) -> None:
    info = tmp_path / "meminfo"
    if meminfo is not None:
        info.write_text(meminfo)
    group = tmp_path / "cgroup"
    group.mkdir()
    for name, text in (cgroup or {}).items():
        (group / name).write_text(text)
    monkeypatch.setattr(resources, "MEMINFO", info)
    monkeypatch.setattr(resources, "CGROUP_DIR", group)


def test_available_memory_reads_meminfo(monkeypatch, tmp_path):
    fake_proc(monkeypatch, tmp_path, "MemTotal: 9000 kB\nMemAvailable:    2000 kB\n", None)
    assert resources.available_memory_bytes() == 2000 * 1024


def test_available_memory_respects_the_cgroup_limit(monkeypatch, tmp_path):
    fake_proc(
        monkeypatch,
        tmp_path,
        "MemAvailable: 8000000 kB\n",
        {
            "memory.max": "3000000\n",
            "memory.current": "2500000\n",
            "memory.stat": "anon 1\ninactive_file 500000\n",
        },
    )
    assert resources.available_memory_bytes() == 3000000 - 2500000 + 500000


def test_cgroup_without_a_limit_is_ignored(monkeypatch, tmp_path):
    fake_proc(monkeypatch, tmp_path, "MemAvailable: 1000 kB\n", {"memory.max": "max\n"})
    assert resources.available_memory_bytes() == 1024000


def test_available_memory_falls_back_to_psutil_then_sysconf(monkeypatch, tmp_path):
    import sys

    fake_proc(monkeypatch, tmp_path, None, None)
    assert resources.available_memory_bytes() > 0  # psutil, when installed
    monkeypatch.setitem(sys.modules, "psutil", None)
    assert resources.available_memory_bytes() > 0  # os.sysconf


def test_need_is_estimated_from_file_sizes(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"x" * 1000)
    (tmp_path / "b.parquet").write_bytes(b"x" * 100)
    paths = {"a": tmp_path / "a.csv", "b": tmp_path / "b.parquet", "c": tmp_path / "nope.csv"}
    need = 1000 * resources.CSV_FACTOR + 100 * resources.PARQUET_FACTOR
    assert resources.input_memory_need(paths) == need
    assert resources.input_memory_need(paths, factor=2) == 2200
    resources.check_input_size(paths, limit=int(need))  # just enough
    with pytest.raises(InputError) as info:
        resources.check_input_size(paths, limit=int(need) - 1)
    (p,) = info.value.problems
    assert p.source == str(tmp_path / "a.csv")  # the largest file
    kb = f"{need / 1000:.1f} kB"
    assert f"need about {kb} of memory to analyse, but only {kb} is available" in p.message
    assert "run on a larger machine" in p.hint and "fewer columns" in p.hint


def test_environment_variable_overrides_the_detected_memory(monkeypatch):
    paths = {t: EXAMPLE / f"{t}.csv" for t in TABLES}
    resources.check_input_size(paths)  # this machine has room for the example
    monkeypatch.setenv(resources.LIMIT_ENV_VAR, "1000")
    with pytest.raises(InputError, match="LCSTATS_MEMORY_LIMIT_BYTES"):
        resources.check_input_size(paths)
    resources.check_input_size(paths, limit=10**12)  # an explicit limit wins
    monkeypatch.setenv(resources.LIMIT_ENV_VAR, "8 GB")
    with pytest.raises(InputError) as info:
        resources.check_input_size(paths)
    assert "expected a whole number of bytes" in str(info.value)


def test_load_programme_refuses_before_reading_anything(monkeypatch):
    import lcstats.data.load

    def no_reading(*args, **kwargs):
        raise AssertionError("a table was read")

    monkeypatch.setattr(lcstats.data.load, "read_table", no_reading)
    with pytest.raises(InputError, match="need about .* of memory"):
        load_programme(*(EXAMPLE / f"{t}.csv" for t in TABLES), memory_limit=10_000)


def test_the_payloads_would_be_noticed_if_they_ran(tmp_path):
    """The check above is only worth something if running a payload leaves a file it finds."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", hostile(99)], cwd=tmp_path, check=True)
    assert [p.name for p in pwned_files(tmp_path)] == [f"PWNED_{TOKEN}_99"]
