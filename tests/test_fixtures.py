"""The test fixtures' own promise: a test session killed from outside leaves no server behind."""

from __future__ import annotations

import subprocess
import time

from tests.conftest import _stop_when_gone


def test_the_watcher_stops_the_server_and_removes_its_folder_when_the_session_dies(tmp_path):
    session = subprocess.Popen(["sleep", "60"])  # stands for a pytest process
    folder = tmp_path / "server"
    folder.mkdir()
    stopped = tmp_path / "stopped"
    _stop_when_gone(session.pid, stop=["touch", str(stopped)], remove=str(folder))
    time.sleep(1.5)
    assert not stopped.exists() and folder.exists()  # nothing happens while the session lives
    session.kill()
    session.wait()
    deadline = time.monotonic() + 15
    while (folder.exists() or not stopped.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stopped.exists() and not folder.exists()
