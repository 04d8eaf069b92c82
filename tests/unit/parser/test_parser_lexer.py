"""The lexer that turns queries into shapes: literals out, comments out, nothing else moved."""

from __future__ import annotations

import pytest

from parser.lexer import lex


@pytest.mark.parametrize(
    ("sql", "shape", "literals"),
    [
        ("SELECT 1", "SELECT 0", ["1"]),
        ("SELECT a FROM t WHERE id = 123;", "SELECT a FROM t WHERE id = 0;", ["123"]),
        ("SELECT 'a''b', 'c'", "SELECT '0', '1'", ["'a''b'", "'c'"]),
        ("SELECT E'it\\'s', 2", "SELECT '0', 1", ["E'it\\'s'", "2"]),
        ("SELECT e'\\\\'", "SELECT '0'", ["e'\\\\'"]),
        ("SELECT $$a 'b' \"c\"$$", "SELECT '0'", ["$$a 'b' \"c\"$$"]),
        ("SELECT $t$ $$ $t$", "SELECT '0'", ["$t$ $$ $t$"]),
        ("SELECT U&'d\\0061t', B'01', X'1F', N'n'", "SELECT '0', '1', '2', '3'", None),
        ("SELECT 1.5e3, .5, 1., 0x1F, 1_000", "SELECT 0, 1, 2, 3, 4", None),
        ("SELECT -3", "SELECT -0", ["3"]),
        ("SELECT $1, $12::int", "SELECT $1, $12::int", []),
        ('SELECT a$1, t1, "x \'y" FROM t2', 'SELECT a$1, t1, "x \'y" FROM t2', []),
        ("SELECT a$b$c FROM t", "SELECT a$b$c FROM t", []),
        ("SELECT date'2020-01-01'", "SELECT date'0'", ["'2020-01-01'"]),
        ("SELECT 1 -- tail", "SELECT 0  ", ["1"]),
        ("SELECT 1 --\nFROM t", "SELECT 0  \nFROM t", ["1"]),
        ("/* a /* nested */ comment */ SELECT 1", "  SELECT 0", ["1"]),
        ("SELECT 1/*x*/+2", "SELECT 0 +1", ["1", "2"]),
        ("SELECT x::varchar(10)", "SELECT x::varchar(0)", ["10"]),
        ("SELECT ٣, é1 FROM t", "SELECT ٣, é1 FROM t", []),  # non-ASCII: identifier chars
        ("", "", []),
    ],
)
def test_shapes(sql: str, shape: str, literals: list[str] | None) -> None:
    text, found, unsafe = lex(sql)
    assert unsafe is None
    assert text == shape
    if literals is not None:
        assert found == literals


def test_queries_differing_only_in_literals_share_a_shape() -> None:
    first = lex("SELECT abalance FROM pgbench_accounts WHERE aid = 1 /* a */")
    second = lex("SELECT abalance FROM pgbench_accounts WHERE aid = 98765 /* b */")
    assert first[0] == second[0]
    assert (first[1], second[1]) == (["1"], ["98765"])


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT 'abc", "unterminated quoted string"),
        ("SELECT E'abc\\'", "unterminated quoted string"),
        ('SELECT "abc', "unterminated quoted identifier"),
        ("SELECT 1 /* abc", "unterminated comment"),
        ("/* 1 /* 2 /* 3 /* 4 /* 5 */ */ */ */ */ SELECT 1", "unterminated comment"),
        ("SELECT $a$ abc", "unterminated dollar quote"),
        ("SELECT 'a\\''; DELETE FROM t; --'", "backslash before a quote"),
        ("SELECT 'a\\'", "backslash before a quote"),
    ],
)
def test_text_the_lexer_cannot_cut_safely_is_unsafe(sql: str, reason: str) -> None:
    assert (lex(sql)[2] or "").startswith(reason)


def test_backslash_without_quote_is_safe_either_way() -> None:
    # Whatever standard_conforming_strings says, this string ends at the same place.
    assert lex("SELECT 'a\\b' LIKE 'x\\\\'")[2] is None


def test_four_levels_of_nested_comments_are_cut() -> None:
    assert lex("/* 1 /* 2 /* 3 /* 4 */ */ */ */ SELECT 'x'") == ("  SELECT '0'", ["'x'"], None)
