"""Cross-shard writes (issue 12, item 2): how one INSERT, UPDATE or DELETE becomes a
statement per shard. Pure: no I/O; the executor is pgcat_py/scatter/writes.py.

- A multi-row ``INSERT INTO t (cols) VALUES (...), (...) [ON CONFLICT ...] [RETURNING ...]``
  is split by the shard of each row's key: each shard gets the same statement with only its
  rows. The text is cut from the query's shape (parser/lexer.py: literals as numbered
  placeholders), so every other clause stays exactly as the client wrote it; the literals
  are put back afterwards. ``$n`` parameters are renumbered per shard (a shard's statement
  names only the parameters it uses). A row whose key is not a literal or a parameter
  (an expression, DEFAULT, a missing key column) cannot be placed: WriteUnsupported.
- UPDATE and DELETE run unchanged on every shard concerned; ``check_broadcast`` refuses
  what a shard cannot do alone: another sharded table in the statement (each shard sees
  only its own rows of it) or an assignment to the sharding key (the row would have to
  move between shards).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from parser.classification import KeyStatus, KeyValue, ParamRef
from parser.core import MAX_CACHED_SHAPE
from parser.dml import spaced_params
from parser.keys import Source, found, resolve
from parser.lexer import lex
from parser.settings import ShardingKey
from parser.shard_keys import _value_source

SHAPE_CACHE_SIZE = 512  # INSERT shapes kept analysed

# What the split scans for in a shape (no strings or comments are left in one): quoted
# identifiers (skipped whole), parentheses, commas, and the VALUES keyword.
_ROW_TOKENS = re.compile(r'"(?:[^"]|"")*"|[(),]|(?<![\w$])values(?![\w$])', re.IGNORECASE)
# A literal placeholder ('n' or n) or a parameter ($n) in a shape, quoted identifiers skipped.
_IDENT = r"[\w$\u0080-\U0010ffff]"
_HOLES = re.compile(rf'"(?:[^"]|"")*"|\'(\d+)\'|(?<!{_IDENT})(\d+)|(?<!{_IDENT})\$(\d+)')


class WriteUnsupported(ValueError):
    """The write cannot be spread over shards exactly; the message names the construct."""


@dataclass(frozen=True, slots=True)
class ShardStatement:
    """One shard's part of a write: its SQL, the client's Bind parameters it takes (1-based
    positions, in the order of its own $1, $2, ...), and the client's VALUES rows it holds
    (0-based, in order; empty for UPDATE and DELETE)."""

    shard: int
    sql: str
    params: tuple[int, ...] = ()
    rows: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _InsertShape:
    prefix: str  # up to the first row's "("
    rows: tuple[str, ...]  # each row "( ... )", as in the shape
    suffix: str  # after the last row's ")"
    keys: tuple[tuple[Source, ...], ...]  # per row: where its key value(s) come from


# A key's shard: from a literal's value, or from the client's Bind parameter.
ShardOf = Callable[[KeyValue | ParamRef], int]


def split_insert(sql: str, keys: tuple[ShardingKey, ...], shard_of: ShardOf
                 ) -> list[ShardStatement]:
    """The statements of a multi-row INSERT per shard, in shard order. ``shard_of`` maps a
    key value (or a ParamRef, for the executor to read from the Bind) to its shard and may
    raise (a bad key value)."""
    shape, literals, unsafe = lex(sql)
    if unsafe is not None:
        raise WriteUnsupported(f"an INSERT the proxy cannot cut safely ({unsafe})")
    spaced = spaced_params(shape)
    plan = _insert_shape(spaced, keys) if len(spaced) <= MAX_CACHED_SHAPE else \
        _analyse_insert(spaced, keys)
    by_shard: dict[int, list[int]] = {}
    for index, sources in enumerate(plan.keys):
        shards = {shard_of(_value(source, literals)) for source in sources}
        if len(shards) != 1:
            raise WriteUnsupported(f"row {index + 1} whose sharding keys are on several shards")
        by_shard.setdefault(shards.pop(), []).append(index)
    statements = []
    for shard in sorted(by_shard):
        rows = by_shard[shard]
        text = plan.prefix + ", ".join(plan.rows[i] for i in rows) + plan.suffix
        statement, params = _filled(text, literals)
        statements.append(ShardStatement(shard, statement, params, tuple(rows)))
    return statements


def _value(source: Source, literals: list[str]) -> KeyValue | ParamRef:
    if isinstance(source, ParamRef):
        return source
    keys = resolve(found(source), literals)
    if keys.status is not KeyStatus.FOUND:
        raise WriteUnsupported("a sharding key the proxy cannot read")
    return keys.keys[0]


def _filled(shape: str, literals: list[str]) -> tuple[str, tuple[int, ...]]:
    """The shape with its literals put back and its parameters numbered from $1 (ascending
    client positions); the client positions, in that order."""
    positions = sorted({int(m.group(3)) for m in _HOLES.finditer(shape) if m.group(3)})
    renumber = {position: index for index, position in enumerate(positions, start=1)}

    def put_back(match: re.Match[str]) -> str:
        string, number, param = match.groups()
        if param is not None:
            return f"${renumber[int(param)]}"
        slot = string if string is not None else number
        return match.group() if slot is None else literals[int(slot)]

    return _HOLES.sub(put_back, shape), tuple(positions)


def _analyse_insert(shape: str, keys: tuple[ShardingKey, ...]) -> _InsertShape:
    tree = _single(shape)
    if not isinstance(tree, exp.Insert) or tree.args.get("with_") or tree.args.get("with"):
        raise WriteUnsupported("a cross-shard write other than INSERT ... VALUES")
    target = tree.this
    if not isinstance(target, exp.Schema) or not target.expressions:
        raise WriteUnsupported("an INSERT without a column list (name the columns, so the "
                               "sharding key's position is known)")
    table = target.this
    assert isinstance(table, exp.Table)
    _check_other_tables(tree, table, keys)
    values = tree.expression
    if not isinstance(values, exp.Values):
        raise WriteUnsupported("INSERT ... SELECT into a sharded table across shards")
    names = [column.name.lower() for column in target.expressions]
    positions = [names.index(key.column) for key in keys
                 if key.column in names and _keyed(key, table.name.lower())]
    if not positions:
        raise WriteUnsupported("an INSERT that leaves the sharding key to its default")
    conflict = tree.args.get("conflict")
    if isinstance(conflict, exp.OnConflict):
        _check_assignments(conflict.expressions, table.name.lower(), keys)
    row_keys = tuple(_row_keys(row, index, positions)
                     for index, row in enumerate(values.expressions))
    prefix, rows, suffix = _cut_rows(shape)
    if len(rows) != len(row_keys):
        raise WriteUnsupported("an INSERT whose VALUES list the proxy cannot cut")
    return _InsertShape(prefix, rows, suffix, row_keys)


# Cached by shape: a bulk INSERT's long shape is analysed each time, not kept (memory).
_insert_shape = functools.lru_cache(maxsize=SHAPE_CACHE_SIZE)(_analyse_insert)


def _row_keys(row: exp.Expr, index: int, positions: list[int]) -> tuple[Source, ...]:
    values = row.expressions if isinstance(row, exp.Tuple) else [row]
    sources: list[Source] = []
    for position in positions:
        source = _value_source(values[position]) if position < len(values) else None
        if source is None or (isinstance(source, ParamRef) and source.array):
            raise WriteUnsupported(f"row {index + 1} whose sharding key is not a literal or "
                                   "a parameter (an expression, DEFAULT or NULL)")
        sources.append(source)
    return tuple(sources)


def _cut_rows(shape: str) -> tuple[str, tuple[str, ...], str]:
    """The VALUES rows of an INSERT shape: the text before them, each row, the text after."""
    depth, seen_values, expecting, start = 0, False, False, -1
    rows: list[tuple[int, int]] = []
    last = 0  # where the text since the previous token began
    for match in _ROW_TOKENS.finditer(shape):
        token, gap = match.group(), shape[last:match.start()]
        last = match.end()
        if token[0] == '"':
            continue
        if depth == 0 and rows and not expecting and (token != "," or gap.strip()):
            break  # past the rows: ON CONFLICT, RETURNING, ...
        if token == "(":
            if depth == 0 and expecting and not gap.strip():
                start, expecting = match.start(), False
            depth += 1
        elif token == ")":
            depth -= 1
            if depth == 0 and start >= 0:
                rows.append((start, match.end()))
                start = -1
        elif token == ",":
            expecting = depth == 0 and bool(rows)
        elif depth == 0 and not seen_values:
            seen_values = expecting = True
    if not rows:
        return shape, (), ""
    return (shape[:rows[0][0]], tuple(shape[a:b] for a, b in rows), shape[rows[-1][1]:])


def check_broadcast(sql: str, keys: tuple[ShardingKey, ...]) -> None:
    """WriteUnsupported unless the UPDATE or DELETE ``sql`` gives the right answer run
    unchanged on every shard (see the module docstring)."""
    shape, _, unsafe = lex(sql)
    if unsafe is not None:
        raise WriteUnsupported(f"a statement the proxy cannot read safely ({unsafe})")
    tree = _single(spaced_params(shape))
    if not isinstance(tree, exp.Update | exp.Delete):
        raise WriteUnsupported("a cross-shard write other than INSERT, UPDATE or DELETE")
    table = tree.this
    if not isinstance(table, exp.Table):
        raise WriteUnsupported("an UPDATE or DELETE of something other than a table")
    _check_other_tables(tree, table, keys)
    if isinstance(tree, exp.Update):
        _check_assignments(tree.expressions, table.name.lower(), keys)


def _single(sql: str) -> exp.Expr:
    try:
        trees = [t for t in sqlglot.parse(sql, read="postgres") if t is not None]
    except Exception as exc:  # sqlglot raises ParseError, TokenError and others
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise WriteUnsupported(f"a statement the proxy cannot parse ({first})") from None
    if len(trees) != 1:
        raise WriteUnsupported("several statements in one cross-shard write")
    return trees[0]


def _keyed(key: ShardingKey, table: str) -> bool:
    return key.table is None or key.table == table


def _check_other_tables(tree: exp.Expr, target: exp.Table,
                        keys: tuple[ShardingKey, ...]) -> None:
    """Each shard holds only its own rows of a sharded table: a write that reads another
    one (FROM, USING, a subquery) would see a part of it on each shard."""
    ctes = {cte.alias.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if table is target or name in ctes or not isinstance(table.this, exp.Identifier):
            continue
        if any(_keyed(key, name) for key in keys):
            raise WriteUnsupported(f"a cross-shard write that reads the sharded table {name}")


def _check_assignments(assignments: list[exp.Expr], table: str,
                       keys: tuple[ShardingKey, ...]) -> None:
    for assignment in assignments:
        column = assignment.this if isinstance(assignment, exp.EQ) else None
        if isinstance(column, exp.Column) and any(
                key.column == column.name.lower() and _keyed(key, table) for key in keys):
            raise WriteUnsupported("a cross-shard write that changes the sharding key "
                                   "(the row would move to another shard)")

