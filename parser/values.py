"""Shard key values from literals as written, through negation and casts.

Nothing here raises on odd input: a value that cannot be converted keeps the form it had
(a cast of 'abc' to bigint stays the text 'abc'; the server will reject the query anyway),
so the *status* of a query's keys never depends on its literal values. Non-integer numbers
are Decimals while casts apply, and become their text in `public_value` (keys are int, str
or UUID, as sharding.KeyValue). Bind parameters are not read here: the router reads them with
sharding.coerce_param, knowing the key's type.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from uuid import UUID

from parser.classification import KeyValue

# A value while a literal is read: Decimal for non-integer numbers until casts are applied.
RawValue = KeyValue | Decimal

# Cast targets that matter for keys, by the names sqlglot's DataType.Type gives them.
INT_TYPES = frozenset({"BIGINT", "INT", "SMALLINT", "TINYINT", "MEDIUMINT", "UBIGINT"})
TEXT_TYPES = frozenset({"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR", "NAME"})

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_E_ESCAPE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))",
    re.DOTALL,
)
_U_ESCAPE = re.compile(r"\\(?:([0-9A-Fa-f]{4})|\+([0-9A-Fa-f]{6})|(\\))")
_C_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def cast_name(type_name: str) -> str:
    """The key-relevant name of a cast target: "int", "text", "uuid" or the type, lowered."""
    if type_name in INT_TYPES:
        return "int"
    if type_name in TEXT_TYPES:
        return "text"
    return type_name.lower()


def literal_value(raw: str) -> RawValue:
    """The value of a literal as the lexer cut it (quotes, prefixes and escapes included)."""
    first = raw[0]
    if first.isdigit() or first == ".":
        return _number(raw)
    if first == "'":
        return raw[1:-1].replace("''", "'")
    if first == "$":
        tag_end = raw.index("$", 1) + 1
        return raw[tag_end:-tag_end]
    prefix = first.upper()
    if prefix == "E":
        return _E_ESCAPE.sub(_e_escape, raw[2:-1].replace("''", "'"))
    if prefix == "U":
        return _U_ESCAPE.sub(_u_escape, raw[3:-1].replace("''", "'"))
    return raw[2:-1].replace("''", "'")  # N'', B'' and X'' (bit strings stay text)


def _number(raw: str) -> RawValue:
    try:
        if raw[:2].lower() in ("0x", "0o", "0b"):
            return int(raw, 0)
        return int(raw)
    except ValueError:
        pass
    try:
        return Decimal(raw)
    except InvalidOperation:
        return raw


def _e_escape(match: re.Match[str]) -> str:
    """One backslash escape of an E'' string (PostgreSQL docs, 4.1.2.2)."""
    octal, hex2, hex4, hex8, other = match.groups()
    if other is not None:
        return _C_ESCAPES.get(other, other)
    code = int(octal, 8) if octal else int(hex2 or hex4 or hex8, 16)
    if 0 < code <= 0x10FFFF:
        return chr(code)
    return match.group()  # \000 or out of range: the server rejects the string


def _u_escape(match: re.Match[str]) -> str:
    """One escape of a U&'' string with the default escape character."""
    hex4, hex6, backslash = match.groups()
    if backslash:
        return "\\"
    code = int(hex4 or hex6, 16)
    return chr(code) if code <= 0x10FFFF else match.group()


def negate_value(value: RawValue) -> RawValue:
    """Unary minus, as in `id = -5`."""
    if isinstance(value, int | Decimal):
        return -value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return -int(value)
    return value


def cast_value(value: RawValue, cast: str) -> RawValue:
    """Apply a cast (`'5'::bigint`, `5::text`, `'...'::uuid`) where it converts cleanly."""
    if cast == "int":
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            return int(value)
        if isinstance(value, Decimal) and value.is_finite():
            # numeric -> integer rounds half away from zero (numeric_int8 in numeric.c)
            return int(value.to_integral_value(rounding=ROUND_HALF_UP))
    elif cast == "text" and isinstance(value, int | Decimal):
        return str(value)
    elif cast == "uuid" and isinstance(value, str):
        try:
            return UUID(value.strip())
        except ValueError:
            pass
    return value


def public_value(value: RawValue) -> KeyValue:
    """A key as the router gets it: a non-integer number becomes its text."""
    return str(value) if isinstance(value, Decimal) else value
