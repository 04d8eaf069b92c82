"""Queries and DML through sqlglot: read or write, tables, shard keys.

Only statements that start with SELECT, VALUES, TABLE, WITH, `(`, INSERT, UPDATE, DELETE or
MERGE come here (statements.SQLGLOT_KEYWORDS). sqlglot is lenient and never the only judge
of a read: the shape is first scanned for the words no read contains (INSERT, UPDATE,
DELETE, MERGE, INTO, FOR UPDATE/SHARE), then the tree is walked for the same constructs, and
a read needs both to agree. A parse failure, or a tree of an unexpected type, is a write.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from parser.classification import StatementKind
from parser.keys import NO_PLAN, UNKNOWN_PLAN
from parser.shard_keys import KeyExtractor
from parser.statements import StatementInfo


class _CommandFallbackFilter(logging.Filter):
    """Drops sqlglot's "Falling back to parsing as a 'Command'" warnings: expected here (a
    Command is a write), and one per unusual query would flood the proxy's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_CommandFallbackFilter())

POSTGRES = Dialect.get_or_raise("postgres")  # looked up once, not on every parse

_READ_KEYWORDS = {
    "SELECT": StatementKind.SELECT,
    "WITH": StatementKind.SELECT,
    "(": StatementKind.SELECT,
    "VALUES": StatementKind.VALUES,
    "TABLE": StatementKind.TABLE,
}
_WRITE_ROOTS: dict[type[exp.Expr], StatementKind] = {
    exp.Insert: StatementKind.INSERT,
    exp.Update: StatementKind.UPDATE,
    exp.Delete: StatementKind.DELETE,
    exp.Merge: StatementKind.MERGE,
}
_READ_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)

_LOCK = "row-locking clause (FOR UPDATE / SHARE)"

# Words no read contains, in the order their reasons are reported.
_WRITE_WORDS = (
    (re.compile(r"\bFOR\s+(?:NO\s+KEY\s+|KEY\s+)?(?:UPDATE|SHARE)\b", re.I), _LOCK),
    (re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.I), "data-modifying statement"),
    (re.compile(r"\bINTO\b", re.I), "SELECT INTO"),
)
# A double-quoted identifier is a name, never a keyword: `SELECT "update" FROM t` is a read.
_QUOTED_IDENTIFIER = re.compile(r'"(?:[^"]|"")*"')
# A $n parameter right before another character (quoted identifiers skipped): sqlglot 30
# fails to tokenize "$1,$2" or "f($1,$2)" when another "$" follows.
_PARAM_BEFORE = re.compile(r'("(?:[^"]|"")*")|((?<![\w$])\$\d+)(?=[^\s\d])')


def spaced_params(shape: str) -> str:
    """The shape with a space after each parameter that has none: sqlglot then reads
    "$1,$2" (which would be unparseable: a write with unknown keys, to default_shard);
    PostgreSQL reads the same statement. Shapes hold no strings, so "$" is a parameter,
    a dollar in a name, or a quoted identifier's."""
    if "$" not in shape:
        return shape
    return _PARAM_BEFORE.sub(lambda m: m.group(1) or m.group(2) + " ", shape)


class DmlAnalyser:
    """Analyses one query or DML statement shape with sqlglot."""

    def __init__(self, keys: KeyExtractor | None) -> None:
        self._keys = keys

    def analyse(self, statement: str, keyword: str) -> StatementInfo:
        expected = _READ_KEYWORDS.get(keyword) or StatementKind(keyword)
        try:
            tree = sqlglot.parse_one(spaced_params(statement), read=POSTGRES)
        except Exception as failure:  # sqlglot raises ParseError, TokenError, and others
            message = (str(failure).splitlines() or [type(failure).__name__])[0][:120]
            return StatementInfo(expected, reason=f"unparseable: {message}", keys=UNKNOWN_PLAN)
        kind = _root_kind(tree, keyword)
        if kind is None:
            return StatementInfo(
                expected, reason=f"unexpected {type(tree).__name__} tree", keys=UNKNOWN_PLAN
            )
        reason: str | None = kind.value
        temporary = False
        if kind in (StatementKind.SELECT, StatementKind.VALUES, StatementKind.TABLE):
            reason, temporary = _write_in_query(statement, tree)
        plan, error = self._keys.extract(tree) if self._keys else (NO_PLAN, None)
        return StatementInfo(
            kind,
            is_write=reason is not None,
            reason=reason or "read",
            tables=_tables(tree),
            keys=plan,
            pins_session=temporary,
            sets_session_state=temporary,
            error=error,
        )


def _root_kind(tree: exp.Expr, keyword: str) -> StatementKind | None:
    """The kind of the tree, or None when sqlglot made something unexpected of it."""
    if keyword in _READ_KEYWORDS:
        if isinstance(tree, _READ_ROOTS):
            return _READ_KEYWORDS[keyword]
        if keyword == "WITH":
            return _WRITE_ROOTS.get(type(tree))
        return None
    kind = _WRITE_ROOTS.get(type(tree))
    return kind if kind is not None and kind.value == keyword else None


def _write_in_query(statement: str, tree: exp.Expr) -> tuple[str | None, bool]:
    """Why a query is a write (None if it is a read), and whether it creates a temp table."""
    temporary = any(into.args.get("temporary") for into in tree.find_all(exp.Into))
    words = _QUOTED_IDENTIFIER.sub('""', statement) if '"' in statement else statement
    for pattern, reason in _WRITE_WORDS:
        if pattern.search(words):
            return reason, temporary
    for node in tree.walk():
        if isinstance(node, exp.Lock):
            return _LOCK, temporary
        if isinstance(node, exp.Into):
            return "SELECT INTO", temporary
        if isinstance(node, exp.Insert | exp.Update | exp.Delete | exp.Merge):
            return "data-modifying statement", temporary
        if isinstance(node, exp.Command):
            return "unsupported syntax", temporary
    return None, temporary


def _tables(tree: exp.Expr) -> tuple[str, ...]:
    """Base tables named in the tree, each once, CTE names left out."""
    ctes = {cte.alias.lower() for cte in tree.find_all(exp.CTE)}
    names: dict[str, None] = {}
    for table in tree.find_all(exp.Table, bfs=False):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function
        parts = [table.args.get(part) for part in ("catalog", "db", "this")]
        words = [_identifier(part) for part in parts if isinstance(part, exp.Identifier)]
        if len(words) == 1 and words[0].lower() in ctes:
            continue
        names[".".join(words)] = None
    return tuple(names)


def _identifier(node: exp.Identifier) -> str:
    """A table name part as PostgreSQL resolves it: lowercased unless quoted."""
    text = str(node.this)
    return text if node.quoted else text.lower()
