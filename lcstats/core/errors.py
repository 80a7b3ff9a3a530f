"""Errors that mean "the user's input is wrong" (exit code 2), as opposed to bugs (exit code 1)."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One problem found in an input: where it is and what to do about it.

    Parameters
    ----------
    source : str
        The file (or parameters file) the problem is in.
    message : str
        What is wrong and what was expected, in plain language.
    column : str or None
        The column concerned, if any.
    rows : tuple of int
        Example row numbers as a spreadsheet shows them (header is row 1).
    n_rows : int
        How many rows have the problem.
    hint : str
        What to do about it.
    keys : tuple of str
        For tables from a database (which have no row numbers): the example rows' key values.
    key : str
        The column(s) those key values come from.
    """

    source: str
    message: str
    column: str | None = None
    rows: tuple[int, ...] = field(default_factory=tuple)
    n_rows: int = 0
    hint: str = ""
    keys: tuple[str, ...] = field(default_factory=tuple)
    key: str = ""

    def __str__(self) -> str:
        where = self.source
        if self.column:
            where += f", column '{self.column}'"
        text = f"{where}: {self.message}"
        examples, label = (self.keys, self.key) if self.keys else (self.rows, "rows")
        if examples:
            shown = ", ".join(str(r) for r in examples[:5])
            more = f" (and {self.n_rows - len(examples[:5])} more)" if self.n_rows > 5 else ""
            text += f" [{label} {shown}{more}]"
        if self.hint:
            text += f"\n    what to do: {self.hint}"
        return text


class LcstatsError(Exception):
    """Base class of all errors lcstats raises on purpose."""


class InputError(LcstatsError):
    """The parameters or input tables are invalid; carries every problem found.

    The command line turns this into a readable list and exit code 2.
    """

    def __init__(self, problems: Sequence[Problem] | Problem | str, *, source: str = "input"):
        if isinstance(problems, str):
            problems = [Problem(source=source, message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(self.describe())

    def describe(self) -> str:
        """Return all problems as a numbered, readable list."""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found:"
        return "\n".join([head] + [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)])


class EstimationError(LcstatsError):
    """An effect cannot be estimated from these data (no comparison group, no overlap...)."""


class PrivacyError(LcstatsError):
    """A report would show something it must not (an identifier, a group below the minimum)."""


class Interrupted(BaseException):
    """A run stopped by a signal (SIGTERM; Ctrl-C arrives as KeyboardInterrupt) after cleaning up.

    ``message`` says in one line what was left behind; ``exit_code`` is 128 + the signal number.
    """

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = int(signum)
        self.message = message
        super().__init__(message or f"interrupted by signal {self.signum}")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + signal number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


def install_termination_handler() -> None:
    """Make SIGTERM stop a run the way Ctrl-C does (the run cleans up, then exits 143)."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)
