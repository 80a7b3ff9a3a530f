"""The fast CSV reader (pyarrow) against the strict one (Python's `csv` module), and the vectorised
parsing and checks against the value-by-value definitions they replace.

`read_table` reads a CSV file with pyarrow when it can show the strict reader would read the file
alike, and leaves every other file to the strict reader, whose problems name exact lines. The
tests read tricky but valid files both ways and compare the frames (values, index, dtypes), and
check that anomalies are left to the strict reader with their rows unchanged.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lcstats.data.load as load
from lcstats.core.errors import InputError
from lcstats.data.contract import (
    _may_be_padded,
    distinct_values,
    is_in,
    parse_table,
    positions,
    schema_problems,
    spread_values,
    strip_text,
)
from lcstats.data.load import load_programme, read_table
from tests.conftest import EXAMPLE

TABLES = ("learners", "action_items", "skill_assessments")
# every character `str.strip()` removes
WHITESPACE = "".join(chr(i) for i in range(0x3001) if chr(i).isspace())
INLINE_WHITESPACE = WHITESPACE.replace("\n", "").replace("\r", "")  # what may pad a value


def lines_of(table: str, n: int = 30) -> list[str]:
    return (EXAMPLE / f"{table}.csv").read_text(encoding="utf-8").splitlines()[: n + 1]


def setfield(line: str, i: int, value: str) -> str:
    parts = line.split(",")
    parts[i] = value
    return ",".join(parts)


def text_frame(raw: bytes, *, fast: bool) -> pd.DataFrame:
    """The text frame `read_table` makes of CSV bytes: by the fast reader, or the strict one."""
    if fast:
        frame = load._read_csv_fast(raw)
        assert frame is not None, "the fast reader refused the file"
    else:
        load._check_text(raw, "file.csv", "learners")
        frame = load._read_csv_text(raw, "file.csv", "learners")
    return load._cleaned(frame, "file.csv", fast=fast)


def read_both(raw: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    return text_frame(raw, fast=True), text_frame(raw, fast=False)


def assert_same_frames(fast: pd.DataFrame, strict: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast, strict, check_exact=True)  # index type: RangeIndex == Index
    assert fast.index.tolist() == strict.index.tolist()
    assert fast.index.dtype == strict.index.dtype == "int64"
    assert list(fast.dtypes) == list(strict.dtypes)
    assert list(fast.columns) == list(strict.columns)


def tricky(table: str) -> dict[str, str]:
    """Valid files that a careless reader gets wrong, for one table of the example."""
    lines = lines_of(table)
    base = "\n".join(lines) + "\n"
    last = lines[0].count(",")
    width = last + 1
    out = {
        "plain": base,
        "crlf": base.replace("\n", "\r\n"),
        "bom": "\ufeff" + base,
        "bom_crlf_all_quoted": "\ufeff"
        + "\r\n".join(",".join(f'"{v}"' for v in line.split(",")) for line in lines)
        + "\r\n",
        "no_final_newline": base.rstrip("\n"),
        "trailing_blank_lines": base + "\n\r\n\n",
        "trailing_separators": "\n".join(line + "," for line in lines) + "\n",
        "trailing_separator_data_only": lines[0]
        + ",\n"
        + "\n".join(line + ",x" for line in lines[1:]),
        "spaces_after_commas": "\n".join(line.replace(",", ", ") for line in lines) + "\n",
        "spaces_everywhere": "\n".join(" " + line.replace(",", "  , \t") + " " for line in lines),
        "quoted_spaces_inside": "\n".join(
            ",".join(f'" {v} "' for v in line.split(",")) for line in lines
        ),
        "unicode": base.replace("Analyst", "Analysté").replace("Engineer", "Ingénieur 🛠"),
        "unicode_whitespace": "\n".join(
            lines[:2]
            + [INLINE_WHITESPACE + lines[2].replace(",", "\u3000,\xa0\x85", 2) + "\x1c"]
            + lines[3:]
        ),
        "row_of_separators": "\n".join(lines[:4] + ["," * last] + lines[4:]),
        "row_of_quoted_empties": "\n".join(lines[:4] + [",".join(['""'] * width)] + lines[4:]),
        "row_of_unicode_spaces": "\n".join(
            lines[:4] + [",".join(["\u2003\x1d"] * width)] + lines[4:]
        ),
        "empty_values": "\n".join(
            lines[:3]
            + [",".join(v if i % 2 else "" for i, v in enumerate(lines[3].split(",")))]
            + lines[4:]
        ),
        "header_padded": " , ".join(lines[0].split(",")) + "\n" + "\n".join(lines[1:]),
        "header_quoted": '"' + lines[0].replace(",", '","') + '"\n' + "\n".join(lines[1:]),
        "unnamed_column_with_values": lines[0]
        + ",\n"
        + "\n".join(line + ",v" for line in lines[1:]),
    }
    for name, value in {
        "comma": '"x, y"',
        "doubled_quotes": '"say ""hi"""',
        "empty": '""',
        "only_a_quote": '""""',
        "padded": '"  x\t"',
        "unicode": '"Zoë, 🛠"',
    }.items():
        for i in (0, 1, last):
            rows = lines[:3] + [setfield(lines[3], i, value), setfield(lines[4], i, value)]
            out[f"quoted_{name}_in_column_{i}"] = "\n".join(rows + lines[5:]) + "\n"
            out[f"quoted_{name}_in_column_{i}_crlf"] = "\r\n".join(rows + lines[5:])
    return out


CASES = [(table, name, text) for table in TABLES for name, text in tricky(table).items()]


@pytest.mark.parametrize(
    ("table", "text"), [(t, x) for t, _, x in CASES], ids=[f"{t}-{n}" for t, n, _ in CASES]
)
def test_fast_and_strict_readers_give_identical_frames(tmp_path, monkeypatch, table, text):
    fast, strict = read_both(text.encode("utf-8"))
    assert_same_frames(fast, strict)
    # and through read_table, with the fast reader and without it
    path = tmp_path / f"{table}.csv"
    path.write_text(text, encoding="utf-8")
    frame, source = read_table(path, table)
    monkeypatch.setattr(load, "_read_csv_fast", lambda raw: None)
    assert_same_frames(frame, read_table(path, table)[0])
    assert source == read_table(path, table)[1]


def test_values_are_read_as_text_exactly(tmp_path, monkeypatch):
    raw = 'id,a,b,c\n1,007,"1,5",NA\n2, 1e3 ,"say ""x""",\n3,TRUE,\u00a0nan\u00a0,  \n'.encode()
    fast, strict = read_both(raw)
    assert_same_frames(fast, strict)
    assert fast["a"].tolist() == ["007", "1e3", "TRUE"]
    assert fast["b"].tolist() == ["1,5", 'say "x"', "nan"]
    assert fast["c"].isna().tolist() == [False, True, True] and fast.loc[0, "c"] == "NA"


def test_large_file_reads_alike(tmp_path, monkeypatch):
    """Several pyarrow blocks and strict-reader chunks, quoted values, CRLF, a row of commas."""
    rng = np.random.default_rng(3)
    n = 60_000
    frame = pd.DataFrame(
        {
            "learner_id": [f"L{i:06d}" for i in range(n)],
            "note": rng.choice(["plain", "a, b", 'say "hi"', " padded ", "", "Zoë"], n),
            "level": rng.integers(1, 6, n).astype(str),
        }
    )
    text = frame.to_csv(index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    lines = text.split("\r\n")
    lines[5000] = ",,"
    monkeypatch.setattr(load, "STRICT_CHUNK_ROWS", 1000)
    fast, strict = read_both("\r\n".join(lines).encode())
    assert_same_frames(fast, strict)
    assert len(fast) == n - 1 and 4999 not in fast.index  # line 5001


def test_strict_reader_chunks_do_not_change_the_frame(tmp_path, monkeypatch):
    lines = lines_of("skill_assessments", 50)
    path = tmp_path / "skill_assessments.csv"
    path.write_text("\n".join(lines[:20] + [""] + lines[20:]) + "\n", encoding="utf-8")
    whole, _ = read_table(path, "skill_assessments")  # a blank line: the strict reader
    monkeypatch.setattr(load, "STRICT_CHUNK_ROWS", 3)
    assert_same_frames(read_table(path, "skill_assessments")[0], whole)
    assert whole.index[18:20].tolist() == [18, 20]  # line 21 is blank: line 22 is row 20


# --- anomalies: left to the strict reader, with the rows it reports -------------------------


def problems(tmp_path: Path, table: str, raw: bytes):
    path = tmp_path / f"{table}.csv"
    path.write_bytes(raw)
    with pytest.raises(InputError) as info:
        read_table(path, table)
    return info.value.problems


def lines_with(table: str, **edits: str) -> list[str]:
    lines = lines_of(table)
    for where, line in edits.items():
        lines[int(where[1:])] = line
    return lines


# {0}: a row without its last value, {1}: the next row
ANOMALIES = {
    "blank_line": "{0},x\n\n{1}",
    "spaces_line": "{0},x\n   \n{1}",
    "quoted_line_break": '{0},"two\nlines"\n{1}',
    "lone_carriage_return": "{0},x\r{1}",
    "nul": "{0},x\x00\n{1}",
    "space_before_quote": '{0}, "x"\n{1}',
    "tab_before_quote": '{0},\t"x"\n{1}',
    "text_after_quote": '{0},"x"y\n{1}',
    "quote_inside_value": '{0},a"b\n{1}',
    "unbalanced_quote": '{0},"oops\n{1}',
    "short_row": "{0}\n{1}",
    "long_row": "{0},x,y\n{1}",
}


@pytest.mark.parametrize("kind", sorted(ANOMALIES))
def test_anomalies_are_left_to_the_strict_reader(kind):
    lines = lines_of("learners")
    text = ANOMALIES[kind].format(lines[3].rsplit(",", 1)[0], lines[4])
    raw = "\n".join(lines[:3] + [text] + lines[5:]) + "\n"
    assert load._read_csv_fast(raw.encode()) is None


@pytest.mark.parametrize(
    "raw",
    [b"learner_id,x\n1,\xe9\n", "\ufeff\ufeff".encode(), b"a;b;c\n1;2;3\n", b"only\n1\n", b"a,b\n"],
    ids=["latin-1", "two boms", "semicolons", "one column", "header only"],
)
def test_files_the_fast_reader_refuses(raw):
    assert load._read_csv_fast(raw) is None


def test_bytes_that_are_not_utf8_far_into_the_file(tmp_path, monkeypatch):
    lines = lines_of("learners")
    raw = ("\n".join(lines) + "\n").encode() + setfield(lines[1], 4, "Analyst\xe9").encode(
        "latin-1"
    )
    monkeypatch.setattr(load, "_CHUNK", 64)  # the bad byte is many pieces into the file
    (p,) = problems(tmp_path, "learners", raw + b"\n")
    assert "not UTF-8 text: byte 0xe9 on line 32" in p.message and p.rows == (32,)


def test_values_longer_than_the_csv_field_limit(tmp_path):
    lines = lines_of("learners")
    lines[2] = setfield(lines[2], 4, "x" * (csv.field_size_limit() + 1))
    raw = ("\n".join(lines) + "\n").encode()
    assert load._read_csv_fast(raw) is None
    (p,) = problems(tmp_path, "learners", raw)
    assert "field larger than field limit" in p.message and p.rows == (3,)


def test_rows_after_a_blank_line_keep_their_line_numbers(tmp_path):
    lines = lines_of("learners")
    lines.insert(3, "")  # line 4 is blank
    lines[9] = setfield(lines[9], 0, "")  # line 10: no learner id
    lines[12] = setfield(lines[12], 8, "lots")  # line 13: sessions not a number
    folder = tmp_path
    (folder / "learners.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for table in ("action_items", "skill_assessments"):
        (folder / f"{table}.csv").write_bytes((EXAMPLE / f"{table}.csv").read_bytes())
    with pytest.raises(InputError) as info:
        load_programme(*(folder / f"{t}.csv" for t in TABLES))
    found = {(p.column, p.rows) for p in info.value.problems if p.source.endswith("learners.csv")}
    assert ("learner_id", (10,)) in found
    assert ("coaching_sessions", (13,)) in found


def test_quoted_line_break_keeps_the_rows_that_follow(tmp_path):
    lines = lines_of("learners")
    lines[3] = setfield(lines[3], 4, '"Analyst\nsenior"')  # the row on lines 4-5
    lines[6] = setfield(lines[6], 7, "maybe")  # file line 8 (line 5 is the second half of row 4)
    path = tmp_path / "learners.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert load._read_csv_fast(path.read_bytes()) is None
    frame, _ = read_table(path, "learners")
    parsed = parse_table("learners", frame, str(path))
    (p,) = [p for p in parsed.problems if p.column == "coached"]
    assert p.rows == (8,)
    assert frame.loc[2, "role"] == "Analyst\nsenior"


@pytest.mark.parametrize(
    ("edit", "message", "rows"),
    [
        ('L,"x"y', "',' expected after '\"'", (5,)),
        ('L,"oops', "unexpected end of data", (5,)),
        ("L,1,2", "more values than the header has columns", (5,)),
    ],
)
def test_strict_reader_problems_name_the_line(tmp_path, edit, message, rows):
    lines = lines_of("learners")
    lines[4] = edit.replace("L", lines[4] if edit.endswith("1,2") else lines[4].rsplit(",", 1)[0])
    (p,) = problems(tmp_path, "learners", ("\n".join(lines) + "\n").encode())
    assert message in p.message and p.rows == rows


# --- random tables: whenever the fast reader accepts a file, it reads it as the strict one ----

# values with commas, quotes, spaces, tabs and other whitespace (line breaks: see ANOMALIES)
CELL = st.text(alphabet=st.sampled_from(list('ab1 ,"\t;éZ\u00a0\u3000\x1c') + ["🛠"]), max_size=6)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    rows=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=8),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    space=st.booleans(),
)
def test_random_tables_read_alike_whenever_the_fast_reader_accepts_them(
    rows, quoting, ending, bom, space
):
    buffer = io.StringIO()
    csv.writer(buffer, quoting=quoting, lineterminator=ending).writerows([["id", "x", "y"], *rows])
    text = buffer.getvalue().replace(",", ", ") if space else buffer.getvalue()
    raw = (("\ufeff" if bom else "") + text).encode("utf-8")
    assume(load._read_csv_fast(raw) is not None)  # else left to the strict reader
    fast, strict = read_both(raw)
    assert_same_frames(fast, strict)


def test_quote_check_across_chunk_boundaries(monkeypatch):
    raw = ('id,x\n1,"a ""b"" c"\n2,""\n3,"""q"""\n' * 20).encode()
    expected = [load._quotes_are_plain(raw, 0, len(raw))]
    bad = raw + b'4,"x"y\n'
    expected.append(load._quotes_are_plain(bad, 0, len(bad)))
    assert expected == [True, False]
    for size in (1, 2, 3, 5, 7, 64):
        monkeypatch.setattr(load, "_CHUNK", size)
        assert [
            load._quotes_are_plain(raw, 0, len(raw)),
            load._quotes_are_plain(bad, 0, len(bad)),
        ] == expected


# --- vectorised parsing equals the value-by-value definitions -------------------------------


@pytest.mark.parametrize("values", [["a", " b", "c\u3000", None, ""], ["x"] * 3, [None, None], []])
def test_strip_text_equals_str_strip(values):
    text = pd.Series(values, dtype="str")
    pd.testing.assert_series_equal(strip_text(text), text.str.strip())


def test_padding_check_finds_every_whitespace_character():
    import pyarrow as pa

    for c in WHITESPACE:
        for value in (c + "x", "x" + c, c):
            assert _may_be_padded(pa.array(["ab", value], type=pa.large_string())), repr(value)
    assert not _may_be_padded(pa.array(["ab", "c-d", ""], type=pa.large_string()))
    sliced = pa.array([" a", "b", "c"], type=pa.large_string()).slice(1)
    assert not _may_be_padded(sliced)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(["1", " 2 ", "3.50", "1e3", "-0", "inf", "nan", "x", "", "9" * 25]),
            st.integers(-(2**70), 2**70).map(str),
            st.floats(allow_nan=True, allow_infinity=True).map(repr),
        ),
        min_size=0,
        max_size=40,
    )
)
def test_parsing_distinct_values_equals_parsing_every_value(values):
    from lcstats.data.contract import _iso_dates, _numbers

    text = pd.Series(values * 3, dtype="str")
    for convert in (_numbers, lambda t: _iso_dates(t)[0], lambda t: _iso_dates(t)[1]):
        distinct, codes = distinct_values(text)
        got = spread_values(convert(distinct), codes, text.index)
        pd.testing.assert_series_equal(got, convert(text), check_names=False)


def test_membership_by_pyarrow_equals_python_sets():
    values = pd.Series(["L1", "L2", None, "L9", "l1", " L1"], dtype="str")
    known = pd.Series(["L1", "L2", "L3"], dtype="str")
    expected = values.isin(set(known)).to_numpy()
    assert (is_in(values, known) == expected).all()
    assert (is_in(values.astype(object), known.astype(object)) == expected).all()


def test_positions_by_pyarrow_equal_positions_by_pandas():
    values = pd.Series(["L2", "L1", None, "L9", "l1", "L2", " L1"], dtype="str")
    keys = pd.Series(["L1", "L2", "L3"], dtype="str")
    expected = [1, 0, -1, -1, -1, 1, -1]
    assert positions(values, keys).tolist() == expected
    assert positions(values.astype(object), keys.astype(object)).tolist() == expected
    assert positions(values.iloc[:0], keys).dtype == np.int64


def test_parse_and_checks_leave_the_input_frame_alone():
    frame, src = read_table(EXAMPLE / "skill_assessments.csv", "skill_assessments")
    before = frame.copy()
    parsed = parse_table("skill_assessments", frame, src.path)
    pd.testing.assert_frame_equal(frame, before)
    typed = parsed.frame.copy()
    schema_problems("skill_assessments", parsed.frame, src.path, (1, 5))
    pd.testing.assert_frame_equal(parsed.frame, typed)


def test_non_text_columns_are_written_as_text_as_before():
    """Parquet columns that are not text become text once per distinct value: the same text."""
    n = 12
    stamps = [pd.Timestamp("2026-01-02 10:30"), pd.NaT, pd.Timestamp("2026-03-04")]
    frame = pd.DataFrame(
        {
            "learner_id": [f"L{i}" for i in range(n)],
            "when": pd.Series(stamps * (n // 3), dtype="datetime64[ns]"),
            "day": pd.Series([pd.Timestamp("2026-01-02"), pd.NaT] * (n // 2)),
            "zoned": pd.Series(stamps * (n // 3)).dt.tz_localize("Europe/Paris"),
            "n": [1.0, 2.5, None, 7.0] * (n // 4),
            "count": pd.array([1, None, 3] * (n // 3), dtype="Int64"),
            "flag": [True, False] * (n // 2),
            "code": pd.Categorical(["a", "b", None] * (n // 3)),
        }
    )
    cleaned = load._clean(frame, "x")
    for col in frame.columns:
        values = frame[col]
        text = values.astype("str").where(values.notna()).str.strip()
        pd.testing.assert_series_equal(cleaned[col], text.where(text != ""), check_names=False)
    assert cleaned["when"].tolist()[:3] == ["2026-01-02 10:30:00", np.nan, "2026-03-04 00:00:00"]
    assert cleaned["day"].tolist()[:2] == ["2026-01-02", np.nan]


def test_importing_the_loader_does_not_import_pandera():
    code = "import sys, lcstats.data.load; print('pandera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
