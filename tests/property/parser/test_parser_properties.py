"""Properties of the classifier over generated SQL.

- Adding a write construct anywhere a construct fits in a read never yields a read.
- The classification of a shape does not depend on its literal values.
- Random text never raises; text that does not start like a read is a write.
- The lexer moves nothing but literals and comments, and its lexeme pattern cuts text as
  the plain way of writing it does; the compiled relay's plain scan cuts what it takes as the
  lexer does.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from parser import (
    Classification,
    KeyStatus,
    ParamRef,
    Parser,
    ParserSettings,
    classify,
    comment_hints,
    parse_custom_command,
    scan,
)
from parser.lexer import _LEXEME, lex

KEYED = Parser(ParserSettings.build(automatic_sharding_key=["*.id", "orders.w_id"]))
HINTED = ParserSettings.build(
    shard_id_regex=r"/\* shard_id: (\d+) \*/", sharding_key_regex=r"/\* key: (-?\d+) \*/"
)

# ---- reads with holes ------------------------------------------------------------------
# A read is generated with markers where a construct of some kind fits:
#   «E» an expression, «L» the end of a SELECT block (a locking clause),
#   «W» the start of a statement (a WITH list), «S» between statements.
# Filling one marker with a write construct must make the text a write.

identifiers = st.sampled_from(["id", "a", "b", "name", "w_id", "total"])
tables = st.sampled_from(["t", "orders", "public.items", '"Mixed"', "data"])
literals = st.one_of(
    st.integers(0, 10**6).map(str),
    st.text(st.characters(codec="utf-8", exclude_characters="\\\x00"), max_size=8).map(
        lambda text: "'" + text.replace("'", "''") + "'"
    ),
    st.just("$1"),
)


def expressions(depth: int) -> st.SearchStrategy[str]:
    simple = st.one_of(identifiers, literals, identifiers.map(lambda c: f"lower({c}::text)"))
    if depth <= 0:
        return simple
    return st.one_of(
        simple,
        st.tuples(simple, st.sampled_from(["+", "-", "||"]), simple).map(" ".join),
        selects(depth - 1).map(lambda query: f"({query})"),
    )


def conditions(depth: int) -> st.SearchStrategy[str]:
    comparison = st.tuples(
        identifiers, st.sampled_from(["=", "<", ">=", "<>"]), expressions(depth)
    ).map(lambda parts: f"{parts[0]} {parts[1]} {parts[2]} «E»")
    listed = st.tuples(identifiers, st.lists(literals, min_size=1, max_size=3)).map(
        lambda parts: f"{parts[0]} IN ({', '.join(parts[1])})"
    )
    atom = st.one_of(comparison, listed)
    return st.lists(atom, min_size=1, max_size=3).flatmap(
        lambda atoms: st.sampled_from([" AND ", " OR "]).map(lambda op: op.join(atoms))
    )


def selects(depth: int) -> st.SearchStrategy[str]:
    source = st.one_of(
        tables,
        tables.map(lambda table: f"{table} x"),
        st.just("generate_series(1, 3) g"),
    )
    if depth > 0:
        source = st.one_of(source, selects(depth - 1).map(lambda query: f"({query}) s"))
    return st.builds(
        lambda items, src, where, tail: f"SELECT {items} FROM {src}{where}{tail} «L»",
        st.lists(expressions(depth), min_size=1, max_size=3).map(
            lambda items: ", ".join(item + " «E»" for item in items)
        ),
        source,
        st.one_of(st.just(""), conditions(depth).map(lambda c: f" WHERE {c}")),
        st.sampled_from(["", " ORDER BY 1", " LIMIT 10", " ORDER BY 1 DESC LIMIT 5 OFFSET 2"]),
    )


def queries() -> st.SearchStrategy[str]:
    single = st.one_of(
        selects(2),
        st.tuples(selects(1), selects(1)).map(lambda q: f"{q[0]} UNION ALL {q[1]}"),
        selects(1).map(lambda q: f"WITH c AS ({q}) SELECT * FROM c «L»"),
        st.just("VALUES (1 «E», 2), (3, 4)"),
        st.just("TABLE t"),
        st.just("SHOW search_path"),
    ).map(lambda query: "«W»" + query)
    return st.lists(single, min_size=1, max_size=3).map(lambda qs: "«S»" + "; «S»".join(qs))


WRITE_CONSTRUCTS = {
    "E": [
        "nextval('s')",
        "pg_catalog.setval('s', 1)",
        "pg_advisory_lock(1)",
        "set_config('a', 'b', false)",
        "txid_current()",
        "pg_current_xact_id()",
        "lo_import('/x')",
        "\"nextval\"('s')",
    ],
    "L": ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE SKIP LOCKED"],
    "W": [
        "w AS (INSERT INTO t VALUES (1) RETURNING *)",
        "w AS (UPDATE t SET a = 1 RETURNING a)",
        "w AS (DELETE FROM t RETURNING *)",
    ],
    "S": ["DELETE FROM t;", "LISTEN x;", "BEGIN;", "SET x = 1;", "DISCARD ALL;", "SAVEPOINT a;"],
}
_MARKER = re.compile("«([ELWS])»")


def _without_markers(template: str) -> str:
    return _MARKER.sub("", template)


@settings(max_examples=150, deadline=None)
@given(queries())
def test_generated_reads_are_reads(template: str) -> None:
    sql = _without_markers(template)
    assert not classify(sql).is_write, (sql, classify(sql).reason)


@settings(max_examples=300, deadline=None)
@given(queries(), st.data())
def test_a_write_construct_anywhere_in_a_read_makes_a_write(
    template: str, data: st.DataObject
) -> None:
    holes = list(_MARKER.finditer(template))
    hole = data.draw(st.sampled_from(holes))
    construct = data.draw(st.sampled_from(WRITE_CONSTRUCTS[hole.group(1)]))
    before, after = template[: hole.start()], template[hole.end() :]
    if hole.group(1) == "W":  # a data-modifying CTE joins (or starts) the WITH list
        if after.startswith("WITH "):
            after = "WITH " + construct + ", " + after[len("WITH ") :]
        else:
            after = "WITH " + construct + " " + after
        construct = ""
    sql = _without_markers(before + construct + after)
    assert classify(sql).is_write, sql


# ---- literal values do not change a shape's classification --------------------------------

CORPUS = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
    "UPDATE pgbench_accounts SET abalance = abalance + -5 WHERE aid = 3;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, now());",
    "SELECT * FROM orders WHERE w_id = 5 AND d = 'x' ORDER BY o LIMIT 3",
    "SELECT * FROM data WHERE id IN (1, 2, 3) OR id = '4'::bigint",
    "INSERT INTO data (id, v) VALUES (1, 'a'), (2, 'b')",
    "UPDATE data SET v = 'z' WHERE id = 7",
    "DELETE FROM data WHERE id = ANY(ARRAY[1, 2])",
    "SELECT * FROM t2 JOIN data d ON d.id = 6 WHERE d.v = $1",
    "SELECT nextval('seq'), 1.5, $$x$$",
    "SELECT * FROM data WHERE id = 5 FOR UPDATE",
    "WITH d AS (DELETE FROM data WHERE id = 3 RETURNING *) SELECT * FROM d",
    "SET search_path TO 'a'",
    "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT 1; COMMIT",
    "COPY (SELECT 'from' FROM data WHERE id = 1) TO STDOUT",
    "SELECT * FROM data WHERE id = 5; SELECT * FROM orders WHERE w_id = 'x'",
    "NOTIFY ch, 'payload'",
    "SELECT E'a' || 'b', 0x1F, 1e3 FROM data WHERE id = -8",
]

numbers = st.one_of(
    st.integers(0, 2**70).map(str),
    st.decimals(0, 10**6, allow_nan=False, places=3).map(str),
)
texts = st.text(st.characters(codec="utf-8", exclude_characters="\\\x00"), max_size=12)
quoted = texts.map(lambda text: "'" + text.replace("'", "''") + "'")
strings = st.one_of(quoted, texts.map(lambda text: "$q$" + text.replace("$q$", "") + "$q$"))


def _relit(sql: str, draw: st.DataObject) -> str:
    """`sql` with each literal replaced by a random literal of the same class."""
    parts = _LEXEME.split(sql)
    for i in range(1, len(parts), 3):
        lexeme = parts[i]
        assert lexeme is not None
        if lexeme[0].isdigit():
            parts[i] = draw.draw(numbers)
        elif lexeme[0] == "'" or lexeme[0] == "$":
            before = parts[i - 1] or ""
            # After a prefix (E'', U&'') only a quoted string keeps the shape.
            parts[i] = draw.draw(quoted if before[-1:].isalpha() or before[-1:] == "&" else strings)
        parts[i + 1] = None
    return "".join(part for part in parts if part)


def _shape_facts(classification: Classification) -> tuple[object, ...]:
    keys = classification.shard_keys
    params = tuple(key for key in keys.keys if isinstance(key, ParamRef))
    return classification.traits, keys.status, len(keys.keys), params


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_classification_of_a_shape_does_not_depend_on_its_literals(
    sql: str, data: st.DataObject
) -> None:
    first, second = _relit(sql, data), _relit(sql, data)
    assert lex(first)[0] == lex(second)[0]
    assert _shape_facts(KEYED.classify(first)) == _shape_facts(KEYED.classify(second))
    assert _shape_facts(Parser().classify(first)) == _shape_facts(Parser().classify(second))


# ---- random text -------------------------------------------------------------------------

_SOUP = """
SELECT FROM WHERE INSERT UPDATE DELETE WITH AS FOR SHARE ( ) , ; ' '' " $$ $1 $a$ -- /* */
E' 1 - id = IN ANY ARRAY[ ] :: bigint LISTEN SET SHOW BEGIN READ ONLY COPY TO nextval( \\
U&' VALUES TABLE
"""


def _soup_words(text: str) -> list[str]:
    return [*text.split(), "\n"]


sql_words = st.sampled_from(_soup_words(_SOUP))
sql_soup = st.lists(sql_words, max_size=25).map(" ".join)
# A read starts like one, after any empty statements (";; SELECT 1" is a read).
READ_START = re.compile(r"[\s;]*(?:\(|SELECT|VALUES|TABLE|WITH|SHOW)\b", re.IGNORECASE)


def _check_never_raises(text: str) -> None:
    for parser in (KEYED, Parser()):
        classification = parser.classify(text)
        assert isinstance(classification, Classification)
        if not classification.is_write:
            assert READ_START.match(lex(text)[0]), text
        assert classification.shard_keys.status in KeyStatus
    parse_custom_command(text)
    comment_hints(text, HINTED)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    _check_never_raises(text)


@settings(max_examples=300, deadline=None)
@given(sql_soup)
def test_random_sql_soup_never_raises(text: str) -> None:
    _check_never_raises(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_mangled_queries_never_raise(sql: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(sql)))
    end = data.draw(st.integers(start, len(sql)))
    _check_never_raises(sql[:start] + data.draw(sql_words) + sql[end:])


# ---- the lexer ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(sql_soup, st.sampled_from(CORPUS)))
def test_lexer_moves_nothing_but_literals(text: str) -> None:
    """Putting the literals back where the placeholders are gives the text back."""
    shape, literals, unsafe = lex(text)
    if unsafe is not None or "--" in text or "/*" in text:
        return  # comments are dropped: the text cannot come back
    parts = _LEXEME.split(shape)
    for i in range(1, len(parts), 3):
        lexeme = parts[i]
        assert lexeme is not None
        if lexeme[0] != '"':
            parts[i] = literals[int(lexeme.strip("'"))]
        parts[i + 1] = None
    assert "".join(part for part in parts if part) == text


# The lexeme pattern written the plain way: a lookahead on the first character, each form
# spelt from its start. The lexer's own pattern consumes that character first (faster in
# CPython's sre) and must cut every text the same way; its dollar tag group lacks the first $.
_IDENT = r"[\w$\u0080-\U0010ffff]"
_TAG = r"\$(?:[A-Za-z_\u0080-\U0010ffff][\w\u0080-\U0010ffff]*)?\$"
_COMMENT = r"/\*(?:[^*/]|\*(?!/)|/(?!\*))*\*/"
for _ in range(3):
    _COMMENT = r"/\*(?:[^*/]|\*(?!/)|/(?!\*)|" + _COMMENT + r")*\*/"
_PLAIN_LEXEME = re.compile(
    rf"""((?=[-/"'$0-9.])(?:--[^\n\r]*|{_COMMENT}|"(?:[^"]|"")*"|'(?:[^']|'')*'
    |(?<!{_IDENT})({_TAG}).*?\2
    |(?<!{_IDENT})(?:0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+
        |(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)
    |/\*|['"]|(?<!{_IDENT}){_TAG}))""",
    re.VERBOSE | re.DOTALL,
)
# Fragments glued without spaces: identifiers touching numbers, quotes and dollar signs.
_FRAGMENTS = st.sampled_from([
    "a", "x", "e", "E", "_", "$", "0", "1", "9", ".", "'", '"', "/", "*", "-", "\n", ";",
    " ", "é", "$$", "$a$", "--", "/*", "*/", "''", "0x1f", "0o7", "0b1", "1e5", "1.5e-3",
    "E'", "\\", "SELECT ", "t1",
])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=30).map("".join))
def test_the_lexeme_pattern_cuts_as_the_plain_one(text: str) -> None:
    ours, plain = _LEXEME.split(text), _PLAIN_LEXEME.split(text)
    assert len(ours) == len(plain)
    for i, (a, b) in enumerate(zip(ours, plain, strict=True)):
        if i % 3 == 2 and b is not None:  # the tag of a complete dollar quote
            assert a == b[1:]
        else:
            assert a == b


# ---- parser.scan: the compiled relay's scan of plain queries ----------------------------
_ASCII_FRAGMENTS = st.sampled_from([
    "a", "x", "e", "E", "U", "&", "_", "$", "$1", "0", "1", "9", "12", ".", "'", '"', "/",
    "*", "-", "\n", "\r", ";", " ", "=", "(", ")", ",", "$$", "$a$", "--", "/*", "*/", "''",
    '""', "0x1f", "1e5", "1.5", "1_0", "E'", "\\", "SELECT ", "t1", "'abc'", '"Id"',
])


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.lists(_ASCII_FRAGMENTS, max_size=30).map("".join),
                 sql_soup, st.sampled_from(CORPUS), st.text(max_size=40)))
def test_the_plain_scan_cuts_as_the_lexer_or_gives_up(text: str) -> None:
    plain = scan.lex_plain(text)
    if plain is not None:
        assert plain == lex(text)


def test_the_plain_scan_takes_the_common_queries() -> None:
    for sql in ("SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
                "UPDATE t SET name = 'it''s', n = n + 1 WHERE id = $1 -- app\n",
                'SELECT "User".id FROM "User" WHERE email = \'a@b.c\' LIMIT 10'):
        assert scan.lex_plain(sql) == lex(sql)
    for sql in ("SELECT 1.5", "SELECT E'\\n'", "SELECT $$x$$", "SELECT /* c */ 1", "SELECT 'é'"):
        assert scan.lex_plain(sql) is None, sql


def test_the_plain_scan_numbers_literals_past_its_placeholders() -> None:
    sql = "SELECT * FROM t WHERE id IN (" + ", ".join(
        str(i) if i % 2 else f"'{i}'" for i in range(300)) + ")"
    assert scan.lex_plain(sql) == lex(sql)
