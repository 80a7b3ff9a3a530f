"""JupyterLab as analysts use it: `make lab` started as root with its port taken, and the
evaluation notebook run through the JupyterLab UI in Debian's Chromium (driven by playwright).

The UI test copies evaluation.ipynb into a temporary folder next to the example data, opens it in
JupyterLab with the project kernel, runs every cell from the Run menu, saves it, and checks that
no cell failed and that the forest plot (and the other figures) appeared. Every request to a
host other than the local server is aborted and must not happen. A screenshot of the notebook
with its forest plot is kept at ``reports/screenshots/lab-evaluation.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lcstats.reporting.pdf import CHROMIUM_ARGS
from tests.conftest import ROOT
from tests.test_report_browser import chromium_path

URL = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?token=(\w+)")
SCREENSHOT = ROOT / "reports" / "screenshots" / "lab-evaluation.png"
RUN_ALL_LIMIT_S = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server started by a command, with its log and address."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.log: list[str] = []
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._found = threading.Event()
        self.port = self.token = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            match = URL.search(line)
            if match and not self._found.is_set():
                self.port, self.token = int(match[1]), match[2]
                self._found.set()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + "\n".join(self.log[-40:]))

    def get(self, path: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?token={self.token}"
        for _ in range(40):  # the address is printed a moment before the server answers
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    return json.loads(response.read())
            except (ConnectionRefusedError, urllib.error.URLError):
                time.sleep(0.25)
        pytest.fail(f"JupyterLab never answered at {url}:\n" + "\n".join(self.log[-20:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@contextmanager
def lab(command: list[str], tmp_path: Path, **env: str) -> Iterator[Lab]:
    """Run JupyterLab with its runtime and workspace files in a temporary folder."""
    environ = {
        **{k: v for k, v in os.environ.items() if k != "MPLBACKEND"},  # inline figures, as in use
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        **env,
    }
    server = Lab(command, environ)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_make_lab_starts_as_root_and_moves_off_a_taken_port(tmp_path):
    taken = _free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        with lab(["make", "-s", "lab"], tmp_path, LAB_PORT=str(taken)) as server:
            assert server.port != taken
            assert any(f"port {taken} is taken" in line for line in server.log)
            assert server.get("/api/status")["kernels"] == 0
            assert "lcstats" in server.get("/api/kernelspecs")["kernelspecs"]
    assert os.geteuid() != 0 or "--allow-root" in (ROOT / "tools" / "lab").read_text()


@pytest.fixture
def notebook_folder(tmp_path) -> Path:
    """evaluation.ipynb where its relative paths (../data/example, ../reports) work."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "evaluation.ipynb", tmp_path / "notebooks")
    (tmp_path / "data").symlink_to(ROOT / "data")
    (tmp_path / "reports").mkdir()
    return tmp_path


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt",
        "els => els.map(e => e.textContent.trim())",
    )


def _click_run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _run_all(page) -> None:
    """Run All Cells from the Run menu; wait until every cell has run."""
    _click_run_all(page)
    started = time.monotonic()
    deadline = started + RUN_ALL_LIMIT_S
    retried = False
    while time.monotonic() < deadline:
        prompts = _prompts(page)
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return
        if not retried and time.monotonic() - started > 20 and all(p == "[ ]:" for p in prompts):
            _click_run_all(page)  # the menu was used before the kernel was connected
            retried = True
        page.wait_for_timeout(1000)
    pytest.fail(f"the cells did not all run within {RUN_ALL_LIMIT_S} s: {_prompts(page)}")


def _saved_notebook(page, path: Path) -> dict:
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if all(c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
            return nb
        page.wait_for_timeout(500)
    pytest.fail("the notebook was not saved with its outputs")


def test_evaluation_notebook_runs_in_the_jupyterlab_ui(tmp_path, notebook_folder):
    from playwright.sync_api import sync_playwright

    port = _free_port()
    folder = notebook_folder / "notebooks"
    blocked: list[str] = []
    with (
        lab(["tools/lab"], tmp_path, LAB_PORT=str(port), LAB_DIR=str(folder)) as server,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def local_only(route):
            if route.request.url.startswith((f"http://127.0.0.1:{server.port}/", "data:", "blob:")):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", local_only)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{server.port}/lab/tree/evaluation.ipynb?token={server.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000
        )
        page.get_by_text("Python (lcstats)").first.wait_for(timeout=90_000)  # the project kernel
        _run_all(page)
        nb = _saved_notebook(page, folder / "evaluation.ipynb")

        errors = [
            "".join(c["source"])[:80] + ": " + o.get("ename", "") + " " + o.get("evalue", "")
            for c in nb["cells"]
            if c["cell_type"] == "code"
            for o in c["outputs"]
            if o["output_type"] == "error"
        ]
        assert not errors
        assert page.locator(".jp-OutputArea-output[data-mime-type*='error']").count() == 0
        forest = next(c for c in nb["cells"] if "forest_plot(" in "".join(c["source"]))
        assert any("image/png" in o.get("data", {}) for o in forest["outputs"])
        images = page.locator(".jp-NotebookPanel .jp-OutputArea-output img")
        assert images.count() >= 3  # forest plot, balance, completion curves
        shown = page.locator(".jp-CodeCell", has_text="forest_plot(").locator("img").first
        shown.scroll_into_view_if_needed()
        assert shown.evaluate("img => img.naturalWidth > 300 && img.complete")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        assert (notebook_folder / "reports" / "interactive" / "report.html").is_file()
        browser.close()
    assert not blocked, f"requests left the machine: {blocked[:5]}"
