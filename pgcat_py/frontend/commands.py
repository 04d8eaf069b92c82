"""pgcat's custom commands (SET SHARD TO, SHOW SERVER ROLE, ...), answered by the proxy.

The parser recognises them (parser.custom_commands, pgcat's exact forms); this module runs
them against a client's routing overrides and builds pgcat's answers (reference/pgcat.md
§2.2): a CommandComplete named after the command, or a one-column result for SHOW, or an
ErrorResponse, each followed by ReadyForQuery with the client's transaction status. They are
answered whether or not a transaction was begun (pgcat #492), as long as no server is held.
"""

from __future__ import annotations

import random

from parser import CommandKind, CustomCommand, parse_custom_command

from ..admin.result import TEXT_OID, result_set
from ..protocol import backend as be
from ..protocol.errors import SYSTEM_ERROR
from ..router import ANY, PRIMARY, REPLICA, Overrides, RouteError, Router

_SET_OR_SHOW_THIRD = frozenset(b"TtOo")  # SET / SHOW: the third letter; SELECT has an L


def custom_command(buf: bytes | bytearray, start: int, end: int) -> CustomCommand | None:
    """The custom command the Query text ``buf[start:end]`` (NUL included) is, or None.
    Cheap for ordinary SQL: two byte tests turn away everything but SET and SHOW."""
    if end - start < 4:
        return None
    first = buf[start]
    if first != 0x20 and (first not in (0x53, 0x73) or buf[start + 2] not in _SET_OR_SHOW_THIRD):
        return None
    try:
        sql = buf[start:end - 1].decode()
    except UnicodeDecodeError:
        return None
    return parse_custom_command(sql)


def run_command(command: CustomCommand, overrides: Overrides, router: Router,
                status: bytes = b"I") -> bytes:
    """Apply ``command`` to ``overrides``; the whole answer, ReadyForQuery included."""
    if command.error is not None:
        return _error(command.error, status)
    try:
        body = _apply(command, overrides, router)
    except RouteError as exc:
        return _error(exc.message, status)
    finally:
        overrides.changed()
    return body + be.ReadyForQuery(status.decode()).encode()


def _apply(command: CustomCommand, overrides: Overrides, router: Router) -> bytes:
    kind = command.kind
    if kind is CommandKind.SET_SHARDING_KEY:
        assert isinstance(command.value, int)
        overrides.shard = router.shard_for_key(command.value)
    elif kind is CommandKind.SET_SHARD:
        _set_shard(command.value, overrides, router)
    elif kind is CommandKind.SET_SERVER_ROLE:
        _set_role(str(command.value), overrides)
    elif kind is CommandKind.SET_PRIMARY_READS:
        # pgcat compares the value case-sensitively: 'OFF' is accepted and changes nothing.
        value = command.value
        if value == "default":
            overrides.primary_reads = None
        elif value in ("on", "off"):
            overrides.primary_reads = value == "on"
    elif kind is CommandKind.SHOW_SHARD:
        shown = "unset" if overrides.shard is None else str(overrides.shard)
        return result_set([("shard", TEXT_OID)], [[shown]])
    elif kind is CommandKind.SHOW_SERVER_ROLE:
        return result_set([("server role", TEXT_OID)], [[_shown_role(overrides, router)]])
    else:  # SHOW PRIMARY READS
        reads = overrides.primary_reads
        if reads is None:
            reads = router.settings.primary_reads_enabled
        return result_set([("primary reads", TEXT_OID)], [["on" if reads else "off"]])
    return be.CommandComplete(kind.value).encode()


def _set_shard(value: int | str | None, overrides: Overrides, router: Router) -> None:
    shards = router.settings.shards
    if value == "any":
        overrides.shard = random.randrange(shards)  # chosen once, then sticky (pgcat)
        return
    assert isinstance(value, int)
    if value >= shards:
        current = "None" if overrides.shard is None else f"Some({overrides.shard})"
        raise RouteError(f"shard {value} is not configured {shards}, staying on shard "
                         f"{current} (shard numbers start at 0)", sqlstate=SYSTEM_ERROR)
    overrides.shard = value


def _set_role(role: str, overrides: Overrides) -> None:
    if role in (PRIMARY, REPLICA, ANY):
        overrides.role, overrides.parser = role, False
    elif role == "auto":
        overrides.role, overrides.parser = None, True
    else:  # default: back to the pool's default_role and its parser settings
        overrides.role, overrides.parser = None, None


def _shown_role(overrides: Overrides, router: Router) -> str:
    if overrides.role is not None:
        return overrides.role
    parser_on = overrides.parser if overrides.parser is not None else router.splits_reads
    if parser_on:
        return "auto"
    return router.settings.default_role


def _error(message: str, status: bytes) -> bytes:
    return (be.error_response(message, SYSTEM_ERROR)
            + be.ReadyForQuery(status.decode()).encode())
