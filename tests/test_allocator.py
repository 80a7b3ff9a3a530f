"""The C library's allocator keeps freed memory for the next arrays (`lcstats.core.allocator`)."""

from __future__ import annotations

import subprocess
import sys

FAULTS = """
import ctypes, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 KB pages, as many as can be
import numpy as np
from lcstats.core.allocator import hand_back_freed_memory, keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(8 << 20); del a  # 64 MB, touched once
before = faults()
for _ in range(5):
    a = np.ones(8 << 20); del a
print(kept, faults() - before)
hand_back_freed_memory()
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_arrays_freed_are_used_again_without_new_page_faults():
    """5 arrays of 64 MB made and dropped in turn: mapped afresh each time by default (a page
    fault per page the system hands over), taken from the heap again once kept."""
    kept, faults = _faults("keep")
    assert kept == "True" and faults < 100
    _, default = _faults("default")
    assert default > 5 * 16_000  # 16,384 pages of 4 KB per array


ARENAS = """
import ctypes, sys, threading
import numpy as np
from lcstats.core.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def work():
    for _ in range(20):
        a = np.ones(1 << 20); del a
threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena n:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    err = subprocess.run(
        [sys.executable, "-c", ARENAS, mode], capture_output=True, text=True, check=True
    ).stderr
    return sum(line.startswith("Arena ") for line in err.splitlines())


def test_threads_share_one_arena_so_memory_one_frees_another_uses():
    assert _arenas("keep") == 1
    assert _arenas("default") > 1
