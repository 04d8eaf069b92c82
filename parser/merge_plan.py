"""Merge plans: how a SELECT sent to every shard becomes one answer (issue 12, item 1).

`plan_merge(sql)` reads one SELECT and returns a MergePlan: the statement each shard runs
(``shard_sql``) and what the proxy does with the shards' rows. Two shapes:

- plain: every shard's rows pass through unchanged. With ORDER BY the shards sort and the
  proxy merges the sorted streams (a k-way merge, so memory stays at one row per shard);
  LIMIT n OFFSET m goes to the shards as LIMIT n + m and is applied at the merge. ORDER BY
  keys that are not output columns are appended to the shard's select list as hidden
  columns and cut off before the client sees the row.
- grouped (aggregates, GROUP BY, DISTINCT): each shard returns its groups' partial
  aggregates (avg(x) becomes sum(x) and count(x); stddev and variance count, sum and sum of
  squares); the proxy combines the partials per group, then applies HAVING, DISTINCT,
  ORDER BY and LIMIT / OFFSET itself. DISTINCT aggregates and ordered string_agg /
  array_agg make the shards group finer (by the DISTINCT values, the ORDER BY values):
  the decomposable partials still combine, and the proxy gathers the values per group.

UNION ALL / UNION of plain SELECTs (merge_unions.py) are a plain and a DISTINCT plan. The
planner is merge_rewrite.py, its partial aggregates merge_aggregates.py, the clauses it
reads merge_clauses.py, HAVING merge_conditions.py, joins merge_joins.py.

Anything whose merge would not be exactly PostgreSQL's answer raises MergeUnsupported, whose
message names the construct (the client gets 0A000). Pure: no I/O; the plan is cached by
text. Runtime checks that need the column types (ORDER BY on text, min of text) are the
executor's (pgcat_py/scatter/).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from parser.settings import ShardingKey

PLAN_CACHE_SIZE = 1024  # plans kept by SQL text
MAX_CACHED_TEXT = 8192  # longer texts are planned every time (the cache holds its keys)


class MergeUnsupported(ValueError):
    """The statement cannot be merged exactly; the message names the construct."""


class Combine(enum.Enum):
    """How one merged column is made from the shards' columns."""

    KEY = "key"  # an output (or group key) column: passed through
    COUNT = "count"  # sum of the shards' counts
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVG = "avg"  # sources: the shards' sum and count
    BOOL_AND = "bool_and"
    BOOL_OR = "bool_or"
    # DISTINCT aggregates: the source is the distinct value, once per shard group.
    COUNT_DISTINCT = "count_distinct"
    SUM_DISTINCT = "sum_distinct"
    AVG_DISTINCT = "avg_distinct"
    # Without ORDER BY the order of the values is unspecified: shard by shard is one order.
    STRING_AGG = "string_agg"  # separator: MergedColumn.separator
    ARRAY_AGG = "array_agg"
    # sources: count(x), sum(x), sum(x::numeric * x::numeric); integers and numeric only
    VAR_SAMP = "var_samp"
    VAR_POP = "var_pop"
    STDDEV_SAMP = "stddev_samp"
    STDDEV_POP = "stddev_pop"
    # An expression over aggregates (sum(a) / count(*), round(avg(x), 2)): PostgreSQL
    # evaluates MergedColumn.expression over the merged columns it names (v.c<N>).
    EXPRESSION = "expression"


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ORDER BY key: a merged column (plain plans: a shard column; negative counts
    from the end, for hidden columns), the direction, where NULLs go, and whether it
    compares with the "C" collation (text keys are refused otherwise)."""

    column: int
    descending: bool
    nulls_first: bool
    c_collation: bool = False


@dataclass(frozen=True, slots=True)
class MergedColumn:
    combine: Combine
    sources: tuple[int, ...]  # shard result columns (0-based)
    separator: str = ""  # string_agg's
    # An ordered string_agg / array_agg: its ORDER BY, by position in sources[1:] (the
    # sub-group's sort values; sources[0] is the sub-group's unordered partial).
    order: tuple[SortKey, ...] = ()
    expression: str = ""  # Combine.EXPRESSION's SQL over v.c<N>, N a merged column
    uses: tuple[int, ...] = ()  # ... and those N


# HAVING, evaluated by the proxy on merged rows (three-valued, as SQL).
@dataclass(frozen=True, slots=True)
class ColumnRef:
    column: int  # a merged column


@dataclass(frozen=True, slots=True)
class Constant:
    value: int | Decimal | str | bool | None


Operand = ColumnRef | Constant


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # "=", "<>", "<", "<=", ">", ">="
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # "and", "or", "not"
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Operand
    negated: bool


Condition = Compare | Logic | IsNull


@dataclass(frozen=True, slots=True)
class MergePlan:
    """See the module docstring. ``hidden``: trailing shard (plain) or merged (grouped)
    columns the client does not see. ``columns`` and ``group_keys`` are for grouped plans;
    a DISTINCT plan without aggregates groups by every visible column."""

    shard_sql: str
    grouped: bool
    columns: tuple[MergedColumn, ...] = ()
    group_keys: tuple[int, ...] = ()
    distinct: bool = False
    order: tuple[SortKey, ...] = ()
    limit: int | None = None
    offset: int = 0
    having: Condition | None = None
    hidden: int = 0


def plan_merge(sql: str, keys: tuple[ShardingKey, ...] = (),
               user_aggregates: frozenset[str] = frozenset()) -> MergePlan:
    """The MergePlan of one SELECT; MergeUnsupported when it cannot be merged exactly.
    ``keys``: the pool's sharding keys (a join of sharded tables must be on them).
    ``user_aggregates``: names of aggregates created in the database (the catalog says
    which): a call of one looks like any function, and each shard would answer with its
    own partial result."""
    if len(sql) > MAX_CACHED_TEXT:
        return _plan(sql, keys, user_aggregates)
    return _planned(sql, keys, user_aggregates)


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _planned(sql: str, keys: tuple[ShardingKey, ...],
             user_aggregates: frozenset[str]) -> MergePlan:
    return _plan(sql, keys, user_aggregates)


def _plan(sql: str, keys: tuple[ShardingKey, ...],
          user_aggregates: frozenset[str] = frozenset()) -> MergePlan:
    from parser.merge_joins import check_joins
    from parser.merge_rewrite import Planner

    try:
        trees = sqlglot.parse(sql, dialect="postgres")
    except ParseError as exc:
        raise MergeUnsupported(f"a statement the proxy cannot parse ({exc.errors[:1]})") \
            from None
    found = [t for t in trees if t is not None]
    if len(found) != 1:
        raise MergeUnsupported("several statements in one query")
    for select in found[0].find_all(exp.Select):  # a UNION's branches too
        check_joins(select, keys)
    if user_aggregates:
        _refuse_user_aggregates(found[0], user_aggregates)
    return Planner(found[0], sql).plan()


def _refuse_user_aggregates(tree: exp.Expr, names: frozenset[str]) -> None:
    for call in tree.find_all(exp.Func):
        name = call.sql_name() if not isinstance(call, exp.Anonymous) else str(call.this)
        if name.lower() in names:
            raise MergeUnsupported(f"the user-defined aggregate {name.lower()}()")
