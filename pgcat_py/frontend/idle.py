"""A client between transactions: what its buffered input asks for while no server is held.

The first whole message of the next transaction decides (DESIGN §2): a custom command is
answered here; a lone BEGIN is held (answered here, replayed on the server the transaction
gets) when the route could still depend on what follows; COMMIT or ROLLBACK of a held
transaction that never needed a server is answered here too; SET TRANSACTION inside one is
remembered for the replay. Anything else starts the transaction: the router picks a route
from the SQL (for the extended protocol, the Parse and Bind of the batch, buffered up to
its Sync or Flush, so shard keys in Bind parameters count) and the session checks out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from parser import Classification, StatementKind, classify

from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation, ProxyError
from ..protocol.framing import (
    BIND,
    FLUSH,
    PARSE,
    QUERY,
    SYNC,
    TERMINATE,
    check_frontend_header,
    cstring_end,
    decode_text,
    first_message,
    unpack_header,
)
from ..protocol.frontend import Bind, decode_frontend
from ..router import PRIMARY, Route, RouteError, read_only_transaction
from ..scatter import start_scatter
from ..scatter.batch import batch_plan, start_batch
from .commands import custom_command, run_command
from .explain import explain_route
from .linked import deallocate_reply
from .states import State

if TYPE_CHECKING:
    from ..pool.cluster import Cluster
    from .session import ClientSession

# Bytes a client may have buffered while it has no server before we stop reading it.
MAX_IDLE_BUFFER: Final = 256 * 1024
MAX_REMEMBERED_STATEMENTS: Final = 10_000  # named Parse texts kept per client for routing Binds
# A client's `statements` until it sends a named Parse: one for all (64 bytes each
# otherwise). Never written to: _statement_of gives the client its own dict first.
NO_STATEMENTS: Final[dict[str, str]] = {}
# Transaction control at the start of a Query (cheap pre-check before the parser).
_TXN_CONTROL: Final = re.compile(
    rb"\s*(?:begin|start\s+transaction|commit|end|rollback|abort|set\s+transaction)\b",
    re.IGNORECASE)
_TXN_START: Final = re.compile(r"\s*(?:begin|start\s+transaction)\b", re.IGNORECASE)
_HELD_ANSWERS: Final = {StatementKind.COMMIT: b"COMMIT", StatementKind.ROLLBACK: b"ROLLBACK"}


@dataclass(slots=True)
class HeldTransaction:
    """A BEGIN answered by the proxy, waiting for the statement that needs a server."""

    statements: list[str]
    begin: Classification
    read_only: bool
    failed: bool = False  # a statement failed before any server was involved

    @property
    def status(self) -> bytes:
        return b"E" if self.failed else b"T"


def process_idle(session: ClientSession) -> None:
    """Act on buffered input while no server is held."""
    while session.state is State.IDLE and not session.is_closed:
        buf = session._rbuf
        try:
            first = first_message(session.buffered)
        except ProtocolViolation as exc:
            session.fatal(exc)
            return
        if first is None:
            # Part of one message. Too big to buffer: too big to parse too, so start the
            # transaction on the header alone (to the primary) and stream the rest, with
            # backpressure, to the server (invariant 4).
            if len(buf) > MAX_IDLE_BUFFER and not session._skip_until_sync:
                _too_big(session)
            else:
                session.resume_reading()
            return
        msg_type, end = first
        if msg_type == TERMINATE:
            session.close()
            return
        if session._skip_until_sync:
            session.consume(end)
            if msg_type == SYNC:
                session._skip_until_sync = False
                session.write(ready_for_query(session))
            continue
        cluster = _cluster_for_next(session)
        if cluster is None:
            return
        if msg_type == QUERY:
            if _start_query(session, cluster, buf, end):
                continue  # answered here
            return
        if msg_type in (SYNC, FLUSH) and session.held is None:
            # Nothing is open or owed (a lone Sync and Flush, as psycopg sends after a
            # Flush-ended batch a cross-shard path answered): PostgreSQL's answer (Ready
            # ForQuery 'I', nothing) without a server, which would keep what follows.
            session.consume(end)
            if msg_type == SYNC:
                session.write(be.READY_IDLE)
            continue
        if msg_type in _EXTENDED and session.routes_vary:
            if _start_extended(session):
                continue  # intercepted: answered here
            return
        start_transaction(session, None)
        return


def _cluster_for_next(session: ClientSession) -> Cluster | None:
    """The pool the next transaction runs in; None when the session cannot start one now
    (a shutdown, a pool gone with a reload, an admin PAUSE: each handled here)."""
    cluster = session.cluster
    assert cluster is not None
    if session.held is not None:  # a BEGIN answered here: it goes on where it started
        return cluster
    if session.ctx.shutting_down:
        session.fatal_shutdown()
        return None
    if cluster.retired:
        cluster = session.rejoin_pool()
        if cluster is None:
            return None
    if cluster.paused:
        session.wait_for_resume()
        return None
    return cluster


def _start_query(session: ClientSession, cluster: Cluster, buf: bytearray, end: int) -> bool:
    """A Query first: True when it was answered here (a custom command, transaction
    control of a held BEGIN, a plugin), False when its transaction was started."""
    first_byte = buf[5] if end > 8 else 0x20
    if (((first_byte in _COMMAND_FIRST and buf[7] in _COMMAND_THIRD)
         or first_byte == 0x20
         or (session.holds_begins and _maybe_txn_control(buf, end)))
            and _answer_locally(session, end)):
        return True
    fixed = cluster.fixed_route
    if fixed is not None and session.held is None and not session.overrides.any_set:
        session.begin_transaction(fixed)  # the hot path: nothing to decide
        return False
    sql = _query_text(session, end)
    plugins = cluster.router.plugins
    if plugins is not None and plugins.answer_query(session, sql, end):
        return True  # intercepted
    # Input pipelined behind it (not looked at) rides to the same server.
    more: list[str | None] | None = [None] if len(buf) > end else None
    start_transaction(session, sql, more=more)
    return False


_EXTENDED: Final = frozenset(b"PBDEC")


def _too_big(session: ClientSession) -> None:
    """Input too big to look at: to the primary unread, as before; but a pool with
    cross_shard_writes promised rows on their keys' shards, so there it is refused."""
    if session.router.settings.cross_shard_writes and session.router.settings.shards > 1:
        session.fatal(ProxyError(
            f"a statement or batch over {MAX_IDLE_BUFFER >> 10} KiB cannot be routed by its "
            "keys (cross_shard_writes): use COPY, or smaller statements",
            sqlstate="54000", severity="FATAL"))
        return
    start_transaction(session, None)
# SET / SHOW (pgcat's custom commands) by their first and third letters; SELECT has an L.
_COMMAND_FIRST: Final = frozenset(b"SsDdEe")  # SET / SHOW, DEALLOCATE, EXPLAIN (ROUTE)
_COMMAND_THIRD: Final = frozenset(b"TtOoAaPp")


def ready_for_query(session: ClientSession) -> bytes:
    held = session.held
    return be.READY_IDLE if held is None else be.ReadyForQuery(held.status.decode()).encode()


def _query_text(session: ClientSession, end: int) -> str | None:
    """The SQL of the Query that ends at ``end`` of the input."""
    try:
        return decode_text(session.buffered, 5, end - 1)
    except UnicodeDecodeError:
        return None  # not valid UTF-8: the server will say so; route it as a write


# --- answered without a server ------------------------------------------------------------
def _answer_locally(session: ClientSession, end: int) -> bool:
    """Custom commands and held transaction control; True when answered."""
    buf = session._rbuf
    command = custom_command(buf, 5, end)
    held = session.held
    status = b"I" if held is None else held.status
    if command is not None:
        answer = run_command(command, session.own_overrides(), session.router, status)
        session.consume(end)
        session.write(answer)
        return True
    if end <= 6:  # an empty Query: PostgreSQL's own answer (no local command is that short)
        return False
    if buf[5] in b"Ee":
        sql = _query_text(session, end)
        reply = explain_route(session, sql, status) if sql is not None else None
        if reply is not None:
            session.consume(end)
            session.write(reply)
            return True
        return False
    if session._rewriting and buf[5] in b"Dd":
        reply = deallocate_reply(session, buf, 5, end, status)
        if reply is not None:
            session.consume(end)
            session.write(reply)
            return True
    if (not session.holds_begins or not _maybe_txn_control(buf, end)
            or _TXN_CONTROL.match(buf, 5, end) is None):
        return False
    sql = _query_text(session, end)
    if sql is None:
        return False
    c = classify(sql)
    held = session.held
    reply = _hold(session, sql, c) if held is None else _held_control(session, held, sql, c)
    if reply is None:
        return False
    session.consume(end)
    session.write(reply)
    return True


def _maybe_txn_control(buf: bytearray, end: int) -> bool:
    """A cheap look at the first letters before the regex: BEGIN, COMMIT, END, ROLLBACK,
    ABORT, START, SET; not SELECT (the common case)."""
    if end < 9:  # "END" and a NUL at the shortest
        return False
    first = buf[5] | 0x20  # ASCII lower case
    if first in _TXN_FIRST:
        return True
    if first == 0x73:  # s: START / SET, not SELECT / SHOW
        return len(buf) > 7 and (buf[7] | 0x20) in (0x61, 0x74)  # a, t
    return first in _SPACES


_TXN_FIRST: Final = frozenset(b"bcera")
_SPACES: Final = frozenset(b" \t\n\r\x0c")


def _hold(session: ClientSession, sql: str, c: Classification) -> bytes | None:
    if c.kinds != (StatementKind.BEGIN,):
        return None
    read_only = read_only_transaction(c, session.params)
    session.held = HeldTransaction([sql], c, read_only)
    return be.CommandComplete("BEGIN").encode() + be.ReadyForQuery("T").encode()


def _held_control(session: ClientSession, held: HeldTransaction, sql: str,
                  c: Classification) -> bytes | None:
    kind = c.kinds[0] if len(c.kinds) == 1 else None
    if kind in _HELD_ANSWERS and "chain" not in sql.lower():
        # Nothing ran on any server: nothing to commit or undo. (AND CHAIN opens the next
        # transaction at once: that one goes to a server, after the replayed BEGIN.)
        session.held = None
        tag = b"ROLLBACK" if held.failed else _HELD_ANSWERS[kind]
        return be.CommandComplete(tag.decode()).encode() + be.READY_IDLE
    if held.failed:
        return None  # the server-less failed state is answered by start_transaction
    if kind is StatementKind.SET_TRANSACTION and c.transaction_modes is not None:
        held.statements.append(sql)
        held.begin = _merged(held, c)
        held.read_only = read_only_transaction(held.begin, session.params)
        return be.CommandComplete("SET").encode() + be.ReadyForQuery("T").encode()
    return None


def _merged(held: HeldTransaction, c: Classification) -> Classification:
    """The latest SET TRANSACTION modes win over BEGIN's, per mode."""
    begin_modes = held.begin.transaction_modes
    new = c.transaction_modes
    assert new is not None
    if begin_modes is None:
        return c
    merged = replace(begin_modes,
                     read_only=new.read_only if new.read_only is not None
                     else begin_modes.read_only,
                     isolation_level=new.isolation_level or begin_modes.isolation_level)
    return Classification(replace(c.traits, transaction_modes=merged), c.shard_keys)


# --- the transaction starts -----------------------------------------------------------------
def start_transaction(session: ClientSession, sql: str | None,
                      bind: tuple[tuple[bytes | None, int], ...] = (),
                      more: list[str | None] | None = None) -> None:
    """Route the transaction the buffered input starts and check out for it. ``more``:
    the SQL of statements pipelined behind the first one, which go to the same server: a
    read goes to a replica only if none of them writes (None: one not looked at)."""
    held = session.held
    if held is not None and held.failed:
        session.refuse_in_failed_transaction()
        return
    cluster = session.cluster
    assert cluster is not None
    router = cluster.router
    try:
        route = _route(session, sql, bind)
        if router.plugins is not None:  # table_access and plugin_module may refuse or move
            route = router.plugins.check(session, router, sql, more, route)
    except RouteError as exc:
        session.checkout_failed(exc)
        return
    if route.shard < 0:  # a cross-shard SELECT: every shard, results merged
        start_scatter(session, route)
        return
    if more:
        if router.activity is not None:
            router.note_writes(more, route.shard)
        if route.role != PRIMARY and any(text is None or router.is_write(text) for text in more):
            route = Route(route.shard, PRIMARY, "write pipelined behind a read")
    session.begin_transaction(route)


def _route(session: ClientSession, sql: str | None,
           bind: tuple[tuple[bytes | None, int], ...]) -> Route:
    cluster = session.cluster
    assert cluster is not None
    held = session.held
    fixed = cluster.fixed_route
    in_batch, session.held_in_batch = session.held_in_batch, None
    if fixed is not None and held is None and not session.overrides.any_set:
        return fixed
    read_only = in_batch if held is None else held.read_only
    return cluster.router.route(sql, session.overrides, read_only_txn=read_only, bind=bind)


def _start_extended(session: ClientSession) -> bool:
    """Wait for the batch's Sync or Flush, then route by its Parse and Bind. True when a
    plugin answered the batch here (the caller looks at what follows it)."""
    buf, data = session._rbuf, session.buffered
    try:
        end = _batch_end(data)
    except ProtocolViolation as exc:
        session.fatal(exc)
        return False
    if end == TERMINATED:
        # PostgreSQL would parse and bind, then exit at the Terminate, having run and
        # sent nothing: close now.
        session.close()
        return False
    if end is None:
        if len(buf) > MAX_IDLE_BUFFER:
            _too_big(session)  # too big to look at: the primary
        else:
            session.resume_reading()
        return False
    cluster = session.cluster
    assert cluster is not None
    if cluster.router.plugins is not None and cluster.router.plugins.answer_batch(session, end):
        return True
    try:
        sql, bind, more = _statement_of(session, data, end)
    except (ProtocolViolation, ValueError):  # malformed, or not UTF-8: the server will say
        sql, bind, more = None, (), [None]
    if len(buf) > end:
        more.append(None)  # input pipelined behind this batch: not looked at
    if more and session.held is None and cluster.router.settings.cross_shard_writes:
        batch = batch_plan(session, buf, end)  # executemany over several shards
        if batch is not None:
            start_batch(session, batch)
            return False
    start_transaction(session, sql, bind, more)
    return False


TERMINATED: Final = -1  # _batch_end: a Terminate came first, behind nothing that runs
_RUNS: Final = frozenset(b"EQF")  # Execute, Query, FunctionCall: what runs (a COMMIT commits)


def _batch_end(buf: bytes | bytearray) -> int | None:
    """The offset after the first Sync or Flush in ``buf``, None if not there yet. A
    Terminate first ends the batch too when something before it runs (PostgreSQL runs
    it, then exits: the relay sends it on and closes), else it is TERMINATED."""
    pos, n, runs = 0, len(buf), False
    while pos + 5 <= n:
        msg_type, length = unpack_header(buf, pos)
        check_frontend_header(msg_type, length)
        if msg_type == TERMINATE:
            return pos + 5 if runs else TERMINATED
        runs = runs or msg_type in _RUNS
        pos += 1 + length
        if pos > n:
            return None
        if msg_type in (SYNC, FLUSH):
            return int(pos)
    return None


def _statement_of(session: ClientSession, buf: bytes | bytearray, end: int
                  ) -> tuple[str | None, tuple[tuple[bytes | None, int], ...], list[str | None]]:
    """The SQL and Bind parameters of the batch's first executed statement, and the SQL of
    the others in the batch. Only names and texts are cut out; a Bind is decoded only when
    its parameters can pick a shard."""
    pos, parsed, statements = 0, None, session.statements
    first: tuple[str | None, tuple[tuple[bytes | None, int], ...]] | None = None
    more: list[str | None] = []
    begin: str | None = None
    while pos < end:
        msg_type, length = unpack_header(buf, pos)
        body, after = pos + 5, pos + 1 + length
        pos = after
        if msg_type == PARSE:
            name_end = cstring_end(buf, body, after)
            parsed = decode_text(buf, name_end + 1, cstring_end(buf, name_end + 1, after))
            if name_end > body:
                statements = session.own_statements()
                if len(statements) >= MAX_REMEMBERED_STATEMENTS:
                    statements.clear()
                statements[decode_text(buf, body, name_end)] = parsed
        elif msg_type == BIND:
            portal_end = cstring_end(buf, body, after)
            name_end = cstring_end(buf, portal_end + 1, after)
            name = decode_text(buf, portal_end + 1, name_end) if name_end > portal_end + 1 else ""
            sql = statements.get(name) if name else parsed
            if sql is None and not name:
                sql = _unnamed_text(session)
            if first is not None:
                more.append(sql)
                continue
            if sql is not None and begin is None and _TXN_START.match(sql):
                begin = sql  # pgjdbc's BEGIN in the batch: route by what follows it
                continue
            first = (sql, _bind_params(session, buf, body, after))
        elif msg_type == QUERY:
            more.append(None)
    if first is None:
        return begin or parsed, (), more
    if begin is not None and session.held is None:
        # An explicit transaction: only a read-only one may use a replica.
        session.held_in_batch = read_only_transaction(classify(begin), session.params)
    return first[0], first[1], more


def _unnamed_text(session: ClientSession) -> str | None:
    """The SQL of the client's last unnamed Parse, if it was kept for a replay."""
    parse = session.prepared.unnamed_parse
    if not parse:
        return None
    start = parse.index(0, 5) + 1
    return parse[start:parse.index(0, start)].decode()


def _bind_params(session: ClientSession, buf: bytes | bytearray, body: int, after: int
                 ) -> tuple[tuple[bytes | None, int], ...]:
    if not session.router.reads_bind_keys:
        return ()
    bind = decode_frontend(BIND, bytes(buf[body:after]))
    assert isinstance(bind, Bind)
    return tuple((value, bind.param_format(i)) for i, value in enumerate(bind.params))
