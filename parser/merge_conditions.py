"""HAVING of a cross-shard GROUP BY, as a Condition the proxy evaluates on merged groups.

A shard cannot apply HAVING (it sees part of each group), so the proxy does: comparisons
(=, <>, <, <=, >, >=) between aggregates, group keys and constants, combined with AND, OR,
NOT, and IS [NOT] NULL. The aggregates and keys become merged columns (``operand``, from
the planner); anything else (arithmetic, function calls over aggregates) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from parser.merge_plan import (
    ColumnRef,
    Compare,
    Condition,
    Constant,
    IsNull,
    Logic,
    MergeUnsupported,
    Operand,
)

_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
}


def having_condition(node: exp.Expr, operand: Callable[[exp.Expr], int]) -> Condition:
    """The Condition of a HAVING expression; ``operand`` maps an aggregate or a group key
    expression to its merged column."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And | exp.Or):
        op = "and" if isinstance(node, exp.And) else "or"
        return Logic(op, (having_condition(node.this, operand),
                          having_condition(node.expression, operand)))
    if isinstance(node, exp.Not):
        return Logic("not", (having_condition(node.this, operand),))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return IsNull(_operand(node.this, operand), negated=False)
    comparison = _COMPARISONS.get(type(node))
    if comparison is not None:
        return Compare(comparison, _operand(node.this, operand),
                       _operand(node.expression, operand))
    if isinstance(node, exp.Column | exp.Func | exp.Filter | exp.Boolean):
        return Compare("=", _operand(node, operand), Constant(True))  # a boolean value
    raise MergeUnsupported(f"HAVING {node.sql(dialect='postgres')[:60]} across shards "
                           "(comparisons of aggregates, keys and constants only)")


def _operand(node: exp.Expr, operand: Callable[[exp.Expr], int]) -> Operand:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Null):
        return Constant(None)
    if isinstance(node, exp.Boolean):
        return Constant(bool(node.this))
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        value = _operand(node.this, operand)
        assert isinstance(value, Constant) and not isinstance(value.value, str | bool | None)
        return Constant(-value.value)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return Constant(node.this)
        try:
            number = Decimal(node.this)
        except InvalidOperation:
            raise MergeUnsupported(f"the constant {node.this} in HAVING") from None
        return Constant(int(number) if number == number.to_integral_value() and
                        "." not in node.this and "e" not in node.this.lower() else number)
    if isinstance(node, exp.Column | exp.Func | exp.Filter):
        return ColumnRef(operand(node))
    raise MergeUnsupported(f"the expression {node.sql(dialect='postgres')[:60]} in a "
                           "cross-shard HAVING")
