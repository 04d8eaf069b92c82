"""COPY data cut into rows (parser/copy_rows.py), whatever the values and the CopyData
boundaries: rows written as psycopg writes text format and as Python's csv module writes
CSV come back whole, in order, with the key field PostgreSQL would read."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from parser.copy_plan import plan_copy
from parser.copy_rows import RowCutter, key_field

# Values with what makes COPY data hard: delimiters, quotes, backslashes, newlines, CR.
VALUES = st.text(alphabet=st.sampled_from(list('ab,\t"\\\n\r. é')), max_size=8)
ROWS = st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), VALUES, VALUES),
                min_size=1, max_size=20)
CUTS = st.lists(st.integers(1, 40), min_size=1, max_size=50)


def _text_escape(value: str) -> str:
    """Text format, as COPY TO (and psycopg's copy) write it."""
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _fed(data: bytes, cuts: list[int], cutter: RowCutter) -> list[bytes]:
    rows, pos, index = [], 0, 0
    while pos < len(data):
        step = cuts[index % len(cuts)]
        rows += cutter.feed(data[pos:pos + step])
        pos, index = pos + step, index + 1
    rest = cutter.rest()
    return rows + ([rest] if rest is not None else [])


@settings(max_examples=300, deadline=None)
@given(ROWS, CUTS)
def test_text_rows_survive_any_cut(rows: list[tuple[int, str, str]], cuts: list[int]) -> None:
    plan = plan_copy("COPY data (v, id, w) FROM STDIN")
    lines = [f"{_text_escape(v)}\t{key}\t{_text_escape(w)}\n" for key, v, w in rows]
    got = _fed("".join(lines).encode(), cuts, RowCutter(plan))
    assert got == [line.encode() for line in lines]
    assert [key_field(plan, row, 1) for row in got] == [str(k).encode() for k, _, _ in rows]
    assert [key_field(plan, row, 0) for row in got] == [v.encode() for _, v, _ in rows]


@settings(max_examples=300, deadline=None)
@given(ROWS, CUTS)
def test_csv_rows_survive_any_cut(rows: list[tuple[int, str, str]], cuts: list[int]) -> None:
    plan = plan_copy("COPY data (v, id, w) FROM STDIN (FORMAT csv)")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)  # quotes CR, LF
    lines = []
    for key, v, w in rows:
        out.seek(0)
        out.truncate()
        writer.writerow([v, key, w])
        lines.append(out.getvalue())
    if any(line.rstrip("\r\n") == "\\." for line in lines):
        return  # the end-of-data marker: not data
    got = _fed("".join(lines).encode(), cuts, RowCutter(plan))
    assert got == [line.encode() for line in lines]
    assert [key_field(plan, row, 1) for row in got] == [str(k).encode() for k, _, _ in rows]
    assert [key_field(plan, row, 0) for row in got] == [
        v.encode() if v or '"' in lines[i].split(",")[0] else None
        for i, (_, v, _) in enumerate(rows)]
