"""parser/copy_plan.py and parser/copy_rows.py: a COPY FROM STDIN's options, its data cut
into rows whatever the CopyData boundaries, and each row's key field as PostgreSQL reads it."""

from __future__ import annotations

import random

import pytest

from parser.copy_plan import CopyPlan, plan_copy
from parser.copy_rows import MissingField, RowCutter, key_field
from parser.settings import ShardingKey
from parser.write_split import WriteUnsupported

KEYS = (ShardingKey("data", "id"),)


def cut(plan: CopyPlan, data: bytes, seed: int = 0) -> list[bytes]:
    """Rows of ``data`` fed in random pieces (and the unfinished last row)."""
    rng, cutter, rows, pos = random.Random(seed), RowCutter(plan), list[bytes](), 0
    while pos < len(data):
        step = rng.randint(1, 9)
        rows += cutter.feed(data[pos:pos + step])
        pos += step
    rest = cutter.rest()
    return rows + ([rest] if rest is not None else [])


@pytest.mark.parametrize(("sql", "expected"), [
    ("COPY data FROM STDIN", CopyPlan("data", None)),
    ("copy public.data (id, \"V\") from stdin with (format csv, header true, delimiter ';')",
     CopyPlan("public.data", ("id", "V"), True, b";", b"", b'"', b'"', True)),
    ("COPY data (v, id) FROM STDIN CSV HEADER QUOTE AS '|' FORCE NOT NULL v",
     CopyPlan("data", ("v", "id"), True, b",", b"", b"|", b"|", True)),
    ("COPY data FROM STDIN WITH DELIMITER E'\\t' NULL AS ''",
     CopyPlan("data", None, False, b"\t", b"", b'"', b'"', False)),
    ("COPY data FROM STDIN (FORMAT text, HEADER MATCH) WHERE id > 5",
     CopyPlan("data", None, header=True)),
])
def test_options_in_both_spellings(sql: str, expected: CopyPlan) -> None:
    assert plan_copy(sql) == expected


@pytest.mark.parametrize("sql", [
    "COPY data FROM STDIN (FORMAT binary)",
    "COPY data FROM STDIN BINARY",
    "COPY data FROM '/tmp/rows'",
    "COPY data FROM PROGRAM 'cat rows'",
    "COPY data FROM STDIN (ENCODING 'latin1')",
    "COPY data FROM STDIN (DELIMITER '||')",
])
def test_what_cannot_be_routed_is_refused(sql: str) -> None:
    with pytest.raises(WriteUnsupported):
        plan_copy(sql)


def test_the_key_position_comes_from_the_column_list_or_the_table() -> None:
    assert plan_copy("COPY data (v, id) FROM STDIN").key_position(KEYS, []) == 1
    assert plan_copy("COPY data FROM STDIN").key_position(KEYS, ["n", "id"]) == 1
    with pytest.raises(WriteUnsupported):
        plan_copy("COPY data (v) FROM STDIN").key_position(KEYS, [])


def test_text_rows_and_escapes() -> None:
    plan = plan_copy("COPY data (id, v) FROM STDIN")
    data = b"1\ta\n2\tb\\\nc\n\\x34\t\\\\\r\n\\N\tnull\n5\tlast"
    rows = cut(plan, data)
    assert rows == [b"1\ta\n", b"2\tb\\\nc\n", b"\\x34\t\\\\\r\n", b"\\N\tnull\n", b"5\tlast"]
    assert [key_field(plan, row, 0) for row in rows] == [b"1", b"2", b"4", None, b"5"]
    assert key_field(plan, rows[1], 1) == b"b\nc"


def test_text_key_in_a_later_field_with_escaped_delimiters() -> None:
    plan = plan_copy("COPY data (v, id) FROM STDIN WITH DELIMITER '|'")
    assert key_field(plan, b"a\\|b|\\061\\062\n", 1) == b"12"
    with pytest.raises(MissingField):
        key_field(plan, b"a\\|b\n", 1)


def test_csv_rows_with_quoted_newlines_and_header() -> None:
    plan = plan_copy("COPY data (v, id) FROM STDIN (FORMAT csv, HEADER)")
    data = b'v,id\r\n"a,\n""b""",7\r\nx,"8"\n"",\n,""\n'
    for seed in range(20):
        assert cut(plan, data, seed) == [b"v,id\r\n", b'"a,\n""b""",7\r\n', b'x,"8"\n',
                                         b'"",\n', b',""\n']
    rows = cut(plan, data)
    assert [key_field(plan, row, 1) for row in rows[1:]] == [b"7", b"8", None, b""]
    assert key_field(plan, rows[1], 0) == b'a,\n"b"'


def test_csv_with_an_escape_other_than_the_quote() -> None:
    plan = plan_copy("COPY data (v, id) FROM STDIN (FORMAT csv, ESCAPE '\\')")
    data = b'"a\\"\nb",1\n"c\\\\",2\n'
    rows = cut(plan, data)
    assert rows == [b'"a\\"\nb",1\n', b'"c\\\\",2\n']
    assert [key_field(plan, row, 0) for row in rows] == [b'a"\nb', b"c\\"]


def test_the_end_marker_ends_the_data() -> None:
    plan = plan_copy("COPY data FROM STDIN")
    assert cut(plan, b"1\ta\n\\.\n2\tb\n") == [b"1\ta\n"]
    assert cut(plan, b"1\ta\n\\.") == [b"1\ta\n"]


def test_carriage_return_line_ends_are_refused() -> None:
    with pytest.raises(WriteUnsupported):
        cut(plan_copy("COPY data FROM STDIN"), b"1\ta\r2\tb\r")
