"""Shared fixtures: a seeded generator, the Agg backend, and small simulated programmes."""

from __future__ import annotations

import os

# One BLAS thread per process: on 2 cores shared with kernels, threading small matrices only
# adds contention (a 2500 x 15 rank check took 18.6 ms threaded, 0.33 ms single-threaded).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "data" / "example"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)


@pytest.fixture(scope="session")
def small_programme_dir(tmp_path_factory) -> Path:
    """A small synthetic programme (400 learners) written as CSV."""
    from lcstats.data.simulate import simulate_programme, write_programme

    out = tmp_path_factory.mktemp("programme")
    write_programme(simulate_programme(n_learners=400, seed=7), out)
    return out


@pytest.fixture(scope="session")
def example_evaluation():
    """The example evaluation (params/example.yaml), computed once per test session.

    Tests must not change it (its tables are shared).
    """
    import lcstats

    return lcstats.evaluate(lcstats.load_params(ROOT / "params" / "example.yaml"))


@pytest.fixture
def forks_counted(monkeypatch) -> list[int]:
    """The process ids of the copies `lcstats.core.forks` forks meanwhile (it may fork
    whatever this process holds: a test session grows past its memory threshold)."""
    import os

    from lcstats.core import forks

    monkeypatch.setattr(forks, "MAX_FORK_RSS", 1 << 40)
    forked: list[int] = []
    fork = os.fork

    def counted_fork() -> int:
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted_fork)
    return forked


def write_params(path: Path, data_dir: Path, **overrides) -> Path:
    """Write a params YAML pointing at a programme folder."""
    import yaml

    params = {
        "evaluation": "test",
        "learners": str(data_dir / "learners.csv"),
        "action_items": str(data_dir / "action_items.csv"),
        "skill_assessments": str(data_dir / "skill_assessments.csv"),
        "as_of": "2026-06-30",
        "cluster": "team_id",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not ...}
    path.write_text(yaml.safe_dump(params, sort_keys=True), encoding="utf-8")
    return path


# --- real engines: a PostgreSQL server and a Spark session, started once per test session ------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_user() -> list[str]:
    """The prefix that runs a PostgreSQL program as the postgres user (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _as_postgres(*cmd: str) -> None:
    """Run a PostgreSQL program as the postgres user."""
    import subprocess

    done = subprocess.run([*_postgres_user(), *cmd], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stderr or done.stdout}"


def _stop_when_gone(pid: int, *, stop: list[str], remove: str) -> None:
    """Start a watcher (in a session of its own) that runs `stop` and removes the folder
    `remove` once process `pid` has ended: a test session killed from outside (no fixture
    teardown) leaves no server behind. After a normal teardown both are no-ops."""
    import shlex
    import subprocess

    script = (
        f"while kill -0 {pid} 2>/dev/null; do sleep 1; done; "
        f"{shlex.join(stop)} >/dev/null 2>&1; rm -rf {shlex.quote(remove)}"
    )
    subprocess.Popen(
        ["sh", "-c", script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of Debian's packages on 127.0.0.1, in a temporary folder.

    Yields a URL with a password (user ``lcstats``, database ``hr``). `make test` installs the
    server when it is missing (tools/ensure-system-packages).
    """
    import glob
    import shutil
    import tempfile

    import psycopg

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert bins, "PostgreSQL is not installed: run tools/ensure-system-packages (as root)"
    pg = bins[-1]
    tmp = tempfile.mkdtemp(prefix="lcstats-pg-")  # pytest's tmp folders are not the postgres user's
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    data, port = os.path.join(tmp, "data"), _free_port()
    _as_postgres(
        f"{pg}/initdb",
        "-D",
        data,
        "-U",
        "postgres",
        "--auth-local=trust",  # the fixture's own set-up, over the socket in its folder
        "--auth-host=scram-sha-256",  # over TCP (what lcstats uses), the password counts
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _as_postgres(
        f"{pg}/pg_ctl", "-D", data, "-l", f"{tmp}/log", "-w", "-t", "60", "-o", options, "start"
    )
    _stop_when_gone(
        os.getpid(),
        stop=[*_postgres_user(), f"{pg}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
        remove=tmp,
    )
    try:
        with psycopg.connect(
            host=tmp, port=port, user="postgres", dbname="postgres", autocommit=True
        ) as con:
            con.execute("CREATE ROLE lcstats LOGIN PASSWORD 'S3cret-pw!x'")
            con.execute("CREATE DATABASE hr OWNER lcstats")
        yield f"postgresql://lcstats:S3cret-pw%21x@127.0.0.1:{port}/hr"
    finally:
        import subprocess

        subprocess.run(
            [*_postgres_user(), f"{pg}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A Spark session in local mode (2 cores, few shuffle partitions, Arrow transfers)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("lcstats-tests")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
