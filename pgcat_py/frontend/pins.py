"""Pins: session state that keeps a transaction-mode client on its server connection.

A session advisory lock, LISTEN, a cursor (it may be WITH HOLD), a temporary table or an
SQL-level PREPARE lives in the server session, not in the transaction: moved to another
server it would be gone, and left on this one it would reach the next client. So from the
end of the transaction that made it, the client keeps its server (DESIGN §7), and the
server is reset with DISCARD ALL when the client leaves. A pin is released when the client
undoes what made it: pg_advisory_unlock_all(), UNLISTEN *, CLOSE ALL, DISCARD TEMP,
DEALLOCATE ALL, or DISCARD ALL for all of them (asyncpg's pool runs most of these on every
release), and the server goes back to the pool at the next transaction's end.
"""

from __future__ import annotations

from typing import Final

from ..protocol.framing import (
    TAG_CLOSE_ALL,
    TAG_CURSOR,
    TAG_DEALLOCATED,
    TAG_DISCARD_ALL,
    TAG_DISCARD_TEMP,
    TAG_LISTEN,
    TAG_PREPARE,
    TAG_UNLISTEN,
)

PIN_LOCK: Final = 1
PIN_LISTEN: Final = 2
PIN_CURSOR: Final = 4
PIN_TEMP: Final = 8
PIN_PREPARE: Final = 16
_NAMES: Final = ((PIN_LOCK, "advisory_lock"), (PIN_LISTEN, "listen"), (PIN_CURSOR, "cursor"),
          (PIN_TEMP, "temp_table"), (PIN_PREPARE, "sql_prepare"))


def pin_names(pins: int) -> list[str]:
    """What holds a client on its server, for SHOW CLIENTS."""
    return [name for bit, name in _NAMES if pins & bit]


def updated_pins(pins: int, tags: int, session_lock: bool, last_sql: bytes,
                 creates_temp: bool) -> int:
    """The pins after a transaction that ended with the session ``tags`` (CommandComplete
    bits), given whether it called a session lock function, whether its SQL may have made
    a temporary relation, and the client's last chunk.
    Releases are read before new pins: in one Query both, the pin stays (conservative)."""
    if pins:
        pins = _released(pins, tags, last_sql)
    if session_lock:
        pins |= PIN_LOCK
    if tags & TAG_LISTEN:
        pins |= PIN_LISTEN
    if tags & TAG_CURSOR:
        pins |= PIN_CURSOR
    if tags & TAG_PREPARE:
        pins |= PIN_PREPARE
    if creates_temp:  # whether it completed or not: a pin too many is only slower
        pins |= PIN_TEMP
    return pins


def _released(pins: int, tags: int, last_sql: bytes) -> int:
    if tags & TAG_DISCARD_ALL:
        return 0
    if tags & TAG_UNLISTEN and b"*" in last_sql:
        pins &= ~PIN_LISTEN
    if tags & TAG_CLOSE_ALL:
        pins &= ~PIN_CURSOR
    if tags & TAG_DISCARD_TEMP:
        pins &= ~PIN_TEMP
    if tags & TAG_DEALLOCATED:
        pins &= ~PIN_PREPARE
    if pins & PIN_LOCK and b"advisory_unlock_all" in last_sql.lower():
        pins &= ~PIN_LOCK
    return pins
