"""The Jupyter kernel a run executes its notebook in, started early and warmed up.

A run starts the kernel first, with the statistics and plotting imports as its start-up lines,
so that the kernel imports them while the run's own process checks the inputs; papermill is
then given the running kernel. The kernel talks over local sockets (IPC), uses one BLAS thread
unless the environment says otherwise, and is stopped at once when the notebook is done (its
results are already on disk).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager

KERNEL_NAME = "lcstats"
WARM_IMPORTS = "import lcstats.estimation.analysis, lcstats.estimation.diagnostics, lcstats.data.inputs, lcstats.reporting.report, lcstats.reporting.results"
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
    """The kernel's environment: this process's, with one BLAS thread unless set otherwise.

    Measured (benchmarks/README.md): one thread costs nothing on the example and at 100,000
    learners, and avoids a 3-3.5x slow-down whenever another process shares the cores.
    """
    env = dict(os.environ if environ is None else environ)
    for var in BLAS_THREAD_VARIABLES:
        env.setdefault(var, "1")
    return env


def start_kernel(cwd: str | Path, *, warm_imports: str = WARM_IMPORTS) -> KernelManager:
    """Start the project's kernel in `cwd`, importing `warm_imports` before it takes requests.

    Returns the kernel manager to hand to papermill (``km=``); the caller shuts it down.
    """
    from jupyter_client.manager import KernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    # Each kernel's sockets are files named after its own connection file: runs side by side
    # (run-all --jobs N, or two schedulers) can never reach each other's kernel.
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    km = KernelManager(
        kernel_name=ensure_kernel(),
        transport="ipc",
        connection_file=str(runtime / f"lcstats-kernel-{uuid.uuid4()}.json"),
    )
    km.start_kernel(
        cwd=str(cwd),
        env=kernel_environment(),
        extra_arguments=[f"--IPKernelApp.exec_lines={warm_imports}"] if warm_imports else [],
    )
    return km


def stop_kernel(km: KernelManager) -> None:
    """Stop a kernel at once and remove its connection files (safe to call twice)."""
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    finally:
        km.cleanup_resources()
