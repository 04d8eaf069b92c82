"""The clauses of a SELECT as the cross-shard planner reads them: what no merge makes exact
(refused, naming the construct), ORDER BY and GROUP BY items and the select items they name
(by position, output name or expression), sort keys, LIMIT and OFFSET."""

from __future__ import annotations

from sqlglot import exp

from parser.merge_plan import MergeUnsupported, SortKey


def refuse_unmergeable(select: exp.Select) -> None:
    """0A000 for what no merge makes exact, naming the construct."""
    checks: list[tuple[type[exp.Expr] | tuple[type[exp.Expr], ...], str]] = [
        (exp.Window, "a window function"), (exp.With, "WITH (a common table expression)"),
        ((exp.Subquery, exp.SetOperation), "a subquery"),
        (exp.Lock, "FOR UPDATE / FOR SHARE"), (exp.Into, "SELECT INTO"),
        ((exp.Rollup, exp.Cube, exp.GroupingSets), "ROLLUP / CUBE / GROUPING SETS"),
    ]
    for kind, what in checks:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if select.find(*kinds) is not None:
            raise MergeUnsupported(f"{what} in a cross-shard query")
    if any(isinstance(e, exp.Select) for e in select.find_all(exp.Select) if e is not select):
        raise MergeUnsupported("a subquery in a cross-shard query")
    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on") is not None:
        raise MergeUnsupported("DISTINCT ON in a cross-shard query")


def order_items(select: exp.Select) -> list[exp.Ordered]:
    order = select.args.get("order")
    return list(order.expressions) if order is not None else []


def group_items(select: exp.Select) -> list[exp.Expr]:
    group = select.args.get("group")
    return list(group.expressions) if group is not None else []


def unwrap_alias(node: exp.Expr) -> exp.Expr:
    return node.this if isinstance(node, exp.Alias) else node


def is_position(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit()


def output_index(items: list[exp.Expr], node: exp.Expr) -> int | None:
    """The select item ``node`` names (ORDER BY / GROUP BY): a position, an output name,
    or the same expression; None when it is none of them."""
    if is_position(node):
        position = int(node.this)
        if not 1 <= position <= len(items):
            raise MergeUnsupported(f"position {position} is not in the select list")
        return position - 1
    if isinstance(node, exp.Column) and not node.table:
        for index, item in enumerate(items):
            if isinstance(item, exp.Alias) and item.alias == node.name:
                return index
    for index, item in enumerate(items):
        if unwrap_alias(item) == node:
            return index
    return None


def resolve_alias(items: list[exp.Expr], node: exp.Expr) -> exp.Expr:
    """The expression an output name in ORDER BY stands for (else ``node`` itself)."""
    if isinstance(node, exp.Column) and not node.table:
        for item in items:
            if isinstance(item, exp.Alias) and item.alias == node.name:
                return unwrap_alias(item)
    return unwrap_alias(node)


def sort_key_of(ordered: exp.Ordered, column: int,
              items: list[exp.Expr] | None = None) -> SortKey:
    target = unwrap_alias(items[column]) if items is not None and column < len(items) \
        else ordered.this
    c_collation = _is_c_collation(ordered.this) or _is_c_collation(target)
    return SortKey(column, bool(ordered.args.get("desc")),
                   bool(ordered.args.get("nulls_first")), c_collation)


def _is_c_collation(node: exp.Expr) -> bool:
    if not isinstance(node, exp.Collate):
        return False
    return node.expression.name.upper() in ("C", "POSIX")


def limits(select: exp.Expr) -> tuple[int | None, int]:
    return _count(select.args.get("limit"), "LIMIT"), _count(select.args.get("offset"),
                                                            "OFFSET") or 0


def _count(clause: exp.Expr | None, what: str) -> int | None:
    if clause is None:
        return None
    if isinstance(clause, exp.Fetch):  # FETCH FIRST n ROWS ONLY is LIMIT n
        options = clause.args.get("limit_options")
        if options is not None and (options.args.get("with_ties") or
                                    options.args.get("percent")):
            raise MergeUnsupported("FETCH FIRST ... WITH TIES / PERCENT across shards")
        count = clause.args.get("count")
        return 1 if count is None else _count(exp.Limit(expression=count), what)
    value = clause.args.get("expression")
    if (isinstance(value, exp.Var) and value.name.upper() == "ALL") or isinstance(value, exp.Null):
        return None
    if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
        return int(value.this)
    raise MergeUnsupported(f"{what} that is not a constant across shards")


def sql_of(tree: exp.Expr) -> str:
    return tree.sql(dialect="postgres")
