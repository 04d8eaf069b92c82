"""What pins a transaction-mode client to its server, and what releases it."""

from __future__ import annotations

from pgcat_py.frontend.pins import PIN_LISTEN, PIN_LOCK, PIN_TEMP, updated_pins
from pgcat_py.protocol.framing import (
    TAG_CREATED,
    TAG_DEALLOCATED,
    TAG_DISCARD_ALL,
    TAG_LISTEN,
    TAG_SET,
    TAG_UNLISTEN,
)


def test_settings_do_not_pin() -> None:
    assert updated_pins(0, TAG_SET, False, b"SET x = 1", False) == 0


def test_only_temporary_tables_pin() -> None:
    assert updated_pins(0, TAG_CREATED, False, b"CREATE TABLE t (x int)", False) == 0
    assert updated_pins(0, TAG_CREATED, False, b"COMMIT", True) == PIN_TEMP


def test_unlisten_star_releases_listen_but_not_a_lock() -> None:
    pins = updated_pins(0, TAG_LISTEN, True, b"LISTEN a; SELECT pg_advisory_lock(1)", False)
    assert pins == PIN_LISTEN | PIN_LOCK
    assert updated_pins(pins, TAG_UNLISTEN, False, b"UNLISTEN *", False) == PIN_LOCK
    assert updated_pins(pins, TAG_UNLISTEN, False, b"UNLISTEN a", False) == pins  # maybe others


def test_asyncpg_reset_releases_everything_it_undoes() -> None:
    reset = b"SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;"
    pins = PIN_LISTEN | PIN_LOCK
    assert updated_pins(pins, TAG_UNLISTEN | TAG_SET, False, reset, False) == 0


def test_discard_all_releases_every_pin() -> None:
    assert updated_pins(31, TAG_DISCARD_ALL | TAG_DEALLOCATED, False, b"DISCARD ALL", False) == 0
