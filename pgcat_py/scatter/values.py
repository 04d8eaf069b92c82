"""Column values of merged results: decoding for comparison, and PostgreSQL's text output.

Only the types whose order and arithmetic the proxy reproduces exactly are decoded:
integers, float4 / float8, numeric, bool, and text-like types (compared byte-wise, which is
PostgreSQL's order only under the "C" collation: the caller asks for it). Anything else in
a sort key, min / max or HAVING is refused with 0A000 naming the type.

Text output follows PostgreSQL: float8out's shortest exact digits with its exponent rule
(src/common/d2s.c: exponent notation when the exponent is < -4 or >= 15), numeric_out's
fixed notation, and numeric_div's result scale (select_div_scale in utils/adt/numeric.c)
for avg.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_DOWN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    localcontext,
)
from typing import Any

from ..protocol.errors import FEATURE_NOT_SUPPORTED, ProxyError
from . import datetimes

# Type OIDs (pg_type.dat).
BOOL, INT8, INT2, INT4, OID = 16, 20, 21, 23, 26
TEXT, NAME, BPCHAR, VARCHAR = 25, 19, 1042, 1043
FLOAT4, FLOAT8, NUMERIC = 700, 701, 1700
INTEGERS = frozenset({INT2, INT4, INT8, OID})
FLOATS = frozenset({FLOAT4, FLOAT8})
TEXTS = frozenset({TEXT, NAME, BPCHAR, VARCHAR})
NUMBERS = INTEGERS | FLOATS | {NUMERIC}

# numeric.c: NUMERIC_MIN_SIG_DIGITS, DEC_DIGITS, NUMERIC_MAX_DISPLAY_SCALE
MIN_SIG_DIGITS, DEC_DIGITS, MAX_DISPLAY_SCALE = 16, 4, 1000
FLOAT8_EXPONENT_LIMIT = 15  # d2s.c: DOUBLE_MAX_PRECISION-ish switch to exponent notation
_NAN = float("nan")
_BINARY_INTS = {INT2: struct.Struct("!h"), INT4: struct.Struct("!i"),
                INT8: struct.Struct("!q"), OID: struct.Struct("!I")}
_BINARY_FLOATS = {FLOAT4: struct.Struct("!f"), FLOAT8: struct.Struct("!d")}

Decoder = Callable[[bytes], Any]
# Sums of numeric are exact in PostgreSQL (up to 131072 digits): never round them.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def plus(a: Any, b: Any) -> Any:
    """a + b, exactly for numeric (Decimal)."""
    return EXACT.add(a, b) if isinstance(a, Decimal) else a + b


def unsupported(what: str) -> ProxyError:
    return ProxyError(f"{what} is not supported in a cross-shard query",
                      sqlstate=FEATURE_NOT_SUPPORTED)


def decoder(type_oid: int, binary: bool, *, c_collation: bool, what: str,
            iso_dates: bool = False) -> Decoder:
    """A function from a column's bytes to a value that orders as PostgreSQL orders it
    (NaN above every number, as PostgreSQL sorts it). ``iso_dates``: DateStyle is ISO,
    so dates and times in text can be read (datetimes.py)."""
    if type_oid in datetimes.TYPES:
        if not (binary or iso_dates or type_oid == datetimes.UUID):
            raise unsupported(f"{what} on a date or time column with a DateStyle other than ISO")
        return datetimes.decoder(type_oid, binary)
    if type_oid in INTEGERS:
        unpack = _BINARY_INTS[type_oid].unpack
        return (lambda b: unpack(b)[0]) if binary else int
    if type_oid in FLOATS:
        unpack_float = _BINARY_FLOATS[type_oid].unpack
        return (lambda b: _float_key(unpack_float(b)[0])) if binary else \
            (lambda b: _float_key(float(b)))
    if type_oid == NUMERIC:
        return (lambda b: _numeric_key(numeric_text(numeric_from_binary(b)))) if binary \
            else _numeric_key
    if type_oid == BOOL:
        return (lambda b: b == b"\x01") if binary else (lambda b: b == b"t")
    if type_oid in TEXTS:
        if not c_collation:
            raise unsupported(f'{what} on a text column without COLLATE "C"')
        return bytes
    raise unsupported(f"{what} on a column of type {type_oid}")


def _float_key(value: float) -> tuple[int, float]:
    return (1, 0.0) if value != value else (0, value)


def _numeric_key(data: bytes) -> tuple[int, Decimal]:
    value = Decimal(data.decode())
    return (1, Decimal(0)) if value.is_nan() else (0, value)


# --- binary (numeric_send / numeric_recv: base-10000 digits) ---------------------------
_NUMERIC_HEAD = struct.Struct("!hhHH")  # ndigits, weight, sign, dscale
NUMERIC_POS, NUMERIC_NEG, NUMERIC_NAN = 0x0000, 0x4000, 0xC000
NUMERIC_PINF, NUMERIC_NINF = 0xD000, 0xF000
NBASE = 10_000


def numeric_from_binary(data: bytes) -> Decimal:
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(data)
    special = {NUMERIC_NAN: "NaN", NUMERIC_PINF: "Infinity", NUMERIC_NINF: "-Infinity"}
    if sign in special:
        return Decimal(special[sign])
    value = 0
    for index in range(ndigits):
        value = value * NBASE + int.from_bytes(data[8 + 2 * index:10 + 2 * index], "big")
    exponent = DEC_DIGITS * (weight - ndigits + 1)
    number = Decimal(-value if sign == NUMERIC_NEG else value).scaleb(exponent)
    return number.quantize(Decimal(1).scaleb(-dscale),
                           context=Context(prec=max(ndigits * DEC_DIGITS + dscale, 1) + 10))


def numeric_to_binary(value: Decimal) -> bytes:
    if value.is_nan():
        return _NUMERIC_HEAD.pack(0, 0, NUMERIC_NAN, 0)
    if value.is_infinite():
        return _NUMERIC_HEAD.pack(0, 0, NUMERIC_PINF if value > 0 else NUMERIC_NINF, 0)
    dscale = numeric_dscale(value)
    whole, _, fraction = format(abs(value), "f").partition(".")
    whole = whole.lstrip("0")
    whole = "0" * (-len(whole) % DEC_DIGITS) + whole
    fraction += "0" * (-len(fraction) % DEC_DIGITS)
    digits = [int((whole + fraction)[i:i + DEC_DIGITS])
              for i in range(0, len(whole) + len(fraction), DEC_DIGITS)]
    weight = len(whole) // DEC_DIGITS - 1
    while digits and digits[0] == 0:
        digits.pop(0)
        weight -= 1
    while digits and digits[-1] == 0:
        digits.pop()
    if not digits:
        weight = 0
    sign = NUMERIC_NEG if value < 0 and digits else NUMERIC_POS
    return _NUMERIC_HEAD.pack(len(digits), weight, sign, dscale) + b"".join(
        d.to_bytes(2, "big") for d in digits)


def has_binary(type_oid: int) -> bool:
    """Can to_binary encode values of this type?"""
    return type_oid in _BINARY_INTS or type_oid in _BINARY_FLOATS or type_oid in TEXTS or \
        type_oid in (NUMERIC, BOOL) or type_oid in datetimes.TYPES


def to_binary(data: bytes, type_oid: int) -> bytes:
    """A merged value (text) in the binary format PostgreSQL sends for ``type_oid``."""
    if type_oid in _BINARY_INTS:
        return _BINARY_INTS[type_oid].pack(int(data))
    if type_oid in _BINARY_FLOATS:
        return _BINARY_FLOATS[type_oid].pack(float(data))
    if type_oid == NUMERIC:
        return numeric_to_binary(Decimal(data.decode()))
    if type_oid == BOOL:
        return b"\x01" if data == b"t" else b"\x00"
    if type_oid in TEXTS:
        return data
    if type_oid in datetimes.TYPES:  # the shards answered in text, DateStyle ISO
        return datetimes.to_binary(data, type_oid)
    raise unsupported(f"a binary result of type {type_oid} from a grouped query")


# --- text output -----------------------------------------------------------------------
def float8_text(value: float) -> bytes:
    """float8out with extra_float_digits >= 1 (the default): shortest exact digits."""
    if value != value:
        return b"NaN"
    if value in (float("inf"), float("-inf")):
        return b"Infinity" if value > 0 else b"-Infinity"
    if value == 0:
        return b"-0" if str(value).startswith("-") else b"0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    assert isinstance(exponent, int)
    point = len(text) + exponent  # position of the decimal point in ``text``
    magnitude = point - 1  # the decimal exponent of the first digit
    minus = "-" if sign else ""
    if magnitude < -4 or magnitude >= FLOAT8_EXPONENT_LIMIT:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if magnitude < 0 else '+'}{abs(magnitude):02d}".encode()
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}".encode()
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}".encode()
    return f"{minus}{text[:point]}.{text[point:]}".encode()


def numeric_text(value: Decimal) -> bytes:
    """numeric_out: fixed notation, the value's own scale."""
    if value.is_nan():
        return b"NaN"
    if value.is_infinite():
        return b"Infinity" if value > 0 else b"-Infinity"
    return format(value, "f").encode()


def numeric_dscale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def numeric_divide(dividend: Decimal, divisor: int) -> Decimal:
    """numeric_div(dividend, divisor) for a positive integer divisor, as PostgreSQL rounds
    it: to select_div_scale's scale, half away from zero."""
    if dividend.is_nan() or dividend.is_infinite():
        return dividend
    scale = _div_scale(dividend, Decimal(divisor))
    with localcontext(Context(prec=scale + max(dividend.adjusted(), 0) + 40,
                              rounding=ROUND_DOWN)):
        quotient = dividend / divisor
    return quotient.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP,
                             context=Context(prec=scale + max(quotient.adjusted(), 0) + 5))


def variance(count: int, total: Decimal, squares: Decimal, *, sample: bool,
             root: bool) -> Decimal | None:
    """numeric_stddev_internal (utils/adt/numeric.c) from the merged count, sum and sum of
    squares: (N * sumX2 - sumX^2) / (N * (N - 1)) (or N * N), to select_div_scale's scale,
    then its square root to that scale. NULL when N <= 1 (sample) or N == 0."""
    if count <= (1 if sample else 0):
        return None
    if total.is_nan() or squares.is_nan():
        return Decimal("NaN")
    scale2 = 2 * numeric_dscale(total)
    with localcontext(EXACT):
        numerator = (count * squares - total * total).quantize(Decimal(1).scaleb(-scale2))
    if numerator <= 0:
        return Decimal(0)
    denominator = count * (count - 1) if sample else count * count
    scale = _div_scale(numerator, Decimal(denominator))
    result = numeric_divide(numerator, denominator)
    if not root:
        return result
    digits = scale + max(result.adjusted(), 0) + 20
    with localcontext(Context(prec=digits, rounding=ROUND_DOWN)):
        root_value = result.sqrt()
    return root_value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP,
                               context=Context(prec=digits))


def _div_scale(var1: Decimal, var2: Decimal) -> int:
    weight1, first1 = _weight(var1)
    weight2, first2 = _weight(var2)
    qweight = weight1 - weight2
    if first1 <= first2:
        qweight -= 1
    scale = MIN_SIG_DIGITS - qweight * DEC_DIGITS
    scale = max(scale, numeric_dscale(var1), numeric_dscale(var2), 0)
    return min(scale, MAX_DISPLAY_SCALE)


def _weight(value: Decimal) -> tuple[int, int]:
    """The weight (in base 10000 digits) and the first base-10000 digit of ``value``."""
    if value == 0:
        return 0, 0
    weight = value.copy_abs().adjusted() // DEC_DIGITS
    first = int(value.copy_abs().scaleb(-DEC_DIGITS * weight))
    return weight, first
