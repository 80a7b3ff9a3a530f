"""Compact notebook display of results: a headline, a few lines, and tables folded away.

Every result object's ``_repr_html_`` is built here, so that they all look alike in JupyterLab:
what an analyst reads first is a few lines; the tables are one click away in ``<details>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape

import pandas as pd

Table = pd.DataFrame | str  # a frame, or HTML already made


def table_html(table: Table) -> str:
    """A table as HTML: numbers to 4 significant digits, missing values blank."""
    if isinstance(table, str):
        return table
    return table.to_html(
        float_format="{:.4g}".format, na_rep="", index=not _plain_index(table), border=0
    )


def _plain_index(frame: pd.DataFrame) -> bool:
    """True when the index carries nothing (0, 1, 2 ...)."""
    return isinstance(frame.index, pd.RangeIndex) and frame.index.name is None


def summary_html(
    headline: str,
    lines: Iterable[str] = (),
    details: Mapping[str, Table] | None = None,
) -> str:
    """A compact HTML summary for ``_repr_html_``.

    Parameters
    ----------
    headline : str
        The first thing to read (plain text, escaped here).
    lines : iterable of str
        A few more plain-text lines, shown as a list.
    details : mapping of str to DataFrame or HTML, optional
        Tables by title, each folded in ``<details>`` until clicked.

    Returns
    -------
    str
        An HTML fragment.
    """
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    folded = "".join(
        f"<details><summary>{escape(title)}</summary>{table_html(table)}</details>"
        for title, table in (details or {}).items()
    )
    return (
        f'<div class="lcstats-summary"><p><strong>{escape(headline)}</strong></p>'
        + (f"<ul>{items}</ul>" if items else "")
        + folded
        + "</div>"
    )


class Readings:
    """Plain-language readings shown as a Markdown list in a notebook (``display`` it).

    Parameters
    ----------
    readings : iterable of str, or mapping of str to str
        Sentences; with a mapping, each is labelled in bold by its key.
    """

    def __init__(self, readings: Iterable[str] | Mapping[str, str]) -> None:
        if not isinstance(readings, Mapping):
            readings = dict.fromkeys(readings, "")
        self.items = tuple((str(a), str(b)) for a, b in readings.items())

    def __repr__(self) -> str:
        return "\n".join(f"- {a}: {b}" if b else f"- {a}" for a, b in self.items)

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- **{_md(a)}**: {_md(b)}" if b else f"- {_md(a)}" for a, b in self.items)


def _md(text: str) -> str:
    """Text with Markdown's special characters escaped (``pre_active_weeks`` stays as it is)."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)
