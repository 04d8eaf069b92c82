"""The planner behind parser.merge_plan: reads a SELECT's sqlglot tree, refuses what cannot
be merged exactly, and rewrites the rest into the statement each shard runs.

Grouped statements: every aggregate of the select list, HAVING and ORDER BY becomes partial
columns (avg(x): sum(x), count(x)); FILTER stays on the partial, which is exact. Group keys
are the GROUP BY expressions, matched to select items by position, output name or
expression, else appended hidden. The shard statement keeps FROM / WHERE / GROUP BY and
loses HAVING, ORDER BY, LIMIT and OFFSET, which the proxy applies after the merge.
"""

from __future__ import annotations

from sqlglot import exp

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

_PARTIALS: dict[type[exp.Expr], tuple[Combine, str]] = {
    exp.Count: (Combine.COUNT, "count"),
    exp.Sum: (Combine.SUM, "sum"),
    exp.Min: (Combine.MIN, "min"),
    exp.Max: (Combine.MAX, "max"),
    exp.LogicalAnd: (Combine.BOOL_AND, "bool_and"),
    exp.LogicalOr: (Combine.BOOL_OR, "bool_or"),
    exp.GroupConcat: (Combine.STRING_AGG, "string_agg"),
    exp.ArrayAgg: (Combine.ARRAY_AGG, "array_agg"),
}
# stddev / variance: from count, sum and sum of squares, as numeric_stddev_internal does
_STATISTICS: dict[type[exp.Expr], Combine] = {
    exp.Stddev: Combine.STDDEV_SAMP, exp.StddevSamp: Combine.STDDEV_SAMP,
    exp.StddevPop: Combine.STDDEV_POP, exp.Variance: Combine.VAR_SAMP,
    exp.VariancePop: Combine.VAR_POP,
}
# Built-in aggregates sqlglot parses as plain function calls: they are refused by name
# (a user-defined aggregate cannot be told from a function without the catalog).
_AGGREGATE_NAMES = frozenset({
    "every", "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg",
    "jsonb_object_agg", "xmlagg", "mode", "percentile_cont", "percentile_disc", "corr",
    "covar_pop", "covar_samp", "range_agg", "range_intersect_agg", "any_value",
    "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope",
    "regr_sxx", "regr_sxy", "regr_syy", "rank", "dense_rank", "percent_rank", "cume_dist",
    "grouping",
})


def is_aggregate(node: exp.Expr) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return isinstance(node, exp.Anonymous) and str(node.this).lower() in _AGGREGATE_NAMES


def _name(node: exp.Expr) -> str:
    """How the client wrote a construct, for error messages."""
    text = node.sql(dialect="postgres")
    return text if len(text) <= 60 else text[:57] + "..."


class Planner:
    """Plans one statement; see the module docstring. ``plan()`` once per instance."""

    def __init__(self, tree: exp.Expr, sql: str = "") -> None:
        self.tree = tree
        self.sql = sql  # the client's text: sent as it is when nothing needs rewriting
        self.columns: list[MergedColumn] = []
        self.partials: list[exp.Expr] = []  # the shard select list being built
        self.aggregates: dict[exp.Expr, int] = {}  # aggregate expression -> merged column
        self.keys: dict[exp.Expr, int] = {}  # key expression -> merged column
        self.group_by: list[exp.Expr] = []
        # DISTINCT aggregates (count(DISTINCT x)): the shards group by x too and return
        # each x once per group; the proxy gathers the distinct values per group.
        # (Several DISTINCT arguments: the shards group by each; the sub-groups multiply.)
        self.distinct_partials: dict[exp.Expr, int] = {}
        # Ordered string_agg / array_agg: the shards group by the ORDER BY values too and
        # aggregate each sub-group unordered; the proxy orders the sub-groups' partials.
        # (Several ORDER BY lists: the shards group by every key; ties stay ties.)
        self.aggregate_order: dict[exp.Expr, int] = {}  # ORDER BY value -> its partial

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
            if _is_partial(node) or not any(is_aggregate(f) for f in node.find_all(exp.Func)):
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

    def _expression(self, node: exp.Expr) -> MergedColumn:
        """An expression over aggregates: each aggregate (and each column outside them, a
        group key) becomes a merged column v.c<N>; PostgreSQL evaluates the rest after the
        merge, so its types, rounding and errors are PostgreSQL's own."""
        if node.find(exp.Parameter, exp.Placeholder) is not None:
            raise MergeUnsupported(f"a parameter in {_name(node)} over aggregates across shards")
        template = node.copy()
        aggregates = [n for n in template.find_all(exp.Func, exp.Filter) if _is_partial(n)
                      and not any(_is_partial(a) for a in _ancestors(n, template))]
        uses = [self._aggregate(aggregate) for aggregate in aggregates]
        for aggregate, index in zip(aggregates, uses, strict=True):
            aggregate.replace(exp.column(f"c{index}", table="v"))
        for column in list(template.find_all(exp.Column)):
            if column.table != "v":
                uses.append(self._key(column.copy()))
                column.replace(exp.column(f"c{uses[-1]}", table="v"))
        return MergedColumn(Combine.EXPRESSION, (), expression=sql_of(template),
                            uses=tuple(sorted(set(uses))))

    def _visible(self, node: exp.Expr) -> int:
        """A select item of a grouped statement: an aggregate or a key expression. Each
        item gets its own merged column, in select-list order (the client's columns)."""
        if _is_partial(node):
            before = len(self.columns)
            index = self._aggregate(node)
            if len(self.columns) == before:
                # The same aggregate as an earlier item: a column of its own, same partials.
                self.columns.append(self.columns[index])
                return len(self.columns) - 1
            return index
        for inner in node.find_all(exp.Func):
            if is_aggregate(inner):
                raise MergeUnsupported(f"an expression over aggregates ({_name(node)}) "
                                       "across shards")
        return self._add(MergedColumn(Combine.KEY, (len(self.partials),)), node)

    def _aggregate(self, node: exp.Expr) -> int:
        found = self.aggregates.get(node)
        if found is not None:
            return found
        call = node.this if isinstance(node, exp.Filter) else node
        where = node.args.get("expression") if isinstance(node, exp.Filter) else None
        if isinstance(call, exp.GroupConcat | exp.ArrayAgg) and isinstance(call.this, exp.Order):
            column = self._ordered_aggregate(call, where)
            self.columns.append(column)
            self.aggregates[node] = len(self.columns) - 1
            return len(self.columns) - 1
        _check_call(call)
        start = len(self.partials)
        if isinstance(call.this, exp.Distinct):
            column = self._distinct_aggregate(call, where)
        elif type(call) in _STATISTICS:
            arg = call.this
            square = exp.Mul(this=exp.cast(arg.copy(), "numeric"),
                             expression=exp.cast(arg.copy(), "numeric"))
            self.partials += [_filtered(exp.Count(this=arg.copy()), where),
                              _filtered(exp.Sum(this=arg.copy()), where),
                              _filtered(exp.Sum(this=square), where)]
            column = MergedColumn(_STATISTICS[type(call)], (start, start + 1, start + 2))
        elif isinstance(call, exp.Avg):
            arg = call.this
            self.partials += [_filtered(exp.Sum(this=arg.copy()), where),
                              _filtered(exp.Count(this=arg.copy()), where)]
            column = MergedColumn(Combine.AVG, (start, start + 1))
        else:
            self.partials.append(node.copy())
            column = MergedColumn(_PARTIALS[type(call)][0], (start,), _separator(call))
        self.columns.append(column)
        self.aggregates[node] = len(self.columns) - 1
        return len(self.columns) - 1

    def _ordered_aggregate(self, call: exp.Expr, where: exp.Expr | None) -> MergedColumn:
        order = call.this
        keys = [ordered.this for ordered in order.expressions]
        if isinstance(order.this, exp.Distinct) or any(
                is_aggregate(f) for k in keys for f in k.find_all(exp.Func)):
            raise MergeUnsupported(f"the ordered aggregate {_name(call)} across shards")
        for key in keys:
            if key not in self.aggregate_order:
                self.partials.append(key.copy())
                self.aggregate_order[key] = len(self.partials) - 1
        inner = call.copy()
        inner.set("this", order.this.copy())
        self.partials.append(_filtered(inner, where))
        sort = tuple(sort_key_of(ordered, index) for index, ordered in
                     enumerate(order.expressions))
        return MergedColumn(_PARTIALS[type(call)][0],
                            (len(self.partials) - 1, *(self.aggregate_order[k] for k in keys)),
                            _separator(call), sort)

    def _distinct_aggregate(self, call: exp.Expr, where: exp.Expr | None) -> MergedColumn:
        values = call.this.expressions
        if len(values) != 1:
            raise MergeUnsupported(f"the DISTINCT aggregate {_name(call)} across shards")
        value = values[0]
        if isinstance(call, exp.Min | exp.Max):  # the same as without DISTINCT
            self.partials.append(_filtered(type(call)(this=value.copy()), where))
            return MergedColumn(_PARTIALS[type(call)][0], (len(self.partials) - 1,))
        if value not in self.distinct_partials:
            self.partials.append(value.copy())
            self.distinct_partials[value] = len(self.partials) - 1
        kinds: dict[type[exp.Expr], Combine] = {
            exp.Count: Combine.COUNT_DISTINCT, exp.Sum: Combine.SUM_DISTINCT,
            exp.Avg: Combine.AVG_DISTINCT}
        kind = kinds.get(type(call))
        if kind is None:
            raise MergeUnsupported(f"the DISTINCT aggregate {_name(call)} across shards")
        if where is None:
            return MergedColumn(kind, (self.distinct_partials[value],))
        # FILTER: a value counts if a row of its sub-group passed (NULL is not TRUE).
        self.partials.append(exp.LogicalOr(this=where.this.copy()))
        return MergedColumn(kind, (self.distinct_partials[value], len(self.partials) - 1))

    def _add(self, column: MergedColumn, node: exp.Expr) -> int:
        self.partials.append(node.copy())
        self.columns.append(column)
        self.keys.setdefault(node, len(self.columns) - 1)
        return len(self.columns) - 1

    def _key(self, node: exp.Expr) -> int:
        """A key expression: an existing merged column, or a new hidden one."""
        found = self.keys.get(node)
        if found is not None:
            return found
        if any(is_aggregate(f) for f in node.find_all(exp.Func)):
            raise MergeUnsupported(f"an expression over aggregates ({_name(node)}) "
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
        return self._aggregate(node) if _is_partial(node) else self._key(node)

    def _order_key(self, ordered: exp.Ordered, items: list[exp.Expr]) -> SortKey:
        index = output_index(items, ordered.this)
        if index is None:
            node = resolve_alias(items, ordered.this)
            index = self._hidden_expression(node) if _over_aggregates(node) else \
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


def _check_call(call: exp.Expr) -> None:
    if type(call) not in _PARTIALS and type(call) not in _STATISTICS \
            and not isinstance(call, exp.Avg):
        raise MergeUnsupported(f"the aggregate {_name(call)} across shards")
    inner = call.this
    if isinstance(inner, exp.Order) or call.find(exp.Order) is not None:
        raise MergeUnsupported(f"an ordered aggregate ({_name(call)}) across shards")
    if any(is_aggregate(f) for f in call.find_all(exp.Func) if f is not call):
        raise MergeUnsupported(f"a nested aggregate ({_name(call)})")


def _separator(call: exp.Expr) -> str:
    if not isinstance(call, exp.GroupConcat):
        return ""
    separator = call.args.get("separator")
    if not isinstance(separator, exp.Literal) or not separator.is_string:
        raise MergeUnsupported(f"{_name(call)} with a separator that is not a constant "
                               "across shards")
    return str(separator.this)


def _is_partial(node: exp.Expr) -> bool:
    return is_aggregate(node.this if isinstance(node, exp.Filter) else node)


def _over_aggregates(node: exp.Expr) -> bool:
    """An expression that contains aggregates but is not one (sum(a) / count(*))."""
    return not _is_partial(node) and any(is_aggregate(f) for f in node.find_all(exp.Func))


def _ancestors(node: exp.Expr, root: exp.Expr) -> list[exp.Expr]:
    found, parent = [], node.parent
    while parent is not None and parent is not root.parent:
        found.append(parent)
        parent = parent.parent
    return found


def _filtered(call: exp.Expr, where: exp.Expr | None) -> exp.Expr:
    return call if where is None else exp.Filter(this=call, expression=where.copy())
