"""Whether numpy's matrix products let threads run side by side (they hold or release the lock).

The estimators' threads (`lcstats.core.threads.side_by_side`) gain only where the work releases
the interpreter lock. This times the same cross-products (``x.T @ x`` in blocks of 4,096 rows of
a 1M x 20 matrix, as `lcstats.estimation.effects` accumulates them) four times in turn and
twice on each of two threads, with OpenBLAS on one thread, for ``@`` (np.matmul) and `np.dot`.
A ratio near 1 means the threads ran one at a time.

Usage::

    .venv/bin/python benchmarks/matmul_lock.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

ROWS, COLUMNS, BLOCK = 1_000_000, 20, 4096


def _blocks(x: np.ndarray, product: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    out = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), BLOCK):
        block = x[start : start + BLOCK]
        out += product(block.T, block)


def _in_turn_and_threads(work: Callable[[], None]) -> tuple[float, float]:
    start = time.perf_counter()
    for _ in range(4):
        work()
    in_turn = time.perf_counter() - start
    threads = [threading.Thread(target=lambda: (work(), work())) for _ in range(2)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return in_turn, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal((ROWS, COLUMNS))
    products = {"x.T @ x (np.matmul)": np.matmul, "np.dot(x.T, x)": np.dot}
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; {args.repeats} repeats")
    with threadpool_limits(limits=1):
        for name, product in products.items():
            rows = [
                _in_turn_and_threads(lambda p=product: _blocks(x, p)) for _ in range(args.repeats)
            ]
            in_turn = statistics.median(r[0] for r in rows)
            two = statistics.median(r[1] for r in rows)
            print(
                f"{name:22s} in turn {in_turn:.3f} s, two threads {two:.3f} s: {in_turn / two:.2f}x"
            )
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
