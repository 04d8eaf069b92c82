"""Sort keys for date, time, timestamp, timestamptz and uuid values of merged results.

Text values are read in DateStyle ISO only (the session's DateStyle is the shards' too; the
caller refuses others): `YYYY-MM-DD`, `HH:MM:SS[.ffffff]`, a `+HH[:MM[:SS]]` offset for
timestamptz (compared as the instant: two rows on either side of a DST change order by UTC,
not by wall clock), ` BC` years, and infinity / -infinity at the ends. Binary values are
PostgreSQL's integers (days or microseconds since 2000-01-01). uuid compares byte-wise,
which its canonical lower-case text does too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

DATE, TIME, TIMESTAMP, TIMESTAMPTZ, UUID = 1082, 1083, 1114, 1184, 2950
TYPES = frozenset({DATE, TIME, TIMESTAMP, TIMESTAMPTZ, UUID})
_INT32, _INT64 = struct.Struct("!i"), struct.Struct("!q")
_ENDS = {b"infinity": (1,), b"-infinity": (-1,)}
MICROSECONDS = 1_000_000


def decoder(type_oid: int, binary: bool) -> Callable[[bytes], Any]:
    if type_oid == UUID:
        return bytes  # binary: the 16 bytes; text: canonical lower-case hex, same order
    if binary:
        unpack = (_INT32 if type_oid == DATE else _INT64).unpack
        return lambda data: unpack(data)[0]  # PG's infinities are the integer extremes
    if type_oid == DATE:
        return lambda data: _ended(data, _date)
    if type_oid == TIME:
        return _seconds
    if type_oid == TIMESTAMP:
        return lambda data: _ended(data, lambda d: _timestamp(d, zoned=False))
    return lambda data: _ended(data, lambda d: _timestamp(d, zoned=True))


def _ended(data: bytes, parse: Callable[[bytes], Any]) -> tuple[Any, ...]:
    end = _ENDS.get(data)
    return end if end is not None else (0, parse(data))


def _date(data: bytes) -> int:
    """Days from 1970-01-01 (proleptic Gregorian, astronomical years for BC)."""
    text = data.decode()
    bc = text.endswith(" BC")
    year, month, day = (int(part) for part in text.removesuffix(" BC").split("-"))
    return _days(1 - year if bc else year, month, day)


def _days(year: int, month: int, day: int) -> int:
    """days_from_civil (H. Hinnant): any year, no table."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _seconds(data: bytes) -> int:
    """HH:MM:SS[.ffffff] as microseconds."""
    clock, _, fraction = data.decode().partition(".")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return ((hours * 60 + minutes) * 60 + seconds) * MICROSECONDS + micro


def _timestamp(data: bytes, *, zoned: bool) -> int:
    """Microseconds from 1970-01-01 00:00 (UTC for timestamptz)."""
    text = data.decode()
    bc = text.endswith(" BC")
    text = text.removesuffix(" BC")
    day, _, clock = text.partition(" ")
    offset = 0
    if zoned:
        cut = max(clock.rfind("+"), clock.rfind("-"))
        clock, zone = clock[:cut], clock[cut:]
        parts = [int(p) for p in zone[1:].split(":")] + [0, 0]
        offset = (parts[0] * 3600 + parts[1] * 60 + parts[2]) * (-1 if zone[0] == "-" else 1)
    days = _date(f"{day}{' BC' if bc else ''}".encode())
    return (days * 86400 - offset) * MICROSECONDS + _seconds(clock.encode())


# Binary send formats (date_send, timestamp_send, time_send, uuid_send).
POSTGRES_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01
_INT32_ENDS = {(1,): 2**31 - 1, (-1,): -(2**31)}
_INT64_ENDS = {(1,): 2**63 - 1, (-1,): -(2**63)}


def to_binary(data: bytes, type_oid: int) -> bytes:
    """The binary format of an ISO text value of one of TYPES."""
    if type_oid == UUID:
        return bytes.fromhex(data.decode().replace("-", ""))
    if type_oid == TIME:
        return _INT64.pack(_seconds(data))
    key = decoder(type_oid, False)(data)
    if type_oid == DATE:
        value = _INT32_ENDS.get(key)
        return _INT32.pack(key[1] - POSTGRES_EPOCH_DAYS if value is None else value)
    value = _INT64_ENDS.get(key)
    return _INT64.pack(key[1] - POSTGRES_EPOCH_DAYS * 86400 * MICROSECONDS
                       if value is None else value)
