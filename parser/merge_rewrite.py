"""The planner behind parser.merge_plan: reads a SELECT's sqlglot tree, refuses what cannot
be merged exactly, and rewrites the rest into the statement each shard runs.

Grouped statements: every aggregate of the select list, HAVING and ORDER BY becomes partial
columns (avg(x): sum(x), count(x)); FILTER stays on the partial, which is exact. Group keys
are the GROUP BY expressions, matched to select items by position, output name or
expression, else appended hidden. The shard statement keeps FROM / WHERE / GROUP BY and
loses HAVING, ORDER BY, LIMIT and OFFSET, which the proxy applies after the merge. The
partials themselves are built by merge_aggregates.Partials, this class's base.
"""

from __future__ import annotations

from sqlglot import exp

from parser.merge_aggregates import Partials, is_aggregate, is_partial, name_of, over_aggregates
from parser.merge_clauses import (
    group_items,
    is_position,
    limits,
    order_items,
    output_index,
    refuse_unmergeable,
    resolve_alias,
    sort_key_of,
    sql_of,
    unwrap_alias,
)
from parser.merge_conditions import having_condition
from parser.merge_plan import (
    ColumnRef,
    Combine,
    Compare,
    Condition,
    Constant,
    MergedColumn,
    MergePlan,
    MergeUnsupported,
    SortKey,
)
from parser.merge_unions import plan_union


class Planner(Partials):
    """Plans one statement; see the module docstring. ``plan()`` once per instance."""

    def __init__(self, tree: exp.Expr, sql: str = "") -> None:
        super().__init__()
        self.tree = tree
        self.sql = sql  # the client's text: sent as it is when nothing needs rewriting
        self.group_by: list[exp.Expr] = []

    def plan(self) -> MergePlan:
        select = self.tree
        if isinstance(select, exp.Union):
            return plan_union(select, self.sql)
        if not isinstance(select, exp.Select):
            raise MergeUnsupported(f"a cross-shard {type(select).__name__.upper()} "
                                   "(only a single SELECT is merged)")
        refuse_unmergeable(select)
        if select.args.get("group") or any(is_aggregate(n) for n in select.find_all(exp.Func)):
            return self._grouped(select)
        if select.args.get("distinct"):
            return self._distinct(select)
        return self._plain(select)

    # --- plain: rows pass through -------------------------------------------------------
    def _plain(self, select: exp.Select) -> MergePlan:
        items = list(select.expressions)
        starred = any(item.is_star for item in items)
        hidden: list[exp.Expr] = []
        found: list[tuple[exp.Ordered, int | None]] = []
        for ordered in order_items(select):
            index: int | None = output_index(items, ordered.this)
            if index is None or (starred and not is_position(ordered.this)):
                # Not an output column, or at a position the star makes unknown: hidden.
                hidden.append(resolve_alias(items, ordered.this).copy())
                index = None
            found.append((ordered, index))
        count, number = len(hidden), 0
        order: list[SortKey] = []
        for ordered, index in found:
            if index is None:  # hidden columns count from the end of the shard row
                order.append(sort_key_of(ordered, number - count))
                number += 1
            else:
                order.append(sort_key_of(ordered, index, items))
        limit, offset = limits(select)
        if not hidden and not offset and self.sql:  # the shards run the client's own text
            return MergePlan(self.sql, grouped=False, order=tuple(order), limit=limit,
                             offset=offset)
        shard = select.copy()
        for number, expression in enumerate(hidden):
            shard.append("expressions", exp.alias_(expression, f"__pgcat_order_{number}"))
        shard.set("offset", None)
        if limit is not None:
            shard.set("limit", exp.Limit(expression=exp.Literal.number(limit + offset)))
        return MergePlan(sql_of(shard), grouped=False, order=tuple(order), limit=limit,
                         offset=offset, hidden=count)

    # --- DISTINCT without aggregates: every visible column is a group key ----------------
    def _distinct(self, select: exp.Select) -> MergePlan:
        items = list(select.expressions)
        if any(item.is_star for item in items):
            raise MergeUnsupported("SELECT DISTINCT * across shards (name the columns)")
        for index, item in enumerate(items):
            self._add(MergedColumn(Combine.KEY, (index,)), unwrap_alias(item))
        keys = tuple(range(len(items)))
        order: list[SortKey] = []
        for ordered in order_items(select):
            position = output_index(items, ordered.this)
            if position is None:  # PostgreSQL refuses it (42P10); so do we
                raise MergeUnsupported("for SELECT DISTINCT, ORDER BY expressions must "
                                       "appear in select list")
            order.append(sort_key_of(ordered, position, items))
        return self._finish(select, items, keys, tuple(order), distinct=True, having=None)

    # --- grouped: partial aggregates per group --------------------------------------------
    def _grouped(self, select: exp.Select) -> MergePlan:
        items = list(select.expressions)
        pending: list[tuple[int, exp.Expr]] = []
        for item in items:
            if item.is_star:
                raise MergeUnsupported("* in a cross-shard aggregate query")
            node = unwrap_alias(item)
            if is_partial(node) or not any(is_aggregate(f) for f in node.find_all(exp.Func)):
                self._visible(node)
            else:  # its column now; the aggregates it uses after every item (hidden)
                self.columns.append(MergedColumn(Combine.EXPRESSION, ()))
                pending.append((len(self.columns) - 1, node))
        for index, node in pending:
            self.columns[index] = self._expression(node)
        keys = tuple(self._group_key(g, items) for g in group_items(select))
        # The shard groups by the expressions themselves: its select list is the partials,
        # so a position or an output name would name something else there.
        self.group_by = [resolve_alias(items, items[int(g.this) - 1] if is_position(g)
                                        else g).copy() for g in group_items(select)]
        having_node = select.args.get("having")
        having = self._having(having_node.this) if having_node else None
        order = tuple(self._order_key(o, items) for o in order_items(select))
        return self._finish(select, items, keys, order,
                            distinct=bool(select.args.get("distinct")), having=having)

    def _finish(self, select: exp.Select, items: list[exp.Expr], keys: tuple[int, ...],
                order: tuple[SortKey, ...], *, distinct: bool, having: object) -> MergePlan:
        limit, offset = limits(select)
        if not keys and (self.distinct_partials or self.aggregate_order) and any(
                c.combine is Combine.KEY for c in self.columns):
            # Over no rows the shards return no sub-group, and the proxy has no value for
            # the expression in the one row PostgreSQL returns.
            raise MergeUnsupported("a non-aggregate expression beside a DISTINCT or ordered "
                                   "aggregate without GROUP BY across shards")
        shard = select.copy()
        for clause in ("having", "order", "limit", "offset"):
            shard.set(clause, None)
        if self.aggregates:  # DISTINCT applies to whole groups, after the merge
            shard.set("distinct", None)
            group_by = self.group_by + [value.copy() for value in self.distinct_partials]
            group_by += [key.copy() for key in self.aggregate_order
                         if key not in self.distinct_partials]
            shard.set("group", exp.Group(expressions=group_by) if group_by else None)
        shard.set("expressions", [exp.alias_(p, f"__pgcat_{i}")
                                  for i, p in enumerate(self.partials)])
        return MergePlan(sql_of(shard), grouped=True, columns=tuple(self.columns),
                         group_keys=keys, distinct=distinct, order=order, limit=limit,
                         offset=offset, having=having,  # type: ignore[arg-type]
                         hidden=len(self.columns) - len(items))

    def _visible(self, node: exp.Expr) -> int:
        """A select item of a grouped statement: an aggregate or a key expression. Each
        item gets its own merged column, in select-list order (the client's columns)."""
        if is_partial(node):
            before = len(self.columns)
            index = self._aggregate(node)
            if len(self.columns) == before:
                # The same aggregate as an earlier item: a column of its own, same partials.
                self.columns.append(self.columns[index])
                return len(self.columns) - 1
            return index
        for inner in node.find_all(exp.Func):
            if is_aggregate(inner):
                raise MergeUnsupported(f"an expression over aggregates ({name_of(node)}) "
                                       "across shards")
        return self._add(MergedColumn(Combine.KEY, (len(self.partials),)), node)

    def _group_key(self, node: exp.Expr, items: list[exp.Expr]) -> int:
        if isinstance(node, exp.Column) and not node.table and any(
                isinstance(i, exp.Alias) and i.alias == node.name and i.this != node
                for i in items):
            # PostgreSQL takes an input column of that name first, if the table has one:
            # without the schema the proxy cannot tell which is meant.
            raise MergeUnsupported(f"GROUP BY {node.name}, an output column name (use the "
                                   "expression or its position) across shards")
        index = output_index(items, node)
        return index if index is not None else self._key(node)

    def _operand(self, node: exp.Expr) -> int:
        """A column HAVING or ORDER BY refers to."""
        return self._aggregate(node) if is_partial(node) else self._key(node)

    def _order_key(self, ordered: exp.Ordered, items: list[exp.Expr]) -> SortKey:
        index = output_index(items, ordered.this)
        if index is None:
            node = resolve_alias(items, ordered.this)
            index = self._hidden_expression(node) if over_aggregates(node) else \
                self._operand(node)
        return sort_key_of(ordered, index, items)

    def _having(self, node: exp.Expr) -> Condition:
        """HAVING as the proxy evaluates it; else (arithmetic over aggregates, functions,
        IN lists) a hidden boolean expression PostgreSQL evaluates after the merge, kept
        where TRUE."""
        try:
            return having_condition(node, self._operand)
        except MergeUnsupported:
            pass
        return Compare("=", ColumnRef(self._hidden_expression(node)), Constant(True))

    def _hidden_expression(self, node: exp.Expr) -> int:
        self.columns.append(self._expression(node))
        return len(self.columns) - 1
