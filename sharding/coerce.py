"""Reading a sharding key value from what the proxy sees, the way PostgreSQL would read it.

Values arrive in three shapes:

* literals the parser found in SQL text, or a ``SET SHARDING KEY`` / comment value: Python
  ``int``, ``str`` or ``uuid.UUID`` (:func:`coerce_literal`);
* text-format Bind parameters: bytes holding the type's text form (:func:`coerce_text`);
* binary-format Bind parameters: int2/int4/int8 as big-endian two's complement (chosen by
  length, like pgcat: a client may declare an int4 parameter for a bigint column), a uuid as
  its 16 bytes, text as its bytes (:func:`coerce_binary`).

Each returns the typed value the hash functions take: ``int`` for the integer types, ``str``
for text, ``uuid.UUID`` for uuid. A value PostgreSQL would refuse raises
:class:`~sharding.errors.ShardKeyError` naming it, with PostgreSQL's message and SQLSTATE.

Text is assumed to be UTF-8 on both sides (client_encoding and server_encoding UTF8, the
default everywhere we deploy): the hash PostgreSQL partitions by is over the server's bytes.
"""

from __future__ import annotations

import re
import uuid

from sharding.errors import (
    CHARACTER_NOT_IN_REPERTOIRE,
    INVALID_BINARY_REPRESENTATION,
    NUMERIC_VALUE_OUT_OF_RANGE,
    ShardKeyError,
    show_value,
)
from sharding.keytype import INTEGER_RANGES, KeyType

KeyValue = int | str | uuid.UUID
Bytes = bytes | bytearray | memoryview

# Bind parameter format codes (protocol docs, "Bind (F)").
FORMAT_TEXT = 0
FORMAT_BINARY = 1

UUID_LEN = 16  # bytes in a uuid (uuid.h UUID_LEN)

# int2in/int4in/int8in (numutils.c pg_strtoint64): C-locale isspace() around an optional
# sign and digits. PostgreSQL 16 added 0x/0o/0b prefixes and "_" between digits; we accept
# them too: a PostgreSQL 15 server rejects such a value whichever shard it is routed to.
_INTEGER_TEXT = re.compile(
    r"[ \t\n\r\f\v]*([+-]?)(?:"
    r"0[xX]((?:_?[0-9a-fA-F])+)|0[oO]((?:_?[0-7])+)|0[bB]((?:_?[01])+)|([0-9](?:_?[0-9])*)"
    r")[ \t\n\r\f\v]*"
)
_INTEGER_BASES = (16, 8, 2, 10)  # the bases of _INTEGER_TEXT's digit groups 2..5
# Digits of 2**63 in each base: a number with more (leading zeros stripped) is out of range.
_MAX_INT8_DIGITS = {16: 16, 8: 22, 2: 64, 10: 19}
_SHORT_DIGITS = 18  # any 18 decimal digits fit an int8: no regex, no size check needed

# uuid_in (uuid.c string_to_uuid): 32 hex digits, a "-" allowed after any group of four
# but the last, the whole optionally in braces. No spaces, no "urn:uuid:" (which Python's
# uuid.UUID would accept).
_UUID_HEX = r"[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7}"
_UUID_TEXT = re.compile(rf"\{{{_UUID_HEX}\}}|{_UUID_HEX}")

# Binary integer parameters by their length: int2, int4, int8.
_BINARY_INTEGER_LENGTHS = (2, 4, 8)


def out_of_range(shown: object, key_type: KeyType) -> ShardKeyError:
    """PostgreSQL's error for an integer outside its type, naming the value as sent."""
    return ShardKeyError(
        f"value {show_value(shown)} is out of range for type {key_type}",
        shown,
        NUMERIC_VALUE_OUT_OF_RANGE,
    )


def check_integer(value: int, key_type: KeyType, shown: object = None) -> int:
    """The value, if it fits the integer type; else :func:`out_of_range`.

    ``shown`` is what the message names (the client's text, as PostgreSQL shows it).
    """
    low, high = INTEGER_RANGES[key_type]
    if low <= value <= high:
        return value
    raise out_of_range(value if shown is None else shown, key_type)


def parse_integer(text: str, key_type: KeyType) -> int:
    """int2in/int4in/int8in: the integer in ``text``, range-checked for ``key_type``."""
    if len(text) <= _SHORT_DIGITS and text.isascii() and text.isdigit():
        return check_integer(int(text), key_type, text)  # the common case, without the regex
    match = _INTEGER_TEXT.fullmatch(text)
    if match is None:
        raise ShardKeyError(f"invalid input syntax for type {key_type}: {show_value(text)}", text)
    sign, *digit_groups = match.groups()
    base, digits = next((b, d) for b, d in zip(_INTEGER_BASES, digit_groups, strict=True) if d)
    # Leading zeros are allowed in any number; past them, a number longer than any int8
    # is out of range without converting it (Python refuses decimal strings > 4300 digits).
    digits = digits.replace("_", "").lstrip("0") or "0"
    if len(digits) > _MAX_INT8_DIGITS[base]:
        raise out_of_range(text, key_type)
    value = int(digits, base)
    return check_integer(-value if sign == "-" else value, key_type, text)


def parse_uuid(text: str) -> uuid.UUID:
    """uuid_in: the uuid in ``text``, in any spelling PostgreSQL accepts."""
    if _UUID_TEXT.fullmatch(text) is None:
        raise ShardKeyError(f"invalid input syntax for type uuid: {show_value(text)}", text)
    return uuid.UUID(hex=text.strip("{}").replace("-", ""))


def text_key_bytes(value: str) -> bytes:
    """The UTF-8 bytes PostgreSQL hashes for a text value; NULs and lone surrogates refused."""
    if "\x00" in value:
        raise ShardKeyError(
            f'invalid byte sequence for encoding "UTF8": 0x00 in {show_value(value)}',
            value,
            CHARACTER_NOT_IN_REPERTOIRE,
        )
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ShardKeyError(
            f"text sharding key {show_value(value)} is not valid Unicode",
            value,
            CHARACTER_NOT_IN_REPERTOIRE,
        ) from None


def _decode_text(data: Bytes, key_type: KeyType) -> str:
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ShardKeyError(
            f'invalid byte sequence for encoding "UTF8" in {key_type} sharding key '
            f"{show_value(data)}: {exc.reason}",
            bytes(data),
            CHARACTER_NOT_IN_REPERTOIRE,
        ) from None
    return text


def coerce_text(data: str | Bytes, key_type: KeyType) -> KeyValue:
    """A value in the type's text form (a literal, a text-format Bind parameter)."""
    if (
        key_type.is_integer
        and isinstance(data, bytes)
        and len(data) <= _SHORT_DIGITS
        and data.isdigit()
    ):
        return check_integer(int(data), key_type, data)  # the common case: ASCII digits
    text = data if isinstance(data, str) else _decode_text(data, key_type)
    if key_type.is_integer:
        return parse_integer(text, key_type)
    if key_type is KeyType.UUID:
        return parse_uuid(text)
    text_key_bytes(text)  # refuses what a UTF8 database would refuse
    return text


def coerce_binary(data: Bytes, key_type: KeyType) -> KeyValue:
    """A binary-format Bind parameter (the type's send/recv form)."""
    if key_type.is_integer:
        if len(data) not in _BINARY_INTEGER_LENGTHS:
            raise ShardKeyError(
                f"binary {key_type} sharding key must be 2, 4 or 8 bytes, "
                f"got {len(data)}: 0x{bytes(data).hex()[:64]}",
                bytes(data),
                INVALID_BINARY_REPRESENTATION,
            )
        return check_integer(int.from_bytes(data, "big", signed=True), key_type)
    if key_type is KeyType.UUID:
        if len(data) != UUID_LEN:
            raise ShardKeyError(
                f"binary uuid sharding key must be {UUID_LEN} bytes, "
                f"got {len(data)}: 0x{bytes(data).hex()[:64]}",
                bytes(data),
                INVALID_BINARY_REPRESENTATION,
            )
        return uuid.UUID(bytes=bytes(data))
    return coerce_text(data, key_type)  # text's binary form is its bytes


def coerce_param(data: Bytes | None, format_code: int, key_type: KeyType) -> KeyValue | None:
    """A Bind parameter in either format; ``None`` (a NULL parameter) stays ``None``."""
    if data is None:
        return None
    if format_code == FORMAT_TEXT:
        return coerce_text(data, key_type)
    if format_code == FORMAT_BINARY:
        return coerce_binary(data, key_type)
    raise ShardKeyError(
        f"unsupported format code {format_code} for {key_type} sharding key {show_value(data)}",
        bytes(data),
        INVALID_BINARY_REPRESENTATION,
    )


def coerce_literal(value: object, key_type: KeyType) -> KeyValue | None:
    """A value the parser or a command found: ``int``, ``str``, ``uuid.UUID`` or ``None``.

    A string is read as the type's text form (``WHERE id = '42'`` is the bigint 42); an
    integer for a text key is its decimal text (what PostgreSQL's assignment cast stores).
    """
    if value is None:
        return None
    if isinstance(value, str | bytes | bytearray | memoryview):
        return coerce_text(value, key_type)
    if isinstance(value, bool):  # before int: True is an int to Python, not to PostgreSQL
        raise ShardKeyError(f"boolean {show_value(value)} is not a {key_type} key", value)
    if isinstance(value, int):
        if key_type.is_integer:
            return check_integer(value, key_type)
        if key_type is KeyType.TEXT:
            return str(value)
    elif isinstance(value, uuid.UUID):
        if key_type is KeyType.UUID:
            return value
        if key_type is KeyType.TEXT:
            return str(value)
    else:
        raise TypeError(f"cannot read a sharding key from {type(value).__name__}")
    raise ShardKeyError(f"{show_value(value)} is not a {key_type} key", value)
