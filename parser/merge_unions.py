"""UNION ALL and UNION of plain SELECTs across shards.

Every shard runs the whole set operation on its rows. UNION ALL of plain branches is the
shards' rows together: a plain plan (concatenated, or merged in order when the union has
ORDER BY, with LIMIT pushed down). A UNION whose outermost operation removes duplicates
(`... UNION SELECT ...`) removes them from everything before it too: the shards' rows are
deduplicated again in the proxy, a DISTINCT plan over every column. A branch with
aggregates, GROUP BY, DISTINCT or a LIMIT of its own, an inner UNION under an outer UNION
ALL, INTERSECT and EXCEPT are refused: no merge of the shards' answers gives theirs.
"""

from __future__ import annotations

from sqlglot import exp

from parser.merge_clauses import limits, output_index, refuse_unmergeable, sort_key_of, sql_of
from parser.merge_plan import Combine, MergedColumn, MergePlan, MergeUnsupported


def plan_union(union: exp.Union, sql: str) -> MergePlan:
    """The plan of a UNION [ALL] (``sql``: the client's text, sent as it is when it can)."""
    if union.args.get("with"):
        raise MergeUnsupported("WITH (a common table expression) in a cross-shard query")
    branches = _branches(union, top=True)
    for branch in branches:
        _check_branch(branch)
    items = list(branches[0].expressions)
    order = []
    clause = union.args.get("order")
    for ordered in clause.expressions if clause is not None else ():
        index = output_index(items, ordered.this)
        if index is None:  # PostgreSQL: only output columns may order a UNION
            raise MergeUnsupported("ORDER BY an expression of a UNION across shards")
        order.append(sort_key_of(ordered, index, items))
    limit, offset = limits(union)
    if union.args.get("distinct"):
        if any(item.is_star for item in items):
            raise MergeUnsupported("UNION of * across shards (name the columns)")
        shard = union.copy()
        for clause in ("order", "limit", "offset"):
            shard.set(clause, None)
        columns = tuple(MergedColumn(Combine.KEY, (i,)) for i in range(len(items)))
        return MergePlan(sql_of(shard), grouped=True, columns=columns,
                         group_keys=tuple(range(len(items))), distinct=True,
                         order=tuple(order), limit=limit, offset=offset)
    if any(item.is_star for item in items) and order:
        raise MergeUnsupported("ORDER BY a UNION ALL of * across shards (name the columns)")
    if not offset:
        return MergePlan(sql, grouped=False, order=tuple(order), limit=limit)
    shard = union.copy()
    shard.set("offset", None)
    if limit is not None:
        shard.set("limit", exp.Limit(expression=exp.Literal.number(limit + offset)))
    return MergePlan(sql_of(shard), grouped=False, order=tuple(order), limit=limit,
                     offset=offset)


def _branches(node: exp.Expr, *, top: bool) -> list[exp.Select]:
    if isinstance(node, exp.Select):
        return [node]
    if not isinstance(node, exp.Union):
        raise MergeUnsupported(f"{type(node).__name__.upper()} across shards")
    if node.args.get("distinct") and not top:
        # (A UNION B) UNION ALL C keeps C's duplicates but not A's and B's.
        raise MergeUnsupported("a UNION inside a UNION ALL across shards")
    if not top and (node.args.get("order") or node.args.get("limit")):
        raise MergeUnsupported("ORDER BY / LIMIT inside a UNION across shards")
    inner_top = top and bool(node.args.get("distinct"))
    return _branches(node.this, top=inner_top) + _branches(node.expression, top=inner_top)


def _check_branch(select: exp.Select) -> None:
    from parser.merge_aggregates import is_aggregate

    refuse_unmergeable(select)
    for clause in ("group", "distinct", "order", "limit", "offset", "having"):
        if select.args.get(clause):
            raise MergeUnsupported(f"{clause.upper()} in a branch of a UNION across shards")
    if any(is_aggregate(f) for f in select.find_all(exp.Func)):
        raise MergeUnsupported("an aggregate in a branch of a UNION across shards")
