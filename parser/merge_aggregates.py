"""Partial aggregates of a cross-shard statement: what each shard computes for every
aggregate, and the merged columns the proxy makes of them (parser.merge_rewrite's base).

count, sum, min, max, bool_and / bool_or, string_agg / array_agg are their own partials;
avg is sum and count, stddev / variance count, sum and sum of squares; FILTER stays on the
partial. DISTINCT aggregates and ordered string_agg / array_agg make the shards group finer
(by the DISTINCT argument, by the ORDER BY values). An expression over aggregates becomes
merged columns v.c<N> and SQL that PostgreSQL evaluates after the merge.
"""

from __future__ import annotations

from sqlglot import exp

from parser.merge_clauses import sort_key_of, sql_of
from parser.merge_plan import Combine, MergedColumn, MergeUnsupported

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


def name_of(node: exp.Expr) -> str:
    """How the client wrote a construct, for error messages."""
    text = node.sql(dialect="postgres")
    return text if len(text) <= 60 else text[:57] + "..."



class Partials:
    """The shard select list (partials) and the merged columns built from it."""

    def __init__(self) -> None:
        self.columns: list[MergedColumn] = []
        self.partials: list[exp.Expr] = []  # the shard select list being built
        self.aggregates: dict[exp.Expr, int] = {}  # aggregate expression -> merged column
        self.keys: dict[exp.Expr, int] = {}  # key expression -> merged column
        # DISTINCT aggregates (count(DISTINCT x)): the shards group by x too and return
        # each x once per group; the proxy gathers the distinct values per group.
        # (Several DISTINCT arguments: the shards group by each; the sub-groups multiply.)
        self.distinct_partials: dict[exp.Expr, int] = {}
        # Ordered string_agg / array_agg: the shards group by the ORDER BY values too and
        # aggregate each sub-group unordered; the proxy orders the sub-groups' partials.
        # (Several ORDER BY lists: the shards group by every key; ties stay ties.)
        self.aggregate_order: dict[exp.Expr, int] = {}  # ORDER BY value -> its partial

    def _expression(self, node: exp.Expr) -> MergedColumn:
        """An expression over aggregates: each aggregate (and each column outside them, a
        group key) becomes a merged column v.c<N>; PostgreSQL evaluates the rest after the
        merge, so its types, rounding and errors are PostgreSQL's own."""
        if node.find(exp.Parameter, exp.Placeholder) is not None:
            raise MergeUnsupported(f"a parameter in {name_of(node)} over aggregates across shards")
        template = node.copy()
        aggregates = [n for n in template.find_all(exp.Func, exp.Filter) if is_partial(n)
                      and not any(is_partial(a) for a in ancestors(n, template))]
        uses = [self._aggregate(aggregate) for aggregate in aggregates]
        for aggregate, index in zip(aggregates, uses, strict=True):
            aggregate.replace(exp.column(f"c{index}", table="v"))
        for column in list(template.find_all(exp.Column)):
            if column.table != "v":
                uses.append(self._key(column.copy()))
                column.replace(exp.column(f"c{uses[-1]}", table="v"))
        return MergedColumn(Combine.EXPRESSION, (), expression=sql_of(template),
                            uses=tuple(sorted(set(uses))))

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
        check_call(call)
        start = len(self.partials)
        if isinstance(call.this, exp.Distinct):
            column = self._distinct_aggregate(call, where)
        elif type(call) in _STATISTICS:
            arg = call.this
            square = exp.Mul(this=exp.cast(arg.copy(), "numeric"),
                             expression=exp.cast(arg.copy(), "numeric"))
            self.partials += [filtered(exp.Count(this=arg.copy()), where),
                              filtered(exp.Sum(this=arg.copy()), where),
                              filtered(exp.Sum(this=square), where)]
            column = MergedColumn(_STATISTICS[type(call)], (start, start + 1, start + 2))
        elif isinstance(call, exp.Avg):
            arg = call.this
            self.partials += [filtered(exp.Sum(this=arg.copy()), where),
                              filtered(exp.Count(this=arg.copy()), where)]
            column = MergedColumn(Combine.AVG, (start, start + 1))
        else:
            self.partials.append(node.copy())
            column = MergedColumn(_PARTIALS[type(call)][0], (start,), separator(call))
        self.columns.append(column)
        self.aggregates[node] = len(self.columns) - 1
        return len(self.columns) - 1

    def _ordered_aggregate(self, call: exp.Expr, where: exp.Expr | None) -> MergedColumn:
        order = call.this
        keys = [ordered.this for ordered in order.expressions]
        if isinstance(order.this, exp.Distinct) or any(
                is_aggregate(f) for k in keys for f in k.find_all(exp.Func)):
            raise MergeUnsupported(f"the ordered aggregate {name_of(call)} across shards")
        for key in keys:
            if key not in self.aggregate_order:
                self.partials.append(key.copy())
                self.aggregate_order[key] = len(self.partials) - 1
        inner = call.copy()
        inner.set("this", order.this.copy())
        self.partials.append(filtered(inner, where))
        sort = tuple(sort_key_of(ordered, index) for index, ordered in
                     enumerate(order.expressions))
        return MergedColumn(_PARTIALS[type(call)][0],
                            (len(self.partials) - 1, *(self.aggregate_order[k] for k in keys)),
                            separator(call), sort)

    def _distinct_aggregate(self, call: exp.Expr, where: exp.Expr | None) -> MergedColumn:
        values = call.this.expressions
        if len(values) != 1:
            raise MergeUnsupported(f"the DISTINCT aggregate {name_of(call)} across shards")
        value = values[0]
        if isinstance(call, exp.Min | exp.Max):  # the same as without DISTINCT
            self.partials.append(filtered(type(call)(this=value.copy()), where))
            return MergedColumn(_PARTIALS[type(call)][0], (len(self.partials) - 1,))
        if value not in self.distinct_partials:
            self.partials.append(value.copy())
            self.distinct_partials[value] = len(self.partials) - 1
        kinds: dict[type[exp.Expr], Combine] = {
            exp.Count: Combine.COUNT_DISTINCT, exp.Sum: Combine.SUM_DISTINCT,
            exp.Avg: Combine.AVG_DISTINCT}
        kind = kinds.get(type(call))
        if kind is None:
            raise MergeUnsupported(f"the DISTINCT aggregate {name_of(call)} across shards")
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
            raise MergeUnsupported(f"an expression over aggregates ({name_of(node)}) "
                                   "across shards")
        return self._add(MergedColumn(Combine.KEY, (len(self.partials),)), node)

def check_call(call: exp.Expr) -> None:
    if type(call) not in _PARTIALS and type(call) not in _STATISTICS \
            and not isinstance(call, exp.Avg):
        raise MergeUnsupported(f"the aggregate {name_of(call)} across shards")
    inner = call.this
    if isinstance(inner, exp.Order) or call.find(exp.Order) is not None:
        raise MergeUnsupported(f"an ordered aggregate ({name_of(call)}) across shards")
    if any(is_aggregate(f) for f in call.find_all(exp.Func) if f is not call):
        raise MergeUnsupported(f"a nested aggregate ({name_of(call)})")


def separator(call: exp.Expr) -> str:
    if not isinstance(call, exp.GroupConcat):
        return ""
    separator = call.args.get("separator")
    if not isinstance(separator, exp.Literal) or not separator.is_string:
        raise MergeUnsupported(f"{name_of(call)} with a separator that is not a constant "
                               "across shards")
    return str(separator.this)


def is_partial(node: exp.Expr) -> bool:
    return is_aggregate(node.this if isinstance(node, exp.Filter) else node)


def over_aggregates(node: exp.Expr) -> bool:
    """An expression that contains aggregates but is not one (sum(a) / count(*))."""
    return not is_partial(node) and any(is_aggregate(f) for f in node.find_all(exp.Func))


def ancestors(node: exp.Expr, root: exp.Expr) -> list[exp.Expr]:
    found, parent = [], node.parent
    while parent is not None and parent is not root.parent:
        found.append(parent)
        parent = parent.parent
    return found


def filtered(call: exp.Expr, where: exp.Expr | None) -> exp.Expr:
    return call if where is None else exp.Filter(this=call, expression=where.copy())
