"""The code's git state as a run records it: the commit always, and a slow check never waited on
twice."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from lcstats.core import provenance
from lcstats.core.provenance import git_state


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose notebooks pass through a slow clean filter, as nbstripout's is (it
    starts Python for every notebook git has to look into); each use of the filter is logged."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "lcstats tests")
    git(repo, "config", "user.email", "tests@lcstats.invalid")
    (repo / ".gitattributes").write_text("*.ipynb filter=slow\n")
    git(
        repo,
        "config",
        "filter.slow.clean",
        f"echo used >> '{tmp_path / 'filter.log'}'; sleep 2; cat",
    )
    git(repo, "config", "filter.slow.smudge", "cat")
    (repo / "a.ipynb").write_text("{}\n")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    git_state.cache_clear()
    yield repo
    git_state.cache_clear()


def filter_uses(repo: Path) -> int:
    log = repo.parent / "filter.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_clean_tree_and_a_changed_one(repo):
    assert git_state(str(repo)) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "code.py").write_text("x = 2\n")
    git_state.cache_clear()
    assert git_state(str(repo))["dirty"] is True


def test_no_repository_is_unknown(tmp_path):
    git_state.cache_clear()
    assert git_state(str(tmp_path)) == {"commit": None, "dirty": None}


def test_a_slow_check_gives_the_commit_at_once_and_is_not_slow_the_next_time(repo):
    """A notebook whose file time changed (saved, checked out, freshly cloned) makes git run the
    filter on it. The commit is known at once; whether the tree is dirty is unknown after the
    wait, and git is left to finish, so that it records the notebook as checked: the next run
    neither waits nor runs the filter again (killing git kept every run waiting, for ever)."""
    commit = git(repo, "rev-parse", "HEAD")
    before = filter_uses(repo)
    time.sleep(1.1)  # a file time the index has not recorded
    (repo / "a.ipynb").touch()

    t0 = time.monotonic()
    assert git_state(str(repo), wait=0.3) == {"commit": commit, "dirty": None}
    assert time.monotonic() - t0 < 1.5  # the filter takes 2 s: it was not waited for
    for left in provenance._LEFT_RUNNING:
        left.wait(timeout=60)
    assert filter_uses(repo) == before + 1

    git_state.cache_clear()
    assert git_state(str(repo), wait=60) == {"commit": commit, "dirty": False}
    assert filter_uses(repo) == before + 1  # git recorded the notebook as unchanged
