"""Joins in a cross-shard SELECT: which ones each shard can answer for its own rows.

Each shard joins only the rows it holds. That is the whole answer when at most one joined
table is sharded (the others are reference tables, the same on every shard), or when the
sharded tables are joined on their sharding keys (co-located rows: equal keys hash to the
same shard). Any other join of two sharded tables would miss the pairs that live on
different shards, so it is refused, naming the tables.
"""

from __future__ import annotations

from sqlglot import exp

from parser.merge_plan import MergeUnsupported
from parser.settings import ShardingKey


def check_joins(select: exp.Select, keys: tuple[ShardingKey, ...]) -> None:
    """MergeUnsupported unless every sharded table is tied to the others by key equality."""
    sharded: dict[str, str] = {}  # qualifier (alias or name) -> key column
    for table in select.find_all(exp.Table):
        column = _key_column(table.name.lower(), keys)
        if column is not None:
            sharded[(table.alias_or_name or table.name).lower()] = column
    if len(sharded) <= 1:
        return
    parent = {name: name for name in sharded}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for left, right in _equalities(select):
        a, b = _qualifier(left, sharded), _qualifier(right, sharded)
        if a is not None and b is not None and a != b:
            parent[root(a)] = root(b)
    if len({root(name) for name in sharded}) > 1:
        raise MergeUnsupported(
            f"a join of sharded tables ({', '.join(sorted(sharded))}) not on their sharding "
            "keys across shards")


def _key_column(table: str, keys: tuple[ShardingKey, ...]) -> str | None:
    for key in keys:
        if key.table is None or key.table == table:
            return key.column
    return None


def _equalities(select: exp.Select) -> list[tuple[exp.Expr, exp.Expr]]:
    """``a = b`` conditions that hold for every row: the conjuncts of WHERE and of each
    join's ON (inner or outer: an outer join's unmatched rows have no partner anywhere)."""
    conditions: list[exp.Expr] = []
    where = select.args.get("where")
    if where is not None:
        conditions.append(where.this)
    for join in select.args.get("joins") or ():
        on = join.args.get("on")
        if on is not None:
            conditions.append(on)
    pairs: list[tuple[exp.Expr, exp.Expr]] = []
    while conditions:
        node = conditions.pop()
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.And):
            conditions += [node.this, node.expression]
        elif isinstance(node, exp.EQ):
            pairs.append((node.this, node.expression))
    return pairs


def _qualifier(node: exp.Expr, sharded: dict[str, str]) -> str | None:
    """The sharded table whose key column ``node`` is (it must be qualified)."""
    if not isinstance(node, exp.Column) or not node.table:
        return None
    qualifier = node.table.lower()
    column = sharded.get(qualifier)
    return qualifier if column is not None and node.name.lower() == column else None
