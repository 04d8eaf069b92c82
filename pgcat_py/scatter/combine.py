"""Merging shard rows (sans-IO): sort keys, partial aggregates per group, HAVING.

Rows are lists of column bytes (None for NULL), as DataRow carries them. A grouped plan's
shard rows are folded into one state per group as they arrive, so memory is the number of
groups (capped by cross_shard_max_rows), never the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import reduce, total_ordering
from typing import Any

from parser.merge_plan import (
    Combine,
    MergedColumn,
    MergePlan,
    SortKey,
)

from ..protocol.errors import CONFIGURATION_LIMIT_EXCEEDED, ProxyError
from .having import evaluate
from .values import (
    BOOL,
    FLOATS,
    INT2,
    INT4,
    INT8,
    INTEGERS,
    NUMERIC,
    TEXT,
    decoder,
    float8_text,
    numeric_divide,
    numeric_text,
    plus,
    unsupported,
    variance,
)

Row = list[bytes | None]
FLOAT8 = 701


@total_ordering
class _Desc:
    """A value that sorts backwards (DESC)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    __hash__ = None  # type: ignore[assignment]


def sort_key(keys: Sequence[SortKey], types: Sequence[int], binary: Sequence[bool],
             iso_dates: bool = False) -> Callable[[Row], tuple[Any, ...]]:
    """A key function ordering rows as ORDER BY ``keys`` does (``types`` and ``binary``:
    of the columns the keys name; ``iso_dates``: the session's DateStyle is ISO)."""
    specs = [(k.column, decoder(types[k.column], binary[k.column], c_collation=k.c_collation,
                                what="ORDER BY", iso_dates=iso_dates),
              k.descending, -1 if k.nulls_first else 1)
             for k in keys]

    def key(row: Row) -> tuple[Any, ...]:
        out: list[Any] = []
        for column, decode, descending, null_rank in specs:
            data = row[column]
            if data is None:
                out.append((null_rank,))
            else:
                value = decode(data)
                out.append((0, _Desc(value) if descending else value))
        return tuple(out)

    return key


def output_type(combine: Combine, partial_types: Sequence[int]) -> int:
    """The type of a merged column, from its partials' types."""
    if combine in (Combine.COUNT, Combine.COUNT_DISTINCT):
        return INT8
    if combine in (Combine.AVG, Combine.AVG_DISTINCT):
        return FLOAT8 if partial_types[0] in FLOATS else NUMERIC
    if combine is Combine.SUM_DISTINCT:  # sum's result type for its argument's type
        kind = partial_types[0]
        return INT8 if kind in (INT2, INT4) else NUMERIC if kind in (INT8, NUMERIC) else kind
    if combine in (Combine.BOOL_AND, Combine.BOOL_OR):
        return BOOL
    if combine in _STATISTICS:
        return NUMERIC
    if combine is Combine.EXPRESSION:
        return 0  # known from the client statement's RowDescription (the executor's)
    return partial_types[0]


class GroupMerger:
    """Folds the partial rows of a grouped plan; ``rows()`` gives the merged rows (every
    merged column, hidden ones last) after HAVING and DISTINCT, in no particular order."""

    def __init__(self, plan: MergePlan, shard_types: Sequence[int], max_rows: int,
                 iso_dates: bool = False) -> None:
        self.plan = plan
        self.max_rows = max_rows
        self.iso_dates = iso_dates
        self.types = [output_type(c.combine, [shard_types[s] for s in c.sources])
                      for c in plan.columns]
        self._folds = [_no_fold if c.combine is Combine.EXPRESSION else
                       self._ordered_fold(c, shard_types) if c.order else
                       self._fold_for(c.combine, shard_types[c.sources[
                           1 if c.combine in _STATISTICS else 0]]) for c in plan.columns]
        self.held = 0  # groups and distinct values held, against max_rows
        self._keys = [(plan.columns[k].sources[0], _group_value(shard_types[
            plan.columns[k].sources[0]])) for k in plan.group_keys]
        self.groups: dict[tuple[Any, ...], list[Any]] = {}

    def add(self, row: Row) -> None:
        key = tuple(None if (v := row[s]) is None else norm(v) for s, norm in self._keys)
        state = self.groups.get(key)
        if state is None:
            self._hold()
            state = self.groups[key] = [None] * len(self._folds)
        for index, (column, fold) in enumerate(zip(self.plan.columns, self._folds,
                                                   strict=True)):
            state[index] = fold(state[index], [row[s] for s in column.sources])

    def _hold(self) -> None:
        self.held += 1
        if self.held > self.max_rows:
            raise ProxyError(
                f"a cross-shard query would hold more than {self.max_rows} groups, distinct or "
                "ordered values in the proxy (cross_shard_max_rows)",
                sqlstate=CONFIGURATION_LIMIT_EXCEEDED)

    def _fold_for(self, combine: Combine, partial_type: int
                  ) -> Callable[[Any, list[bytes | None]], Any]:
        if combine in (Combine.COUNT_DISTINCT, Combine.SUM_DISTINCT, Combine.AVG_DISTINCT):
            return self._distinct_fold(partial_type, combine is not Combine.COUNT_DISTINCT)
        if combine in _STATISTICS:
            if partial_type in FLOATS:  # float8's Youngs-Cramer sums round differently
                raise unsupported(f"{combine.value} of a float column")
            return _statistics_fold
        if combine in (Combine.STRING_AGG, Combine.ARRAY_AGG):
            if combine is Combine.STRING_AGG and partial_type != TEXT:
                raise unsupported(f"string_agg of type {partial_type}")
            return _list_fold
        if combine in (Combine.MIN, Combine.MAX):
            decode = decoder(partial_type, False, c_collation=False, what=combine.value,
                             iso_dates=self.iso_dates)
            return _extreme_fold(decode, combine is Combine.MAX)
        return _fold(combine, partial_type)

    def _ordered_fold(self, column: MergedColumn, shard_types: Sequence[int]
                      ) -> Callable[[Any, list[bytes | None]], Any]:
        """An ordered string_agg / array_agg: (sort key, partial) per shard sub-group."""
        if column.combine is Combine.STRING_AGG and shard_types[column.sources[0]] != TEXT:
            raise unsupported(f"string_agg of type {shard_types[column.sources[0]]}")
        order_types = [shard_types[s] for s in column.sources[1:]]
        key = sort_key(column.order, order_types, [False] * len(order_types), self.iso_dates)

        def fold(state: Any, values: list[bytes | None]) -> Any:
            if values[0] is None:
                return state
            entries = [] if state is None else state
            self._hold()
            entries.append((key(values[1:]), values[0]))
            return entries
        return fold

    def _distinct_fold(self, partial_type: int, numeric: bool
                       ) -> Callable[[Any, list[bytes | None]], Any]:
        """The set of distinct non-NULL values (equal values once: 1.0 and 1.00); with
        FILTER, values[1] says whether a row of the value's sub-group passed it."""
        value_of = _number(partial_type) if numeric else _group_value(partial_type)

        def fold(state: Any, values: list[bytes | None]) -> Any:
            seen = set() if state is None else state
            data = values[0]
            if data is not None and (len(values) == 1 or values[1] == b"t"):
                value = value_of(data)
                if value not in seen:
                    self._hold()
                    seen.add(value)
            return seen
        return fold

    def rows(self) -> list[Row]:
        if not self.groups and not self.plan.group_keys:
            # No GROUP BY: one row even over no rows (the shards of a DISTINCT aggregate,
            # grouped by its value, return none then).
            self.groups[()] = [None] * len(self._folds)
        finals = [_ordered(_final(c.combine, t, c.separator)) if c.order else
                  _final(c.combine, t, c.separator)
                  for c, t in zip(self.plan.columns, self.types, strict=True)]
        rows = [[final(value) for final, value in zip(finals, state, strict=True)]
                for state in self.groups.values()]
        return rows

    def having(self, rows: list[Row]) -> list[Row]:
        """HAVING over merged rows (after any expression over aggregates it uses)."""
        having = self.plan.having
        if having is None:
            return rows
        return [row for row in rows if evaluate(having, row, self.types) is True]

    def distinct(self, rows: list[Row]) -> list[Row]:
        """SELECT DISTINCT over merged rows (after any expression over aggregates)."""
        if self.plan.distinct:
            visible = len(self.plan.columns) - self.plan.hidden
            seen: dict[tuple[Any, ...], Row] = {}
            for row in rows:
                seen.setdefault(tuple(_group_value(t)(v) if v is not None else None for v, t
                                      in zip(row[:visible], self.types, strict=False)), row)
            rows = list(seen.values())
        return rows


def _no_fold(state: Any, values: list[bytes | None]) -> Any:
    return None  # Combine.EXPRESSION: computed after the merge (finalize.py)


def _group_value(type_oid: int) -> Callable[[bytes], Any]:
    """Equal values of a group key compare equal (1.0 and 1.00 are one numeric group)."""
    if type_oid == NUMERIC:
        return lambda b: Decimal(b.decode())
    if type_oid in FLOATS:
        return lambda b: ("nan",) if b == b"NaN" else float(b)
    return bytes


def _fold(combine: Combine, partial_type: int) -> Callable[[Any, list[bytes | None]], Any]:
    if combine is Combine.KEY:
        return lambda state, values: values[0] if state is None else state
    if combine is Combine.COUNT:
        return lambda state, values: (state or 0) + int(values[0] or b"0")
    if combine in (Combine.SUM, Combine.AVG):
        return _sum_fold(_number(partial_type), combine is Combine.AVG)
    if combine in (Combine.MIN, Combine.MAX):
        decode = decoder(partial_type, False, c_collation=False, what=combine.value)
        return _extreme_fold(decode, combine is Combine.MAX)
    want = combine is Combine.BOOL_OR
    return lambda state, values: state if values[0] is None else (
        (values[0] == b"t") if state is None else
        (state or values[0] == b"t") if want else (state and values[0] == b"t"))


def _number(partial_type: int) -> Callable[[bytes], Any]:
    if partial_type in INTEGERS:
        return int
    if partial_type == NUMERIC:
        return lambda b: Decimal(b.decode())
    if partial_type == FLOAT8:
        return float
    raise unsupported(f"a sum or average over type {partial_type} (merging sums of real "
                      "would not round as PostgreSQL does)")


def _sum_fold(number: Callable[[bytes], Any], with_count: bool
              ) -> Callable[[Any, list[bytes | None]], Any]:
    def fold(state: Any, values: list[bytes | None]) -> Any:
        data = values[0]
        if with_count:
            total, count = state if state is not None else (None, 0)
            count += int(values[1] or b"0")
            if data is not None:
                total = number(data) if total is None else plus(total, number(data))
            return total, count
        if data is None:
            return state
        return number(data) if state is None else plus(state, number(data))
    return fold


def _extreme_fold(decode: Callable[[bytes], Any], maximum: bool
                  ) -> Callable[[Any, list[bytes | None]], Any]:
    def fold(state: Any, values: list[bytes | None]) -> Any:
        data = values[0]
        if data is None:
            return state
        value = decode(data)
        if state is None or (value > state[0] if maximum else value < state[0]):
            return value, data
        return state
    return fold


_STATISTICS = {Combine.VAR_SAMP: (True, False), Combine.VAR_POP: (False, False),
               Combine.STDDEV_SAMP: (True, True), Combine.STDDEV_POP: (False, True)}


def _statistics_fold(state: Any, values: list[bytes | None]) -> Any:
    """(count, sum, sum of squares) as numerics; partials of no rows (NULL sums) add 0."""
    count, total, squares = state if state is not None else (0, Decimal(0), Decimal(0))
    count += int(values[0] or b"0")
    if values[1] is not None and values[2] is not None:
        total = plus(total, Decimal(values[1].decode()))
        squares = plus(squares, Decimal(values[2].decode()))
    return count, total, squares


def _ordered(final: Callable[[Any], bytes | None]) -> Callable[[Any], bytes | None]:
    """The partials of an ordered aggregate's sub-groups, in its ORDER BY's order."""
    return lambda state: final(None if state is None else
                               [partial for _, partial in sorted(state, key=lambda e: e[0])])


def _list_fold(state: Any, values: list[bytes | None]) -> Any:
    if values[0] is None:
        return state
    if state is None:
        return [values[0]]
    state.append(values[0])
    return state


def _final(combine: Combine, output: int, separator: str) -> Callable[[Any], bytes | None]:
    if combine is Combine.STRING_AGG:
        return lambda state: None if state is None else separator.encode().join(state)
    if combine is Combine.ARRAY_AGG:  # '{1,2}' and '{3}' are '{1,2,3}' (lower bound 1)
        return lambda state: None if state is None else \
            b"{" + b",".join(part[1:-1] for part in state) + b"}"
    if combine is Combine.KEY:
        return lambda state: state
    if combine in (Combine.MIN, Combine.MAX):
        return lambda state: None if state is None else state[1]
    if combine is Combine.AVG:
        return _final_avg
    if combine in (Combine.BOOL_AND, Combine.BOOL_OR):
        return lambda state: None if state is None else (b"t" if state else b"f")
    if combine is Combine.COUNT:
        return lambda state: b"0" if state is None else str(state).encode()
    if combine is Combine.COUNT_DISTINCT:
        return lambda state: str(len(state or ())).encode()
    if combine is Combine.SUM_DISTINCT:
        return lambda state: _number_text(reduce(plus, state)) if state else None
    if combine is Combine.AVG_DISTINCT:
        return lambda state: _final_avg((reduce(plus, state), len(state)) if state else None)
    if combine in _STATISTICS:
        sample, root = _STATISTICS[combine]
        return lambda state: None if state is None else _number_text(
            variance(*state, sample=sample, root=root))
    return _number_text


def _number_text(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, float):
        return float8_text(value)
    if isinstance(value, Decimal):
        return numeric_text(value)
    return str(value).encode()


def _final_avg(state: Any) -> bytes | None:
    if state is None or state[1] == 0 or state[0] is None:
        return None
    total, count = state
    if isinstance(total, float):
        return float8_text(total / count)
    return numeric_text(numeric_divide(Decimal(total), count))
