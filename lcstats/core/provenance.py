"""Where a result came from: package versions and the code's git commit."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

KEY_PACKAGES = (
    "lcstats",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "pandera",
    "papermill",
    "jinja2",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the numbers."""
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


GIT_WAIT_S = 3.0  # the longest a run waits for git (its answer takes milliseconds, as a rule)
_LEFT_RUNNING: list[subprocess.Popen] = []  # git processes left to finish (see git_state)


@cache
def git_state(root: str | None = None, wait: float = GIT_WAIT_S) -> dict[str, str | bool | None]:
    """The code's commit and whether the work tree has uncommitted changes (None: unknown).

    Asking whether tracked files changed can take long when their recorded file times no longer
    match (a fresh clone, a checkout, a saved notebook) and git runs a content filter on each
    (nbstripout's starts Python for every notebook): after `wait` seconds the answer is unknown,
    but git is left to finish, so that it records the files as checked and the next run's
    question takes milliseconds (killing it would leave every later run as slow).
    """
    where = Path(root) if root else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=wait,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    status = subprocess.Popen(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=where,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        changes, _ = status.communicate(timeout=wait)
    except subprocess.TimeoutExpired:  # left to finish (see above); its output is not read
        _LEFT_RUNNING.append(status)
        return {"commit": commit, "dirty": None}
    if status.returncode != 0:
        return {"commit": commit, "dirty": None}
    return {"commit": commit, "dirty": bool(changes.strip())}
