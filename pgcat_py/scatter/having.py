"""HAVING of a cross-shard GROUP BY, evaluated by the proxy on merged rows (SQL's
three-valued logic: NULL operands make NULL, and only TRUE keeps a group)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from parser.merge_plan import ColumnRef, Compare, Condition, Constant, IsNull, Logic

from .values import BOOL, FLOATS, INTEGERS, NUMERIC, TEXTS, unsupported

Row = list[bytes | None]


def evaluate(condition: Condition, row: Row, types: Sequence[int]) -> bool | None:
    """SQL's three-valued truth of ``condition`` on a merged row."""
    if isinstance(condition, Logic):
        values = [evaluate(c, row, types) for c in condition.items]
        if condition.op == "not":
            return None if values[0] is None else not values[0]
        if condition.op == "and":
            return False if False in values else (None if None in values else True)
        return True if True in values else (None if None in values else False)
    if isinstance(condition, IsNull):
        is_null = _operand(condition.operand, row, types) is None
        return is_null != condition.negated
    return _compare(condition, row, types)


def _compare(condition: Compare, row: Row, types: Sequence[int]) -> bool | None:
    left = _operand(condition.left, row, types)
    right = _operand(condition.right, row, types)
    if left is None or right is None:
        return None
    if (isinstance(left, str) or isinstance(right, str)) and condition.op not in ("=", "<>"):
        raise unsupported("an ordering comparison of text in HAVING")
    op = condition.op
    if op == "=":
        return bool(left == right)
    if op == "<>":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _operand(operand: ColumnRef | Constant, row: Row, types: Sequence[int]) -> Any:
    if isinstance(operand, Constant):
        return operand.value
    data = row[operand.column]
    if data is None:
        return None
    type_oid = types[operand.column]
    if type_oid in TEXTS:
        return data.decode()
    if type_oid == BOOL:
        return data == b"t"
    if type_oid in INTEGERS:
        return int(data)
    if type_oid == NUMERIC:
        return Decimal(data.decode())
    if type_oid in FLOATS:
        return float(data)
    raise unsupported(f"HAVING on a column of type {type_oid}")
