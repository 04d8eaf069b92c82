"""Expressions over aggregates (sum(a) / count(*), round(avg(x), 2), grp || count(*)),
evaluated by PostgreSQL after the merge.

The proxy merges the aggregates and keys an expression uses, then asks one of the shard
servers it already holds (after its part of the query, with the client's settings) for

    SELECT <expression>, ... FROM (VALUES (0, '...'::numeric, ...), ...) AS v(o, c4, c5)
    ORDER BY v.o

so the result has PostgreSQL's own types, rounding, formatting and errors (a division by
zero is 22012, as it would be on one server). One round trip for every group.
"""

from __future__ import annotations

from parser.merge_plan import Combine, MergePlan

from ..protocol import backend as be
from ..protocol import frontend as fe
from . import datetimes
from .shard import ShardStream, row_values
from .values import (
    BOOL,
    BPCHAR,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    NAME,
    NUMERIC,
    OID,
    TEXT,
    VARCHAR,
    unsupported,
)

Row = list[bytes | None]
ROW_DESCRIPTION = ord("T")
TYPE_NAMES = {
    BOOL: "bool", INT2: "int2", INT4: "int4", INT8: "int8", OID: "oid", TEXT: "text",
    NAME: "name", BPCHAR: "bpchar", VARCHAR: "varchar", FLOAT4: "float4", FLOAT8: "float8",
    NUMERIC: "numeric", datetimes.DATE: "date", datetimes.TIME: "time",
    datetimes.TIMESTAMP: "timestamp", datetimes.TIMESTAMPTZ: "timestamptz",
    datetimes.UUID: "uuid",
}


def has_expressions(plan: MergePlan) -> bool:
    return any(c.combine is Combine.EXPRESSION for c in plan.columns)


async def finalize(stream: ShardStream, plan: MergePlan, rows: list[Row],
                   types: list[int], shortest_floats: bool) -> None:
    """Fill each expression column of ``rows`` (merged rows, in place) and its type in
    ``types``. Floats travel as text: exact only with extra_float_digits > 0."""
    expressions = [(i, c) for i, c in enumerate(plan.columns)
                   if c.combine is Combine.EXPRESSION]
    used = sorted({n for _, c in expressions for n in c.uses})
    if not shortest_floats and any(types[n] in (FLOAT4, FLOAT8) for n in used):
        raise unsupported("an expression over a float aggregate with extra_float_digits <= 0")
    if not rows or not expressions:
        return
    encoding = stream.server.reported.get("client_encoding", ("", "UTF8"))[1].upper()
    if encoding not in ("UTF8", "UNICODE"):  # the values travel in the SQL text
        raise unsupported(f"an expression over aggregates with client_encoding {encoding}")
    names = ["o", *(f"c{n}" for n in used)]
    values = ",".join(
        "(" + ",".join([str(k), *(_literal(row[n], types[n]) for n in used)]) + ")"
        for k, row in enumerate(rows))
    sql = (f"SELECT {', '.join(c.expression for _, c in expressions)} FROM (VALUES {values})"
           f" AS v({', '.join(names)}) ORDER BY v.o")
    stream.send([fe.Query(sql).encode()])
    for index, _ in expressions:  # unknown until PostgreSQL describes the result
        types[index] = 0
    if await stream.read_until(frozenset({ROW_DESCRIPTION})) != ROW_DESCRIPTION:
        raise stream.client_error()  # PostgreSQL's error (read to its ReadyForQuery)
    description = be.decode_backend(ROW_DESCRIPTION, stream.replies.pop()[1])
    assert isinstance(description, be.RowDescription)
    for (index, _), field in zip(expressions, description.fields, strict=True):
        types[index] = field.type_oid  # the expression's type: for ORDER BY, HAVING
    results: list[Row] = []
    while (payload := await stream.next_row()) is not None:
        results.append(row_values(payload))
    for row, result in zip(rows, results, strict=True):
        for (index, _), value in zip(expressions, result, strict=True):
            row[index] = value


def _literal(data: bytes | None, type_oid: int) -> str:
    name = TYPE_NAMES.get(type_oid)
    if name is None:
        raise unsupported(f"an expression over a value of type {type_oid}")
    if data is None:
        return f"NULL::{name}"
    text = data.decode().replace("\\", "\\\\").replace("'", "''")
    return f"E'{text}'::{name}"
