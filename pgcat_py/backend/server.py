"""ServerConnection: one connection to a PostgreSQL server, from login to close.

On the control plane it logs in (login.py: TLS, trust, cleartext, md5, SCRAM-SHA-256), runs
the proxy's own queries (parameter sync, reset, rollback) and keeps what it learns (ParameterStatus,
BackendKeyData). On the relay path it forwards every chunk to its client as it arrives and
watches only ReadyForQuery, CommandComplete, ParameterStatus, ErrorResponse and the Copy
responses, so it knows when the transaction is over and whether the session got dirty.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Final

from ..conn import ConnectionClosed, MessageConnection, SocketOptions, tune_socket
from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation, ServerError
from ..protocol.framing import (
    DATA_ROW,
    DIRTY_TAGS,
    ERROR_RESPONSE,
    IDLE,
    PARAMETER_STATUS,
    READY_FOR_QUERY,
    TAG_CREATED,
    TAG_DEALLOCATED,
    TAG_DISCARD,
    TAG_PREPARE,
    TAG_SET,
    BackendScanner,
)
from ..protocol.frontend import TERMINATE_MESSAGE, Query
from . import params as P
from .dns import DnsCache
from .login import log_in, request_tls
from .mirror import Mirror
from .passthrough import ServerSecret
from .prepared import Expectation, ExpectedReplies, ServerStatements, StatementRegistry
from .stale_plan import is_stale_plan_error, is_stale_plan_reply, prepared_again

if TYPE_CHECKING:
    from collections.abc import Callable

    # The client a server relays to is typed as the session itself, not as a Protocol: a
    # Protocol call is Python's method lookup and argument parsing when compiled (about 300
    # instructions), a native class's a C call. Only for types: backend does not import
    # frontend.
    from ..frontend.session import ClientSession

log = logging.getLogger(__name__)
DEFAULT_SOCKET_OPTIONS: Final = SocketOptions()
# The relay holds back the start of an incomplete server message up to this size, so a
# server that dies mid-message never leaves its client with part of one; a bigger message
# (a huge DataRow) is streamed as it comes, bounding memory per connection.
HOLD_LIMIT: Final = 256 * 1024
# Upper bounds (seconds) of the transaction latency histogram's buckets; one more for above.
# A list: compiled, a tuple's items would be boxed at each use.
XACT_TIME_BOUNDS: Final[list[float]] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


def xact_bucket(took: float) -> int:
    """The xact_buckets index of a transaction that took ``took`` seconds: bisect_right
    over XACT_TIME_BOUNDS. Compiled, a walk up a list of floats costs a tenth of bisect's
    boxed comparisons (1 300 instructions a transaction); most stop at the first bound."""
    index, count = 0, len(XACT_TIME_BOUNDS)
    while index < count and took >= XACT_TIME_BOUNDS[index]:
        index += 1
    return index


@dataclass(frozen=True)
class ServerTarget:
    """Where and as whom to connect."""

    host: str
    port: int
    database: str
    user: str
    password: str | None
    role: str = "primary"
    name: str = ""  # address name for logs and the admin console
    socket_options: SocketOptions = DEFAULT_SOCKET_OPTIONS
    tls: ssl.SSLContext | None = None  # server_tls: ask for TLS first (config/tls.py)
    mirrors: tuple[ServerTarget, ...] = ()  # each gets a copy of what clients send here
    dns: DnsCache | None = None  # dns_cache_enabled (backend/dns.py)
    secret: ServerSecret | None = None  # auth_query users: in place of password (passthrough.py)


class ServerConnection(MessageConnection):
    """A PostgreSQL server connection; see the module docstring."""

    def __init__(self, target: ServerTarget) -> None:
        super().__init__()
        self.target = target
        self.process_id = 0
        self.secret_key = 0
        self.defaults: dict[str, str] = {}      # login ParameterStatus, lower-case names
        self.reported: dict[str, tuple[str, str]] = {}  # lower name -> (Name, value)
        self.applied: dict[str, str] = {}       # values that differ from the defaults
        # The client parameter set this session was last brought in line with: a checkout by
        # a client with the same set skips the comparison (tuple equality, no SQL).
        self.synced_key: tuple[tuple[str, str], ...] | None = None
        self.pending = 0                        # ReadyForQuery messages still expected
        self.broken = False
        # What the client's session left behind (TAG_* bits), undone at check-in.
        self.dirt = 0
        self.created_at = time.monotonic()
        self.last_used = self.created_at
        # When a control-plane question (ServerPool.ask) last got an answer on it: proof of
        # health that, unlike last_used, leaves its idle time (idle_timeout) running.
        self.last_answered = self.created_at
        self.client: ClientSession | None = None
        self._scanner = BackendScanner()
        self._held = b""  # the start of an incomplete message, not yet sent to the client
        # Part of a message too big to hold went to the client: if this connection dies now,
        # the client's stream cannot be ended at a message boundary.
        self.streamed_partial = False
        self._stream_rest = 0  # bytes of that message not received yet
        self.fatal_relayed = False  # a FATAL from the server went to the client
        self.on_lost: Callable[[ServerConnection], None] | None = None
        self.write_paused = False
        # Named statements prepared on this connection for the pool's clients, and the
        # replies to expect for the Parse / Close messages sent since it had none pending
        # (see frontend/statements.py): while any is pending, replies take the slow path.
        self.statements = ServerStatements(0)
        self.expected = ExpectedReplies(self.statements)
        # The batch just sent, when it may be sent again after a stale plan error
        # (backend/stale_plan.py), with the registry of the statement it binds.
        self.retry: tuple[bytes, StatementRegistry] | None = None
        self._stale_error = b""  # a stale plan error that came without its ReadyForQuery
        self.mirrors: list[Mirror] = []  # backend/mirror.py, set by the pool
        self.address = target.host  # what it connected to (an address, with the DNS cache)
        # Counters (SHOW SERVERS, SHOW STATS): times in seconds, from the first bytes sent
        # after an answer (or outside a transaction) to the answer.
        self.xact_count = self.errors = self.bytes_sent = self.bytes_received = 0
        self.xact_time = self.query_time = 0.0
        self._busy_since = self._xact_since = self.answered_at = 0.0
        # Transaction latency histogram, shared with the pool (XACT_TIME_BOUNDS buckets).
        self.xact_buckets = [0] * (len(XACT_TIME_BOUNDS) + 1)

    # --- lifecycle ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        tune_socket(transport, self.target.socket_options)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.broken = True
        for mirror in self.mirrors:
            mirror.close()
        client, self.client = self.client, None
        if client is not None:
            client.on_server_lost(self)
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.client is not None:
            self.client.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.client is not None:
            self.client.resume_reading()

    @property
    def is_usable(self) -> bool:
        return not self.broken and not self.is_closed

    def terminate(self) -> None:
        """Say goodbye (Terminate) and close; the connection is never reused."""
        self.broken = True
        for mirror in self.mirrors:
            mirror.close()
        if not self.is_closed:
            self.transport.write(TERMINATE_MESSAGE)
            self.close()

    # --- relay path ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            super().data_received(data)
            return
        if self.retry is not None:
            data = self._sent_again(data)
            if not data:
                return
        self.bytes_received += len(data)
        scanner = self._scanner
        if self.expected:
            ready = self._relay_filtered(client, data)
            if ready < 0:
                return
        else:
            try:
                ready = scanner.feed(data)
            except ProtocolViolation:
                self.terminate()
                return
            if self._held:
                data = self._held + data
                self._held = b""
            partial = scanner.partial
            if not partial:
                self.streamed_partial = False
                client.transport.write(data)
            else:
                self._hold_back(client, data, partial)
        if scanner.others:
            self._note_others(client)
        if ready:
            self.pending -= ready
            if self.pending <= 0 and not scanner.in_copy:
                status = scanner.status
                self.answered_at = now = monotonic()  # counted here, inline: hot path
                self.query_time += now - self._busy_since
                if status == IDLE:
                    took = now - self._xact_since
                    self.xact_count += 1
                    self.xact_time += took
                    self.xact_buckets[xact_bucket(took)] += 1
                    self._xact_since = 0.0
                client.on_server_answered(self, status, scanner.session_tags)

    def _hold_back(self, client: ClientSession, data: bytes, partial: int) -> None:
        """Send the whole messages of ``data``; keep the incomplete last one for later,
        unless it is too big to keep (then stream it)."""
        if partial > HOLD_LIMIT:
            self._stream(data, partial)
            client.transport.write(data)
            return
        cut = len(data) - partial
        if cut:
            self.streamed_partial = False
            client.transport.write(data[:cut])
        self._held = data[cut:]

    def _sent_again(self, data: bytes) -> bytes:
        """The first reply to a batch that may be retried: on a stale plan error, prepare
        the statement again and resend the batch; the error is never relayed. Returns what
        is left to relay (nothing when the reply was taken here)."""
        batch, registry = self.retry  # type: ignore[misc]
        self.retry = None
        if self._stale_error:  # the error came alone: this should be its ReadyForQuery
            data, self._stale_error = self._stale_error + data, b""
        elif not self._held and self.pending == 1 and is_stale_plan_error(data):
            self._stale_error, self.retry = data, (batch, registry)
            return b""  # wait for the ReadyForQuery before deciding
        if self._held or self.pending != 1 or not is_stale_plan_reply(data):
            return data
        again = prepared_again(batch, registry)
        if again is None:
            return data
        log.info("server %s: prepared a statement again after a change of its result type",
                 self.target.name)
        self.expected.push_front(again[1])
        self.transport.write(again[0])
        return b""

    # --- the slow path: replies the client never asked for are dropped -------------------
    def expect(self, notes: list[Expectation]) -> None:
        """Replies to the Parse / Close messages about to be sent (see ExpectedReplies)."""
        self.expected.add(notes, self.pending)

    def _relay_filtered(self, client: ClientSession, data: bytes) -> int:
        """The relay while replies are expected: whole messages only, filtered. Returns
        the ReadyForQuery count, or -1 after a protocol violation."""
        scanner = self._scanner
        streamed = self.streamed_partial
        try:
            ready = scanner.feed(data)
        except ProtocolViolation:
            self.terminate()
            return -1
        if self._held:
            data = self._held + data
            self._held = b""
        start = min(self._stream_rest, len(data)) if streamed else 0
        if start:  # the end of a big message already being streamed
            self._stream_rest -= start
            client.transport.write(data[:start])
        end = max(start, len(data) - scanner.partial)
        if end > start:
            client.transport.write(self.expected.filter(data, start, end))
            self.streamed_partial = False
        if end < len(data):
            if scanner.partial > HOLD_LIMIT:
                self._stream(data, scanner.partial)
                client.transport.write(data[end:])
            else:
                self._held = data[end:]
        elif start == len(data) and not self._stream_rest:
            self.streamed_partial = False  # the streamed message ended with this chunk
        return ready

    def _stream(self, data: bytes, partial: int) -> None:
        """The last ``partial`` bytes fed (the end of ``data``) start or continue a message
        too big to hold: note how much of it is still to come."""
        if self.streamed_partial:
            self._stream_rest -= len(data)
        else:
            start = len(data) - partial
            self._stream_rest = 1 + int.from_bytes(data[start + 1:start + 5]) - partial
        self.streamed_partial = True

    def _note_others(self, client: ClientSession | None) -> None:
        """ParameterStatus and ErrorResponse seen on the relay (rare, so decoded)."""
        others = self._scanner.others
        for msg_type, payload in others:
            if msg_type == PARAMETER_STATUS:
                self._note_parameter(payload, client)
            elif msg_type == ERROR_RESPONSE:
                self.errors += 1
                if client is not None:
                    client.error_count += 1
                if b"SFATAL\0" in payload:
                    self.broken = True  # the server is about to close this session
                    self.fatal_relayed = client is not None  # and its client was told so
        others.clear()

    def _note_parameter(self, payload: bytes, client: ClientSession | None) -> None:
        msg = be.decode_backend(PARAMETER_STATUS, payload)
        assert isinstance(msg, be.ParameterStatus)
        key = msg.name.lower()
        self.synced_key = None
        self.reported[key] = (msg.name, msg.value)
        if key in P.READ_ONLY_REPORTED:
            self.defaults[key] = msg.value  # the server's own change: nothing to sync
        elif self.defaults.get(key) == msg.value:
            self.applied.pop(key, None)
        else:
            self.applied[key] = msg.value
        if client is not None and key in P.TRACKED:
            client.on_parameter_status(key, msg.value)

    def take_deallocation(self) -> int:
        """A DEALLOCATE ALL / DISCARD ALL just completed: no statement is prepared here any
        more. Returns the session tags without it."""
        scanner = self._scanner
        self.statements.clear()
        scanner.session_tags &= ~TAG_DEALLOCATED
        return scanner.session_tags

    def take_session_tags(self) -> int:
        """Fold the dirtying CommandComplete tags seen so far into ``dirt``; returns it."""
        scanner = self._scanner
        tags = scanner.session_tags
        if tags:
            if tags & TAG_DEALLOCATED:  # the client's DEALLOCATE ALL / DISCARD ALL
                self.statements.clear()
            self.dirt |= tags & DIRTY_TAGS
            scanner.session_tags = 0
        return self.dirt

    @property
    def status(self) -> int:
        """Transaction status from the last ReadyForQuery: 'I', 'T' or 'E' (as an int)."""
        return self._scanner.status

    def note_status(self, status: int) -> None:
        """The status of a ReadyForQuery read on the control plane."""
        self._scanner.status = status

    @property
    def in_copy(self) -> bool:
        return self._scanner.in_copy

    def forward(self, data: bytes, sync_points: int) -> None:
        """Send client bytes; ``sync_points`` ReadyForQuery messages will answer them."""
        if self.pending <= 0:
            self._busy_since = now = monotonic()
            if not self._xact_since:
                self._xact_since = now
        self.pending += sync_points
        self.bytes_sent += len(data)
        self.transport.write(data)
        if self.mirrors:
            for mirror in self.mirrors:
                mirror.send(data)

    @property
    def query_count(self) -> int:
        """Commands completed (CommandComplete messages relayed)."""
        return self._scanner.commands

    def reset_counters(self) -> None:
        self.xact_count = self.errors = self.bytes_sent = self.bytes_received = 0
        self.xact_time = self.query_time = 0.0
        self._scanner.commands = 0

    def detach(self) -> None:
        self.client = None
        self.retry = None
        self._stale_error = b""
        self.last_used = time.monotonic()

    @property
    def is_idle(self) -> bool:
        """At a transaction boundary with nothing in flight."""
        scanner = self._scanner
        return (scanner.status == IDLE and self.pending <= 0 and not scanner.in_copy
                and scanner.at_boundary)

    # --- control plane ------------------------------------------------------------------
    async def simple_query(self, sql: str) -> list[be.NoticeOrError]:
        """Run the proxy's own SQL; returns the ErrorResponses (usually none)."""
        errors, _ = await self._run(sql)
        return errors

    async def query_value(self, sql: str) -> str | None:
        """The first column of the first row of the proxy's own ``sql`` (text format)."""
        errors, value = await self._run(sql)
        if errors:
            raise ServerError(f"server {self.target.name}: {errors[0].text}",
                              sqlstate=errors[0].sqlstate or None)
        return value

    async def _run(self, sql: str) -> tuple[list[be.NoticeOrError], str | None]:
        """Send a simple Query and read to its ReadyForQuery: the ErrorResponses, and the
        first column of the first row."""
        self.write(Query(sql).encode())
        errors: list[be.NoticeOrError] = []
        value: str | None = None
        first_row = True
        while True:
            msg_type, payload = await self.read_message()
            if msg_type == READY_FOR_QUERY:
                self.note_status(payload[0])
                return errors, value
            if msg_type == ERROR_RESPONSE:
                err = be.decode_backend(msg_type, payload)
                assert isinstance(err, be.NoticeOrError)
                errors.append(err)
            elif msg_type == PARAMETER_STATUS:
                self._note_parameter(payload, None)
            elif msg_type == DATA_ROW and first_row:
                first_row = False
                row = be.decode_backend(msg_type, payload)
                assert isinstance(row, be.DataRow)
                value = row.values[0].decode() if row.values and row.values[0] else None

    async def sync_parameters(self, wanted: dict[str, str]) -> list[be.NoticeOrError]:
        """Bring the session's settings in line with a client's; returns server errors."""
        sql = P.sync_statements(wanted, self.applied, self.defaults)
        if not sql:
            return []
        errors = await self.simple_query(sql)
        if not errors:
            for name, value in wanted.items():
                if name not in self.reported:  # reported ones arrive as ParameterStatus
                    self.applied[name] = value
            for name in [n for n in self.applied if n not in wanted]:
                self.applied.pop(name)
        return errors

    def reset_sql(self, server_reset_query: str, cleanup: bool) -> str:
        """What to run at check-in so the next client finds a clean session, or ""."""
        dirt = self.take_session_tags()
        if dirt & TAG_DISCARD and not server_reset_query:
            # Session locks, LISTEN, cursors, temporary tables: never handed to another
            # client, whatever cleanup_server_connections says (pgcat only resets SET and
            # PREPARE, and only when it is on).
            return "DISCARD ALL"
        if not dirt or (not cleanup and not server_reset_query):
            return ""
        if server_reset_query:
            return server_reset_query
        if dirt & TAG_DISCARD:
            return "DISCARD ALL"
        parts = ["RESET ROLE", "SET SESSION AUTHORIZATION DEFAULT"]
        if dirt & TAG_SET:
            parts.append("RESET ALL")
        if dirt & TAG_PREPARE:
            parts.append("DEALLOCATE ALL")
        if dirt & TAG_CREATED:  # the table may have been a temporary one
            parts.append("DISCARD TEMP")
        return ";".join(parts)

    def after_reset(self) -> None:
        """RESET ALL / DISCARD ALL put every non-reported setting back to its default; a
        reset may have deallocated statements (DEALLOCATE ALL, DISCARD ALL, or any
        server_reset_query), so none is taken as known."""
        self.statements.clear()  # a reset may have deallocated them: Close + Parse is safe
        self.dirt = 0
        self._scanner.session_tags = 0
        self.synced_key = None
        self.applied = {k: v for k, v in self.applied.items() if k in self.reported
                        and self.reported[k][1] != self.defaults.get(k)}


async def open_server(target: ServerTarget, timeout: float,
                      application_name: str | None = None) -> ServerConnection:
    """Connect and log in within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            host = target.host
            if target.dns is not None:  # dns_cache_enabled: the cached address
                host = (await target.dns.addresses(target.host, target.port))[0]
            _, conn = await loop.create_connection(
                lambda: ServerConnection(target), host, target.port)
            conn.address = host
            try:
                if target.tls is not None:
                    await request_tls(conn, target.tls)
                await log_in(conn, application_name)
            except BaseException:
                conn.terminate()
                raise
            return conn
    except TimeoutError:
        raise ServerError(f"timed out connecting to server {target.name}") from None
    except (OSError, ConnectionClosed) as exc:
        raise ServerError(f"could not connect to server {target.name}: {exc}") from None
