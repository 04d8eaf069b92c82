"""pgcat_py.scatter.datetimes: ISO text dates and times order as PostgreSQL orders them, and
become PostgreSQL's binary formats."""

from __future__ import annotations

import pytest

from pgcat_py.scatter.datetimes import DATE, TIME, TIMESTAMP, TIMESTAMPTZ, UUID, decoder, to_binary


def test_timestamptz_orders_by_instant_across_a_dst_change() -> None:
    key = decoder(TIMESTAMPTZ, False)
    # 02:30 CEST is 00:30 UTC, before 02:15 CET (01:15 UTC), though later on the wall clock
    assert key(b"2024-10-27 02:30:00+02") < key(b"2024-10-27 02:15:00+01")
    assert key(b"1900-01-01 00:00:00+00:19:32") < key(b"1900-01-01 00:00:00+00")


@pytest.mark.parametrize(("kind", "values"), [
    (DATE, [b"-infinity", b"0044-03-15 BC", b"0001-01-01 BC", b"0001-01-01", b"1999-12-31",
            b"2000-01-01", b"10000-01-01", b"infinity"]),
    (TIMESTAMP, [b"2000-01-01 00:00:00", b"2000-01-01 00:00:00.000001",
                 b"2000-01-01 00:00:00.5", b"2000-01-01 00:00:01"]),
    (TIME, [b"00:00:00", b"09:59:59.999999", b"10:00:00", b"24:00:00"]),
    (UUID, [b"00000000-0000-0000-0000-000000000000", b"0a000000-0000-0000-0000-000000000000",
            b"a0000000-0000-0000-0000-000000000000"]),
])
def test_iso_text_values_sort_in_order(kind: int, values: list[bytes]) -> None:
    key = decoder(kind, False)
    assert sorted(values, key=key) == values


def test_binary_formats_are_postgres_epoch_integers() -> None:
    assert to_binary(b"2000-01-02", DATE) == (1).to_bytes(4, "big", signed=True)
    assert to_binary(b"1999-12-31 23:59:59.5", TIMESTAMP) == \
        (-500_000).to_bytes(8, "big", signed=True)
    assert to_binary(b"2000-01-01 01:00:00+01", TIMESTAMPTZ) == bytes(8)
    assert to_binary(b"infinity", DATE) == (2**31 - 1).to_bytes(4, "big", signed=True)
    assert decoder(TIMESTAMP, True)(to_binary(b"2024-02-29 12:00:00", TIMESTAMP)) > 0
