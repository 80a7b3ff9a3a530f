"""The Jupyter kernel a run executes its notebook in, started early and warmed up.

A run starts the kernel first, with the statistics and plotting imports as its start-up lines,
so that the kernel imports them while the run's own process checks the inputs; papermill is
then given the running kernel. The kernel talks over local sockets (IPC), uses one BLAS thread
unless the environment says otherwise, and is stopped at once when the notebook is done (its
results are already on disk).

The manager is an ``AsyncKernelManager``, as nbclient expects. With the blocking
``KernelManager`` a run once used, nbclient got a blocking client: waiting for a cell's reply
(no time limit) then blocked the event loop, so nbclient's once-a-second check that the kernel
is alive never ran, and a kernel killed mid-cell (by the out-of-memory killer, say) left the
run waiting forever. With the async manager a dead kernel is noticed within about a second.

`RunKernel` drives the kernel (start, papermill, stop) from a thread of its own, with its own
event loop. The run's main thread stays free to take Ctrl-C and SIGTERM (nbclient would
otherwise take over those signals while a notebook runs), and everything the kernel opened is
closed when it stops: its clients' sockets and the thread's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lcstats.core.allocator import ENVIRONMENT

if TYPE_CHECKING:
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

T = TypeVar("T")
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"  # the kernel's working folder
KERNEL_NAME = "lcstats"
STOP_WAIT_S = 60.0
READY_WAIT_S = 60.0  # papermill's default wait for a kernel's start
WARM_IMPORTS = (
    "import lcstats.estimation.analysis, lcstats.estimation.diagnostics, lcstats.data.inputs, "
    "lcstats.estimation.designs, lcstats.estimation.survival, lcstats.reporting.report, "
    "lcstats.reporting.results"
)
# The warm-up imports run with the garbage collector off (it would walk the million objects they
# make several times over: 1.7-2.0 s -> 1.4-1.6 s, 4 runs each), and those objects then leave
# its generations for good, so that it no longer walks them in every full collection (the
# example's diagnostics 0.60-0.74 s -> 0.31-0.46 s, 5 runs each, interleaved). statsmodels
# imports two packages when they are installed (moderndid, the staggered designs' engine, needs
# both) that lcstats never uses through it: polars, to accept polars frames (0.07 s), and
# formulaic, a second engine for model formulas beside patsy, its default (0.05 s with
# narwhals; the warm-up 0.97-0.99 s -> 0.92-0.93 s in 3 of 4 runs each, interleaved). It imports
# without them, and they are importable again afterwards. The last line runs even when an
# import fails.
LEFT_OUT = ("polars", "formulaic")
WARM_UP_FIRST = "import gc, sys; gc.disable(); " + "; ".join(
    f"sys.modules.setdefault({name!r}, None)" for name in LEFT_OUT
)
WARM_UP_LAST = (
    "import gc, sys; gc.freeze(); gc.enable(); "
    f"[sys.modules.pop(m) for m in {(*LEFT_OUT, 'debugpy')!r} if sys.modules.get(m, 0) is None]"
)
# How a run's kernel starts (`run_kernel_spec`): as ``python -m ipykernel_launcher`` (which takes
# the working folder off ``sys.path`` while ipykernel loads), but with the garbage collector off
# from the first line (`WARM_UP_LAST` turns it on) and without debugpy, which ipykernel imports
# for the debugger when it is installed; nothing debugs an unattended run, and the debugger's
# ``-Xfrozen_modules=off`` slows every import. With the kernel built rather than looked up
# (`run_kernel_spec`), it answered 1.22-1.27 s after the run's start instead of 1.31-1.40 s (6 runs
# each, interleaved). debugpy is importable again once the kernel has started.
LAUNCH = (
    "import gc, sys; gc.disable(); sys.modules.setdefault('debugpy', None); "
    "sys.path[0] == '' and sys.path.pop(0); "
    "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
)
KERNEL_SETTINGS = (
    # no input history database: nothing reads it, and kernels of runs side by side would share it
    "--HistoryManager.enabled=False",
    # figures shown as made: those of `lcstats.reporting.plots` are laid out when made, and
    # trimming the image to its content (the inline backend's default) would draw each twice
    # (the notebook's forest, balance and completion plots: 0.44 -> 0.36 s, 5 runs each)
    '--InlineBackend.print_figure_kwargs={"bbox_inches": None}',
)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_kernel_spec() -> KernelSpec:
    """The kernel a run executes its notebook in: this Python, started by `LAUNCH`.

    Built here, not looked up: the ``lcstats`` kernel that ``make setup`` registers (for
    JupyterLab and the notebook tests) carries what an analyst's debugger needs, and finding it
    costs the run's start 0.05 s (jupyter_client imports IPython to list kernel folders).
    """
    from jupyter_client.kernelspec import KernelSpec

    return KernelSpec(
        argv=[sys.executable, "-c", LAUNCH, "-f", "{connection_file}"],
        display_name="Python (lcstats)",
        language="python",
        name=KERNEL_NAME,
    )


def kernel_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: this process's, with one BLAS thread and the allocator
    settings of `lcstats.core.allocator` unless set otherwise
    (1M learners: the kernel's system time 8.1-8.5 s -> 5.7-6.5 s).

    Measured (benchmarks/README.md): one thread costs nothing on the example and at 100,000
    learners, and avoids a 3-3.5x slow-down whenever another process shares the cores (the
    kernel runs independent analyses side by side itself, see `lcstats.core.threads`).
    """
    env = dict(os.environ if environ is None else environ)
    for var in BLAS_THREAD_VARIABLES:
        env.setdefault(var, "1")
    for var, value in ENVIRONMENT.items():
        env.setdefault(var, value)
    return env


def _manager_class() -> type:
    """``AsyncKernelManager`` that remembers the clients it makes, so that they can be closed,
    and hands out a client connected in advance (`_ready_client`) to the first who asks.

    nbclient leaves a client's sockets open when it was handed the manager (about ten file
    descriptors per run, measured), which a long-lived process such as run-all would run out of.
    nbclient asks the manager for its client, starts its channels and waits for the kernel
    (`ReadyKernelClient` makes both no-ops once done).
    """
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Any, Bool, List, Type, default

    class RunKernelSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return run_kernel_spec()

    class ReadyKernelClient(AsyncKernelClient):
        answered = Bool(False, help="channels started and both answered (see _ready_client)")

        def start_channels(self, *args, **kwargs) -> None:
            if not self.answered:
                super().start_channels(*args, **kwargs)

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            if not self.answered:
                await super()._async_wait_for_ready(timeout)

    class RunKernelManager(AsyncKernelManager):
        clients_made = List()
        client_factory = Type(klass=ReadyKernelClient)
        ready_client = Any(None, allow_none=True)

        @default("kernel_spec_manager")
        def _run_kernel_specs(self) -> KernelSpecManager:
            return RunKernelSpecs(data_dir=self.data_dir)

        def client(self, **kwargs):
            if self.ready_client is not None:  # handed out once
                made, self.ready_client = self.ready_client, None
                return made
            made = super().client(**kwargs)
            self.clients_made.append(made)
            return made

    return RunKernelManager


def start_kernel(cwd: str | Path, *, warm_imports: str = WARM_IMPORTS) -> AsyncKernelManager:
    """Start the project's kernel in `cwd`, importing `warm_imports` before it takes requests.

    Returns the kernel manager to hand to papermill (``km=``); the caller stops it with
    `stop_kernel` from the same thread.
    """
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_core.utils import run_sync

    # Each kernel's sockets are files named after its own connection file: runs side by side
    # (run-all --jobs N, or two schedulers) can never reach each other's kernel.
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    km = _manager_class()(
        kernel_name=KERNEL_NAME,
        transport="ipc",
        connection_file=str(runtime / f"lcstats-kernel-{uuid.uuid4()}.json"),
    )
    run_sync(km.start_kernel)(
        cwd=str(cwd),
        env=kernel_environment(),
        extra_arguments=[
            *KERNEL_SETTINGS,
            *(
                f"--IPKernelApp.exec_lines={line}"
                for line in ((WARM_UP_FIRST, warm_imports) if warm_imports else ())
                + (WARM_UP_LAST,)
            ),
        ],
    )
    return km


def kernel_pid(km: AsyncKernelManager) -> int | None:
    """The process id of a started kernel (None when there is none)."""
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return getattr(process, "pid", None)


def kernel_exit_code(km: AsyncKernelManager) -> int | None:
    """The kernel's exit code once it has ended (negative: the signal that ended it)."""
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return process.poll() if process is not None else None


def kill_kernel(km: AsyncKernelManager) -> None:
    """Kill a kernel at once (from any thread); nbclient notices within about a second.

    With the kernel, what it started in its process group (jupyter_client starts each kernel
    in a session of its own): forked copies drawing the report's figures
    (`lcstats.core.forks`), or any program a notebook ran.
    """
    pid = kernel_pid(km)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def stop_kernel(km: AsyncKernelManager) -> None:
    """Stop a kernel at once, close its clients and remove its connection files (safe to call
    twice)."""
    from jupyter_core.utils import run_sync

    try:
        if km.has_kernel:
            # killed and reaped here: jupyter_client kills it too, then looks every 0.1 s
            # whether it has ended (0.11 s of every run)
            kill_kernel(km)
            with contextlib.suppress(subprocess.TimeoutExpired):
                km.provisioner.process.wait(timeout=5)
            run_sync(km.shutdown_kernel)(now=True)
    except RuntimeError:  # the kernel is gone already
        pass
    finally:
        for made in getattr(km, "clients_made", ()):
            made.stop_channels()
        run_sync(km.cleanup_resources)()


async def _ready_client(
    km: AsyncKernelManager, stopping: threading.Event, timeout: float = READY_WAIT_S
) -> None:
    """Connect a client to the started kernel `km` and leave it with `km` for papermill, once
    the kernel answers on both its channels.

    What nbclient does when it makes its client (``wait_for_ready``), less its closing wait: a
    ``kernel_info`` request (sent again each second) until one is answered on the shell channel
    and its ``idle`` status arrives on IOPub, proving that channel connected (messages sent
    before it connected are lost). jupyter_client then waits until IOPub has been silent for
    0.2 s; messages left there belong to no cell, and nbclient passes over them. Raises
    RuntimeError when the kernel dies or `timeout` seconds pass, and CancelledError when
    `stopping` is set (the run ends before its notebook).
    """
    import queue

    kc = km.client()
    kc.start_channels()
    deadline = time.monotonic() + timeout
    asked_at = -1.0
    while True:
        if stopping.is_set():
            raise asyncio.CancelledError("the run ended before its notebook")
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
        if now - asked_at >= 1.0:
            if asked_at >= 0 and not await km.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            kc.kernel_info()
            asked_at = now
        try:
            reply = await kc.get_shell_msg(timeout=0.05)
        except queue.Empty:
            continue
        if reply["msg_type"] != "kernel_info_reply":
            continue
        if await _idle_seen(kc, reply["parent_header"].get("msg_id")):
            kc.answered = True
            km.ready_client = kc
            return
        asked_at = -1.0  # IOPub was not connected yet: ask again at once


async def _idle_seen(kc: AsyncKernelClient, msg_id: str | None, wait: float = 0.5) -> bool:
    """Whether the kernel's ``idle`` status after request `msg_id` arrives on IOPub (each
    message within `wait` seconds of the one before)."""
    import queue

    try:
        while True:
            msg = await kc.get_iopub_msg(timeout=wait)
            state = msg["content"].get("execution_state")
            if state == "idle" and msg["parent_header"].get("msg_id") == msg_id:
                return True
    except queue.Empty:
        return False


class KernelBusy(Exception):
    """The kernel was still working when the caller's time was up."""


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on an event loop (nbclient's pollers after a failure), then close it."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


class RunKernel:
    """A run's kernel, started at once and driven from a thread (and event loop) of its own.

    Parameters
    ----------
    cwd : path
        The kernel's working folder (the notebook's).
    warm_imports : str
        Python run by the kernel before it takes requests.
    """

    def __init__(self, cwd: str | Path, *, warm_imports: str = WARM_IMPORTS) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="lcstats-kernel")
        self._started = self._thread.submit(start_kernel, cwd, warm_imports=warm_imports)
        self._stopping = threading.Event()
        self._thread.submit(self._connect)
        self._stopped = False

    def _connect(self) -> None:
        """Connect papermill's client while the run checks its inputs (see `_ready_client`).
        When the kernel did not start or did not answer, papermill connects and waits itself,
        and reports what it finds."""
        from jupyter_core.utils import run_sync

        if self._started.exception() is None:
            with contextlib.suppress(RuntimeError, asyncio.CancelledError):
                run_sync(_ready_client)(self.km, self._stopping)

    def wait_started(self) -> None:
        """Wait until the kernel's process is launched (or its start failed: `km` raises that).

        The kernel then imports the statistics on the other core; started from a thread while
        this one imports, it was launched 0.5 s after the run's start instead of 0.2 s.
        """
        futures_wait([self._started])

    @property
    def km(self) -> AsyncKernelManager:
        """The kernel manager (waits for the start; raises what the start raised)."""
        return self._started.result()

    def run(self, work: Callable[[AsyncKernelManager], T], *, timeout: float | None = None) -> T:
        """Call ``work(km)`` in the kernel's thread and wait for it, at most `timeout` seconds.

        Ctrl-C interrupts the wait; when the time is up, `KernelBusy` is raised and the work
        goes on until the caller kills the kernel.
        """
        future = self._thread.submit(lambda: work(self.km))
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            if future.done():  # the work's own time-out (nbclient's per-cell limit)
                raise
            raise KernelBusy(f"the kernel was still busy after {timeout:.0f} s") from None

    def settle(self, timeout: float = STOP_WAIT_S) -> None:
        """Wait (at most `timeout` seconds) until the work given to the kernel's thread is done."""
        if self._stopped:
            return
        try:
            self._thread.submit(lambda: None).result(timeout=timeout)
        except FutureTimeout:
            self.kill()

    def kill(self) -> None:
        """Kill the kernel's process now, from any thread."""
        if self._started.done() and self._started.exception() is None:
            kill_kernel(self.km)

    @property
    def pid(self) -> int | None:
        """The kernel's process id, once started."""
        if self._started.done() and self._started.exception() is None:
            return kernel_pid(self.km)
        return None

    @property
    def exit_code(self) -> int | None:
        """The kernel's exit code once it has ended (negative: the signal that ended it)."""
        if self._started.done() and self._started.exception() is None:
            return kernel_exit_code(self.km)
        return None

    def stop(self) -> None:
        """Stop the kernel and close the thread's event loop (safe to call twice)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # a connection still waiting for the kernel gives up

        def shut() -> None:
            from jupyter_core.utils import ensure_event_loop

            try:
                if self._started.exception() is None:
                    stop_kernel(self._started.result())
            finally:
                _close(ensure_event_loop())

        try:
            self._thread.submit(shut).result(timeout=STOP_WAIT_S)
        except FutureTimeout:  # still busy: make sure the kernel is gone and move on
            self.kill()
        finally:
            self._thread.shutdown(wait=False)
