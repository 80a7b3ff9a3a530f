"""Wall time of building and writing the leadership report, and where it goes.

The inputs (params, programme, learner outcomes, effects, diagnostics) are built once, as the
evaluation notebook builds them; then ``build_report(...).write(path)`` is timed ``--repeats``
times (after one warm-up, shown separately: in a run it is the only build, in a fresh kernel).
One BLAS thread (``OPENBLAS_NUM_THREADS=1``), the Agg backend.

The timed builds draw the figures as a run does, shared between this process and forked
copies of it (one per core: `lcstats.core.forks`). A second, instrumented pass (``--figures``,
on by default) draws every figure in this process and breaks one build down by figure:

==========  ======================================================================================
build       time in the ``lcstats.reporting.plots`` functions (and the report's own subplot set-up) that
            made the figure: artists, seaborn, layout
draw        time in ``Figure.draw`` while the figure was saved
draws       full draws of the figure: while it was made + while it was saved
encode      PNG encoding of the rendered pixels (``matplotlib.image.imsave``: RGBA -> PIL -> PNG)
==========  ======================================================================================

plus the pixel size and PNG bytes of each figure, and the time spent in tables and in rendering
the template (for the baseline too, with ``--baseline``). The instrumented pass is slower than a
plain build; its numbers are for comparing figures, not for the total.

``--baseline REF`` also times the report code of a git revision (``report.py``, ``plots.py`` and
the template of ``lcstats/reporting/`` as they were at REF, everything else as it is now),
interleaved with the current code in the same process, so that both see the same machine load.

Usage::

    .venv/bin/python benchmarks/report_speed.py                 # 7 repeats
    .venv/bin/python benchmarks/report_speed.py --repeats 15 --no-figures --baseline HEAD
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build_inputs(params_path: Path) -> dict[str, Any]:
    """The keyword arguments of `build_report`, made as notebooks/evaluation.ipynb makes them."""
    from lcstats.estimation.evaluation import evaluate
    from lcstats.params import load_params

    return evaluate(load_params(params_path)).report_arguments("benchmark")


def baseline_modules(ref: str) -> tuple[types.ModuleType, types.ModuleType]:
    """``lcstats.reporting.plots`` and ``lcstats.reporting.report`` as they were at git revision `ref` (the report
    with the template of `ref`; every other module as it is now)."""
    import jinja2

    def source(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    def module(name: str, path: str, **overrides: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__file__ = f"{ref}:{path}"
        sys.modules[name] = mod  # dataclasses look their module up
        exec(compile(source(path), mod.__file__, "exec"), mod.__dict__)
        for key, value in overrides.items():
            setattr(mod, key, value)
        return mod

    # the layered layout moved these files into lcstats/reporting/
    layered = (
        subprocess.run(
            ["git", "cat-file", "-e", f"{ref}:lcstats/reporting/report.py"], cwd=ROOT
        ).returncode
        == 0
    )
    where = "lcstats/reporting" if layered else "lcstats"
    plots = module("_baseline_plots", f"{where}/plots.py")
    report = module("_baseline_report", f"{where}/report.py", plots=plots)
    env = report.TEMPLATES
    report.TEMPLATES = env.overlay(
        loader=jinja2.DictLoader({"report.html.j2": source(f"{where}/templates/report.html.j2")})
    )
    return plots, report


def timed_build(
    inputs: dict[str, Any], path: Path, build: Callable[..., Any] | None = None
) -> tuple[float, float]:
    """Seconds to build the report and to render + write it."""
    if build is None:
        from lcstats.reporting.report import build_report as build

    t0 = time.perf_counter()
    report = build(**inputs)
    t1 = time.perf_counter()
    report.write(path)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


@dataclass
class FigureStats:
    alt: str
    build: float = 0.0
    build_draws: int = 0
    draw: float = 0.0
    draws: int = 0
    encode: float = 0.0
    pixels: str = ""
    png_bytes: int = 0


def _timing(add: Callable[[float], None]) -> Callable[[Callable], Callable]:
    """A wrapper maker: each call of the wrapped function passes its seconds to `add`."""

    def make(original: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                add(time.perf_counter() - t0)

        return wrapper

    return make


def _png_size(uri: str) -> tuple[int, str]:
    """Bytes and pixel size ("width x height") of a PNG data URI."""
    import base64
    import struct

    png = base64.b64decode(uri.split(",", 1)[1])
    width, height = struct.unpack(">II", png[16:24])
    return len(png), f"{width} x {height}"


@dataclass
class Probe:
    """Counters that the patched functions add to."""

    draw_time: float = 0.0
    draws: int = 0
    encode_time: float = 0.0
    plot_time: float = 0.0
    tables: float = 0.0
    render: float = 0.0
    total: float = 0.0
    depth: int = 0
    figures: list[FigureStats] = field(default_factory=list)

    def add_draw(self, dt: float) -> None:
        """One full draw of a figure, of `dt` seconds."""
        self.draw_time += dt
        self.draws += 1

    def adder(self, counter: str) -> Callable[[float], None]:
        """A function that adds its seconds to the counter named `counter`."""

        def add(dt: float) -> None:
            setattr(self, counter, getattr(self, counter) + dt)

        return add

    def plotting(self, original: Callable) -> Callable:
        """Wrap a plotting function; its time adds to the figure being built."""

        # outermost call only: plots functions call plt.subplots, which is wrapped too (for the
        # report's own multi-panel figures)
        def wrapper(*args, **kwargs):
            self.depth += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.plot_time += time.perf_counter() - t0

        return wrapper

    def figure(self, original: Callable) -> Callable:
        """Wrap the report's ``_figure`` (a figure to its embedded PNG): one `FigureStats` each."""

        def wrapper(fig, alt, *args, **kwargs):
            stats = FigureStats(alt=alt, build=self.plot_time, build_draws=self.draws)
            self.plot_time = 0.0
            d0, n0, e0 = self.draw_time, self.draws, self.encode_time
            result = original(fig, alt, *args, **kwargs)
            stats.draw = self.draw_time - d0
            stats.draws = self.draws - n0
            stats.encode = self.encode_time - e0
            stats.png_bytes, stats.pixels = _png_size(result["uri"])
            self.figures.append(stats)
            self.draws = 0  # draws between figures belong to the next figure's build
            return result

        return wrapper


def _plot_functions(plots: types.ModuleType) -> list[str]:
    """Names of the public figure functions of a plots module."""
    names = []
    for name in dir(plots):
        obj = getattr(plots, name)
        public = not name.startswith("_") and name != "close" and not isinstance(obj, type)
        if public and callable(obj) and getattr(obj, "__module__", "") == plots.__name__:
            names.append(name)
    return names


def _patches(
    probe: Probe, plots: types.ModuleType, report: types.ModuleType
) -> list[tuple[Any, str, Callable[[Callable], Callable]]]:
    """What an instrumented build wraps, as (owner, attribute, wrapper maker)."""
    import matplotlib.image
    from matplotlib.figure import Figure

    return [
        (Figure, "draw", _timing(probe.add_draw)),
        (matplotlib.image, "imsave", _timing(probe.adder("encode_time"))),
        *((plots, name, probe.plotting) for name in _plot_functions(plots)),
        (report.plt, "subplots", probe.plotting),
        (report, "_figure", probe.figure),
        (report._Tables, "__call__", _timing(probe.adder("tables"))),
        (report.Report, "render", _timing(probe.adder("render"))),
        # every figure drawn in this process, where the wrappers see it (revisions before the
        # figures were shared with forked copies have no such setting)
        *(
            [(report, "FIGURE_PROCESSES", lambda _: 1)]
            if hasattr(report, "FIGURE_PROCESSES")
            else []
        ),
    ]


def _patch(owner: Any, name: str, make: Callable[[Callable], Callable], undo: list) -> None:
    """Replace ``owner.name`` by ``make(original)``, noting the original in `undo`."""
    original = getattr(owner, name)
    undo.append((owner, name, original))
    setattr(owner, name, make(original))


def instrumented_build(
    inputs: dict[str, Any], path: Path, plots: types.ModuleType, report: types.ModuleType
) -> Probe:
    """Build and write once with timing wrappers around drawing, encoding, plots and tables."""
    probe = Probe()
    undo: list = []
    try:
        for owner, name, make in _patches(probe, plots, report):
            _patch(owner, name, make, undo)
        probe.draws = 0
        t0 = time.perf_counter()
        report.build_report(**inputs).write(path)
        probe.total = time.perf_counter() - t0
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)
    return probe


def print_figures(name: str, probe: Probe) -> None:
    print(f"\n{name}: one instrumented build ({probe.total:.3f} s in all)")
    head = (
        f"{'figure':<58} {'build':>6} {'draw':>6} {'draws':>5} {'encode':>6} "
        f"{'pixels':>11} {'PNG kB':>7}"
    )
    print(head)
    print("-" * len(head))
    for f in probe.figures:
        draws = f"{f.build_draws}+{f.draws}"
        print(
            f"{f.alt[:58]:<58} {f.build:6.3f} {f.draw:6.3f} {draws:>5} "
            f"{f.encode:6.3f} {f.pixels:>11} {f.png_bytes / 1000:7.1f}"
        )
    print("-" * len(head))
    figs = probe.figures
    draws = f"{sum(f.build_draws for f in figs)}+{sum(f.draws for f in figs)}"
    print(
        f"{'all figures':<58} {sum(f.build for f in figs):6.3f} "
        f"{sum(f.draw for f in figs):6.3f} {draws:>5} "
        f"{sum(f.encode for f in figs):6.3f} {'':>11} "
        f"{sum(f.png_bytes for f in figs) / 1000:7.1f}"
    )
    print(f"tables                          {probe.tables:6.3f} s")
    print(f"template render                 {probe.render:6.3f} s")


def summary(values: list[float]) -> str:
    return (
        f"{statistics.median(values):6.3f} s  (min {min(values):.3f}, max {max(values):.3f}, "
        f"n = {len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params" / "example.yaml")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also break one build down by figure (instrumented, slower)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also time the report code of this git revision, interleaved (e.g. HEAD)",
    )
    args = parser.parse_args(argv)

    print(f"load average before: {loadavg()}")
    t0 = time.perf_counter()
    inputs = build_inputs(args.params)
    print(f"inputs built in {time.perf_counter() - t0:.2f} s (not part of the timings)")

    from lcstats.reporting import plots, report

    modules = {"current": (plots, report)}
    if args.baseline:
        modules[f"baseline {args.baseline}"] = baseline_modules(args.baseline)
    variants = {name: mods[1].build_report for name, mods in modules.items()}

    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        path = Path(tmp) / "report.html"
        first, size = {}, {}
        times: dict[str, dict[str, list[float]]] = {}
        for name, build in variants.items():
            first[name] = sum(timed_build(inputs, path, build))
            size[name] = path.stat().st_size
            times[name] = {"build": [], "write": [], "total": []}
        for i in range(args.repeats):
            order = list(variants.items())
            for name, build in order if i % 2 == 0 else order[::-1]:
                b, w = timed_build(inputs, path, build)
                times[name]["build"].append(b)
                times[name]["write"].append(w)
                times[name]["total"].append(b + w)
        print(f"\nload average after: {loadavg()}")
        for name in variants:
            t = times[name]
            print(f"\n{name}: report.html {size[name]:,} bytes")
            print(f"  first build + write (warm-up)  {first[name]:6.3f} s")
            print(f"  build_report                   {summary(t['build'])}")
            print(f"  render + write                 {summary(t['write'])}")
            print(f"  build_report + write           {summary(t['total'])}")
        if args.baseline:
            now, then = (statistics.median(times[n]["total"]) for n in variants)
            print(f"\ncurrent / baseline (medians of build + write): {now / then:.2f}")

        if args.figures:
            for name, (plots_module, report_module) in modules.items():
                print_figures(name, instrumented_build(inputs, path, plots_module, report_module))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
