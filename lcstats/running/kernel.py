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
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lcstats.core.allocator import ENVIRONMENT

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

T = TypeVar("T")
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"  # the kernel's working folder
KERNEL_NAME = "lcstats"
STOP_WAIT_S = 60.0
WARM_IMPORTS = (
    "import lcstats.estimation.analysis, lcstats.estimation.diagnostics, lcstats.data.inputs, "
    "lcstats.estimation.designs, lcstats.estimation.survival, lcstats.reporting.report, "
    "lcstats.reporting.results"
)
# The warm-up imports run with the garbage collector off (it would walk the million objects they
# make several times over: 1.7-2.0 s -> 1.4-1.6 s, 4 runs each), and those objects then leave
# its generations for good, so that it no longer walks them in every full collection (the
# example's diagnostics 0.60-0.74 s -> 0.31-0.46 s, 5 runs each, interleaved). The last line
# runs even when an import fails.
WARM_UP_FIRST, WARM_UP_LAST = "import gc; gc.disable()", "gc.freeze(); gc.enable()"
# No input history database: nothing reads it, and kernels of runs side by side would share it.
KERNEL_SETTINGS = ("--HistoryManager.enabled=False",)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def ensure_kernel() -> str:
    """Register the project's Jupyter kernel (this Python) if it is missing; return its name."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if Path(spec.argv[0]).exists():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (lcstats)", prefix=sys.prefix)
    return KERNEL_NAME


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
    """``AsyncKernelManager`` that remembers the clients it makes, so that they can be closed.

    nbclient leaves a client's sockets open when it was handed the manager (about ten file
    descriptors per run, measured), which a long-lived process such as run-all would run out of.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import List

    class RunKernelManager(AsyncKernelManager):
        clients_made = List()

        def client(self, **kwargs):
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
        kernel_name=ensure_kernel(),
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
                for line in ((WARM_UP_FIRST, warm_imports, WARM_UP_LAST) if warm_imports else ())
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
    """Kill a kernel at once (from any thread); nbclient notices within about a second."""
    pid = kernel_pid(km)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_kernel(km: AsyncKernelManager) -> None:
    """Stop a kernel at once, close its clients and remove its connection files (safe to call
    twice)."""
    from jupyter_core.utils import run_sync

    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except RuntimeError:  # the kernel is gone already
        pass
    finally:
        for made in getattr(km, "clients_made", ()):
            made.stop_channels()
        run_sync(km.cleanup_resources)()


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
        self._stopped = False

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
