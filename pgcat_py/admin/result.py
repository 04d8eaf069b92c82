"""Building a result set (RowDescription, DataRows, CommandComplete) for the admin console."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..protocol import backend as be

TEXT_OID = 25
INT8_OID = 20
NUMERIC_OID = 1700


def result_set(columns: Sequence[tuple[str, int]], rows: Iterable[Sequence[object]],
               tag: str | None = None) -> bytes:
    """Columns as (name, type oid); values are sent in text format, None as NULL."""
    out = [be.RowDescription(tuple(be.Field(name, oid) for name, oid in columns)).encode()]
    count = 0
    for row in rows:
        values = tuple(None if v is None else _text(v).encode() for v in row)
        out.append(be.DataRow(values).encode())
        count += 1
    out.append(be.CommandComplete(tag or f"SELECT {count}").encode())
    return b"".join(out)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)
