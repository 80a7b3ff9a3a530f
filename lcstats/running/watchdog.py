"""Watching a run's kernel: how much memory it used, to explain a death.

A thread looks at the kernel twice a second while the notebook runs. It remembers the most
memory the kernel used and how much the machine had in use at that moment, so that a kernel
killed by the operating system can be explained ("about 5.1 GB were in use").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from lcstats.core.resources import bytes_text

if TYPE_CHECKING:
    from lcstats.running.kernel import RunKernel

INTERVAL_S = 0.5


@dataclass
class MemorySeen:
    """The kernel's largest resident memory seen, and the machine's memory at that moment."""

    kernel_peak: int = 0
    machine_used: int = 0
    machine_total: int = 0

    def sentence(self) -> str:
        """Plain words for the failure page ("" when nothing was seen)."""
        if not self.kernel_peak:
            return ""
        return (
            f"the kernel was using about {bytes_text(self.kernel_peak)} when last seen, and "
            f"about {bytes_text(self.machine_used)} of the machine's "
            f"{bytes_text(self.machine_total)} were in use"
        )


def _resident(pid: int) -> int:
    """Resident memory of a process and its children, in bytes (0 when it is gone)."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total
    except psutil.Error:
        return 0


class Watchdog:
    """Samples one kernel's memory from a thread while in use (a context manager)."""

    def __init__(self, kernel: RunKernel) -> None:
        self.kernel = kernel
        self.memory = MemorySeen()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lcstats-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        """Record the kernel's memory if it is the largest seen."""
        pid = self.kernel.pid
        rss = _resident(pid) if pid else 0
        if rss >= self.memory.kernel_peak and rss:
            vm = psutil.virtual_memory()
            self.memory = MemorySeen(rss, vm.total - vm.available, vm.total)

    def _watch(self) -> None:
        """Sample until stopped."""
        while not self._stop.wait(INTERVAL_S):
            self._sample()
