"""Shard key values: from literals as written, through negation and casts, and from Bind.

Nothing here raises on odd input: a value that cannot be converted keeps the form it had
(a cast of 'abc' to bigint stays the text 'abc'; the server will reject the query anyway),
so the *status* of a query's keys never depends on its literal values.
"""

from __future__ import annotations

import re
import struct
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from uuid import UUID

from parser.classification import KeyValue

# Cast targets that matter for keys, by the names sqlglot's DataType.Type gives them.
INT_TYPES = frozenset({"BIGINT", "INT", "SMALLINT", "TINYINT", "MEDIUMINT", "UBIGINT"})
TEXT_TYPES = frozenset({"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR", "NAME"})

# PostgreSQL type OIDs (src/include/catalog/pg_type.dat) a Bind parameter may carry.
_INT2_OID, _INT4_OID, _INT8_OID = 21, 23, 20
_TEXT_OIDS = frozenset({25, 1043, 1042, 19})  # text, varchar, bpchar, name
_UUID_OID = 2950
_BINARY_INTS = {2: ">h", 4: ">i", 8: ">q"}

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


def literal_value(raw: str) -> KeyValue:
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


def _number(raw: str) -> KeyValue:
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


def negate_value(value: KeyValue) -> KeyValue:
    """Unary minus, as in `id = -5`."""
    if isinstance(value, int | Decimal):
        return -value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return -int(value)
    return value


def cast_value(value: KeyValue, cast: str) -> KeyValue:
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


def decode_bind_value(
    raw: bytes | None, *, binary: bool = False, type_oid: int = 0, array: bool = False
) -> KeyValue | tuple[KeyValue, ...] | None:
    """A Bind parameter as a key value; None when it is NULL or cannot be decoded.

    Text format: integers become int, anything else stays text (uuid when the parameter's
    type is uuid). Binary format: int2/int4/int8 by type OID (by length when the type is
    unspecified, as pgcat does), uuid, text types. `array`: a text-format one-dimensional
    array `{1,2,3}`, for `key = ANY($n)`.
    """
    if raw is None:
        return None
    try:
        if binary:
            return None if array else _decode_binary(raw, type_oid)
        text = raw.decode("utf-8")
        if array:
            return _decode_text_array(text, type_oid)
        return _decode_text(text, type_oid)
    except (UnicodeDecodeError, ValueError, struct.error):
        return None


def _decode_text(text: str, type_oid: int) -> KeyValue:
    if type_oid == _UUID_OID:
        return UUID(text)
    if type_oid not in _TEXT_OIDS and _INTEGER.fullmatch(text):
        return int(text)
    return text


def _decode_text_array(text: str, type_oid: int) -> tuple[KeyValue, ...] | None:
    body = text[1:-1]
    if not text.startswith("{") or not text.endswith("}") or any(c in body for c in '"{}\\'):
        return None  # quoted, nested or escaped elements: not worth guessing
    if not body.strip():
        return ()
    return tuple(_decode_text(item.strip(), type_oid) for item in body.split(","))


def _decode_binary(raw: bytes, type_oid: int) -> KeyValue | None:
    if type_oid in (_INT2_OID, _INT4_OID, _INT8_OID) or (type_oid == 0 and len(raw) in (2, 4, 8)):
        fmt = _BINARY_INTS.get(len(raw))
        return None if fmt is None else int(struct.unpack(fmt, raw)[0])
    if type_oid == _UUID_OID and len(raw) == 16:
        return UUID(bytes=raw)
    if type_oid in _TEXT_OIDS:
        return raw.decode("utf-8")
    return None
