"""ClientSession: one client connection, from login to goodbye.

States: LOGIN (startup and auth, on the control plane), IDLE (no server; bytes are buffered
until a whole first message says what the next transaction needs), CHECKOUT (waiting for a
server and syncing its parameters; bytes keep buffering), LINKED (the relay: every chunk is
framed by header only and written to the server in one write; the server's chunks come back
the same way). In transaction mode the server goes back to its pool at ReadyForQuery 'I'
when nothing is in flight; in session mode when the client leaves.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Final

from ..backend.params import sync_statements
from ..backend.prepared import DROP_READY
from ..conn import ConnectionClosed, MessageConnection, tune_socket
from ..plugins.linked import checked_chunk
from ..protocol import backend as be
from ..protocol.errors import (
    CONNECTION_FAILURE,
    IN_FAILED_TRANSACTION,
    INTERNAL_ERROR,
    TOO_MANY_CONNECTIONS,
    AdminShutdown,
    ProtocolViolation,
    ProxyError,
)
from ..protocol.framing import (
    IDLE,
    PQ_LARGE_MESSAGE_LIMIT,
    QUERY,
    TAG_CREATED,
    TAG_DEALLOCATED,
    TAG_DISCARD,
    TAG_PREPARE,
    TAG_SET,
    FrontendScanner,
)
from ..protocol.frontend import SYNC_MESSAGE, TERMINATE_MESSAGE
from ..router import NO_OVERRIDES, PRIMARY, Overrides, Route, Router
from .checkout import (
    checkout_failed,
    refuse,
    rejoin_pool,
    sync_then_link,
    wait_for_resume,
    waiting_for,
)
from .idle import MAX_IDLE_BUFFER, NO_STATEMENTS, HeldTransaction, process_idle
from .linked import (
    NO_PENDING,
    linked_command,
    relay_rewritten,
    remember_set_parse,
    remember_setting,
    remember_unnamed,
)
from .parking import unparked
from .pins import PIN_PREPARE, updated_pins
from .settings import shared_params_key
from .statements import ClientStatements
from .states import State

if TYPE_CHECKING:
    from ..backend.server import ServerConnection
    from ..pool.cluster import CheckoutAttempt, Cluster
    from ..pool.server_pool import ServerPool
    from .context import ProxyContext

log = logging.getLogger(__name__)

_STATEMENT_MESSAGES: Final = frozenset(b"PBDC")  # they may name a statement: rewritten whole
ADMIN_HEADROOM: Final = 5  # connections past max_client_conn accepted, for admin logins
_NO_SETTINGS: Final[dict[str, str]] = {}  # a client's settings before login; never written


class ClientSession(MessageConnection):
    """One client; see the module docstring."""

    # Every attribute, declared: an instance __dict__ holding this many costs an idle client
    # ~1.6 KB (CPython shares dict keys only up to 30 attributes). Add new ones here.
    __slots__ = (
        "_attempt", "_closing", "_fbuf", "_last_sql", "_paused_since", "_plugged", "_raw_rest",
        "_read_route", "_rewriting", "_sent_terminate", "_set_text", "_skip_until_sync", "_syncing",
        "_task", "_unnamed_ready", "_write_paused", "checkout_failures", "cluster",
        "connected_at", "ctx", "database", "error_count", "fresh_since", "held",
        "held_in_batch", "holds_begins", "overrides", "params", "params_key", "pins", "prepared",
        "process_id", "query_count", "route", "routes_vary", "scanner", "secret_key", "server",
        "server_pool", "startup_params", "state", "statements", "transaction_mode", "user",
        "xact_count",
    )

    def __init__(self, ctx: ProxyContext) -> None:
        super().__init__(max_message=PQ_LARGE_MESSAGE_LIMIT)  # for the admin console's reads
        self.ctx = ctx
        self.state = State.LOGIN
        worker = ctx.worker  # the process id says which worker holds the client
        self.process_id = secrets.randbits(31) // worker.count * worker.count + worker.index
        self.secret_key = secrets.randbits(31)
        self.database = ""
        self.user = ""
        # What RESET goes back to, and the client's settings now: both the same shared
        # dict until the client changes one (own_params); login sets them.
        self.params: dict[str, str] = _NO_SETTINGS
        self.startup_params = _NO_SETTINGS
        self.params_key: tuple[tuple[str, str], ...] = ()
        self.cluster: Cluster | None = None
        self.transaction_mode = True
        self.server: ServerConnection | None = None
        self.server_pool: ServerPool | None = None
        self.scanner = FrontendScanner()
        self.connected_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._attempt: CheckoutAttempt | None = None
        # A server handed to us whose parameter sync has not finished: ours to give back
        # if the client leaves before the sync task runs (a task cancelled before it starts
        # never runs its own cleanup).
        self._syncing: tuple[ServerPool, ServerConnection] | None = None
        self._write_paused = False
        self._skip_until_sync = False
        self._closing = False  # Terminate received; close once the server has answered
        self._sent_terminate = False  # the client's Terminate went on (see after_terminate)
        self._plugged = False  # the pool has plugins: they see chunks on the relay too
        # Routing: the client's custom-command choices, a BEGIN answered but not yet sent,
        # named statements' SQL (to route a Bind), the current transaction's route.
        self.overrides = NO_OVERRIDES  # see own_overrides
        self.held: HeldTransaction | None = None
        # A BEGIN inside the extended-protocol batch being routed: read-only or not.
        self.held_in_batch: bool | None = None
        self.statements: dict[str, str] = NO_STATEMENTS  # idle._statement_of
        self.route: Route | None = None
        self.routes_vary = False  # set at login from the pool: can a route differ?
        self.holds_begins = False  # ... and is there a choice a BEGIN should wait for?
        # The server holds session state of this client's (transaction mode): keep it.
        self.pins = 0  # PIN_* bits of frontend/pins.py
        # SHOW CLIENTS: batches answered, transactions ended, errors relayed.
        self.query_count = self.xact_count = self.error_count = 0
        self.connected_at = time.time()
        self._paused_since = 0.0
        # Named statements in transaction mode (frontend/statements.py): the mapping, and
        # the slow path's state: rewriting every chunk, an incomplete statement message
        # waiting for its end, raw bytes still owed to a streamed message.
        self.prepared = ClientStatements()
        self._rewriting = False
        self._unnamed_ready = False
        self._fbuf = NO_PENDING
        self._raw_rest = 0
        self._set_text: bytes | None = None  # SET text awaiting the server's confirmation
        self._read_route = False  # this transaction's server was chosen for a read
        self._last_sql = b""
        self.checkout_failures = 0  # failed checkouts so far (checkout_failure_limit)
        self.fresh_since = 0.0  # read_your_writes: when this client last used a primary

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.state is not State.LOGIN:  # back from the parking lot
            unparked(self, transport)
            return
        super().connection_made(transport)
        tune_socket(transport, self.ctx.socket_options)
        self.ctx.client_connected(self)
        if self.ctx.too_many_clients(ADMIN_HEADROOM):
            # Refused at accept, as PgBouncer does: a flood of connections that never log
            # in must not hold fds and sessions until client_login_timeout. A few slots
            # past max_client_conn stay open for the admin console (logins check the
            # exact limit for everyone else).
            self.fatal(ProxyError("no more connections allowed (max_client_conn)",
                                  sqlstate=TOO_MANY_CONNECTIONS, severity="FATAL"))
            return
        self._task = asyncio.get_running_loop().create_task(self._login_then_serve())

    def data_received(self, data: bytes) -> None:
        server = self.server
        if server is not None:  # the relay: frame by header, forward in one write
            scanner = self.scanner
            if self._read_route and self._routed_anew(server, data):
                return
            self._last_sql = data  # what CREATE TABLE said, if one completes (see _pins)
            try:
                syncs, term = scanner.feed(data)
            except ProtocolViolation as exc:
                if scanner.entry_head:  # the start of the bad header went to the server
                    server.broken = True
                self.fatal(exc)
                return
            if scanner.command >= 0 and linked_command(self, server, data):
                return
            if self._plugged and checked_chunk(self, server, data, term):
                return
            if scanner.set_parse >= 0:
                remember_set_parse(self, server, data)
            if self._rewriting or (scanner.named_parse and self.transaction_mode):
                relay_rewritten(self, server, data, syncs, term)
                return
            if scanner.unnamed_parse >= 0:
                remember_unnamed(self, data)
            if term < 0:
                server.forward(data, syncs)
            else:
                self._terminate(server, data[:term], syncs)
            return
        if self.state is State.IDLE:
            if not self._rbuf:  # the chunk stands for the buffer (MessageConnection._whole)
                self._whole = data
            self._rbuf += data
            process_idle(self)
            self._whole = None
            return
        super().data_received(data)  # login, admin, or waiting for a server: buffer
        if len(self._rbuf) > MAX_IDLE_BUFFER:
            self.pause_reading()

    def _routed_anew(self, server: ServerConnection, data: bytes) -> bool:
        """Input behind a read on a replica may write: route it on its own. True when
        ``data`` was taken here."""
        scanner = self.scanner
        if server.pending > 0:
            if scanner.in_batch or not scanner.at_boundary or server.status != IDLE:
                return False
            # Pipelined behind the read: it waits for the read's answer.
        elif scanner.in_batch and data[0] == QUERY and scanner.at_boundary \
                and server.status == IDLE:
            # A Query behind a read batch that was not synced (asyncpg prepares with a
            # Flush, then sends COPY ... FROM STDIN): a Sync of ours ends the batch (its
            # ReadyForQuery is dropped), the replica goes back once it has answered all
            # of it, and the Query waits to be routed on its own.
            scanner.in_batch = False
            server.expect([(DROP_READY, b"")])
            server.forward(SYNC_MESSAGE, 1)
        else:
            return False
        self._rbuf += data
        if len(self._rbuf) > MAX_IDLE_BUFFER:
            self.pause_reading()
        return True

    def _terminate(self, server: ServerConnection, before: bytes, syncs: int) -> None:
        """Terminate arrived: whatever came before it still gets its answer (PostgreSQL
        runs it and replies before it reads the Terminate), then the connection closes."""
        if before:
            server.forward(before, syncs)
        self.after_terminate(server)

    def after_terminate(self, server: ServerConnection) -> None:
        if server.pending <= 0 or server.in_copy:
            self.close()
            return
        self._closing = True
        self.pause_reading()
        if self.scanner.voidable:
            # Some answers owed may never come: PostgreSQL skips queries behind a failed
            # extended-protocol message up to a Sync. It does exactly what it would for
            # this client if the Terminate goes on too: answers what it runs, then closes
            # (and the client with it, on_server_lost); the connection is not pooled.
            self._sent_terminate = server.broken = True  # it closes: never pool it
            server.forward(TERMINATE_MESSAGE, 0)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._attempt is not None:
            self._attempt.cancel()
            self._attempt = None
        if self._syncing is not None:
            syncing_pool, syncing_server = self._syncing
            self._syncing = None
            syncing_pool.discard(syncing_server)  # possibly mid-query: never reuse it
        server, pool = self.server, self.server_pool
        self.server = self.server_pool = None
        if server is not None and pool is not None:
            self._give_back(server, pool)
        self.ctx.client_disconnected(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.server is not None:
            self.server.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.server is not None:
            self.server.resume_reading()

    # --- errors -------------------------------------------------------------------
    def fatal(self, exc: ProxyError) -> None:
        """Send a FATAL ErrorResponse and close."""
        self.write(be.error_response(exc.message, exc.sqlstate, "FATAL", exc.detail))
        self.close()

    def error(self, exc: ProxyError) -> None:
        """Send an ErrorResponse; the caller decides about ReadyForQuery."""
        self.write(be.error_response(exc.message, exc.sqlstate, exc.severity, exc.detail))

    # --- login --------------------------------------------------------------------
    async def _login_then_serve(self) -> None:
        from .login import login  # the login module imports this one for typing

        try:
            async with asyncio.timeout(self.ctx.client_login_timeout):
                proceed = await login(self)
        except ProxyError as exc:
            self.fatal(exc)
            return
        except TimeoutError:
            self.fatal(ProxyError("canceling authentication due to timeout",
                                  sqlstate="08006"))
            return
        except ConnectionClosed:
            self.close()
            return
        except Exception:  # a bug of ours: tell this client, never leave it hanging
            log.exception("login of client %s failed", self.process_id)
            self.fatal(ProxyError("internal error in the pooler", sqlstate=INTERNAL_ERROR))
            return
        if not proceed:
            self.close()
            return
        if self.state is State.ADMIN:
            try:
                await self.ctx.serve_admin(self)
            except Exception:
                log.exception("admin session %s failed", self.process_id)
                self.fatal(ProxyError("internal error in the pooler", sqlstate=INTERNAL_ERROR))
            return
        self.state = State.IDLE
        self._task = None
        process_idle(self)

    # --- idle: the next transaction -------------------------------------------------
    def own_statements(self) -> dict[str, str]:
        """This client's named-statement texts, to change: its own dict, not NO_STATEMENTS."""
        if self.statements is NO_STATEMENTS:
            self.statements = {}
        return self.statements

    def own_overrides(self) -> Overrides:
        """This client's own Overrides, made when a custom command first runs."""
        if self.overrides is NO_OVERRIDES:
            self.overrides = Overrides()
        return self.overrides

    @property
    def router(self) -> Router:
        assert self.cluster is not None
        return self.cluster.router

    def begin_transaction(self, route: Route) -> None:
        """Ask for a server of ``route`` for the transaction the buffered input starts."""
        cluster = self.cluster
        assert cluster is not None
        self.state = State.CHECKOUT
        self.route = route
        self._read_route = route.role != PRIMARY and self.routes_vary
        if route is cluster.fixed_route:
            cluster.fixed_route_count += 1  # counted apart: an attribute, not a dict key
        else:
            if cluster.logs_routes:
                log.debug("client %s: shard %d, %s (%s)", self.process_id, route.shard,
                          route.role, route.reason)
            cluster.count_route(route)
        try:
            taken = cluster.take_now(route.shard, route.role, self.fresh_since)
            if taken is not None:
                self.server_ready(taken[0], taken[1])
                return
            self._attempt = cluster.wait_for(self, route.shard, route.role, self.fresh_since)
        except ProxyError as exc:
            self.checkout_failed(exc)

    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None:
        """A server for us (called by the pool, maybe synchronously)."""
        self._attempt = None
        if self.is_closed:
            pool.release(server)
            return
        if server.synced_key != self.params_key:
            if sync_statements(self.params, server.applied, server.defaults):
                self._set_up_then_link(pool, server)
                return
            server.synced_key = self.params_key
        if self.held is not None:
            self._set_up_then_link(pool, server)
            return
        self._link(server, pool)

    def _set_up_then_link(self, pool: ServerPool, server: ServerConnection) -> None:
        self._syncing = (pool, server)
        self._task = asyncio.get_running_loop().create_task(sync_then_link(self, pool, server))

    def checkout_failed(self, exc: ProxyError) -> None:
        checkout_failed(self, exc)

    def refuse_in_failed_transaction(self) -> None:
        refuse(self, ProxyError("current transaction is aborted, commands ignored until end "
                                "of transaction block", sqlstate=IN_FAILED_TRANSACTION))

    def fatal_shutdown(self) -> None:
        self.fatal(AdminShutdown())

    def rejoin_pool(self) -> Cluster | None:
        return rejoin_pool(self)

    def waiting_for(self, now: float) -> float:
        return waiting_for(self, now)

    def wait_for_resume(self) -> None:
        wait_for_resume(self)

    @property
    def peer(self) -> tuple[str, int]:
        """The client's address and port ("unix", 0 over a Unix socket)."""
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return str(peer[0]), int(peer[1])
        return "unix", 0

    # --- linked: the relay ----------------------------------------------------------
    def _link(self, server: ServerConnection, pool: ServerPool) -> None:
        self.server, self.server_pool = server, pool
        self.state = State.LINKED
        self._task = None
        server.client = self
        if self._write_paused:
            server.pause_reading()
        if server.write_paused:
            self.pause_reading()
        elif self._reading_paused:
            self.resume_reading()
        # A new server: the unnamed statement is not there (pgx's describe_exec replays it).
        self._unnamed_ready = False
        if self.transaction_mode and self.prepared.unnamed_parse and not self._rewriting:
            self._rewriting = True  # this transaction's chunks go through the mapping
            self._raw_rest = 0
        self._plugged = False  # what waited was seen by the plugins on the idle path
        if self._rbuf:
            self.data_received(self.take_buffered())
        cluster = self.cluster
        self._plugged = cluster is not None and cluster.router.plugins is not None

    def on_server_answered(self, server: ServerConnection, status: int, tags: int) -> None:
        """The server answered everything sent (a ReadyForQuery, outside COPY), leaving
        transaction ``status`` and dirtying CommandComplete ``tags``. At 'I', in transaction
        mode, give it back, unless the client already sent part of its next batch or the
        session holds state that lives on that server connection."""
        self.query_count += 1
        if status == IDLE:
            self.xact_count += 1
        scanner = self.scanner
        if scanner.voidable:  # none was skipped (see FrontendScanner.voidable)
            scanner.voidable = 0
            scanner.voiding = False
        if tags & TAG_DEALLOCATED:  # now, not at the transaction's end: names may follow
            tags = self._deallocated(server)
        if self._closing:  # the client said Terminate after this batch: it has its answer
            self.close()
            return
        if self._set_text is not None:
            text, self._set_text = self._set_text, None
            if status == IDLE and tags & TAG_SET:
                remember_setting(self, text)
        if (status != IDLE or not self.transaction_mode or scanner.in_batch
                or not scanner.at_boundary):
            return
        if ((self.pins or scanner.session_lock or tags or scanner.creates_temp)
                and self._still_pinned(server, tags)):
            return
        pool = self.server_pool
        assert pool is not None
        self.server = self.server_pool = None
        self.state = State.IDLE
        self._last_sql = b""  # an idle client keeps no chunk (it may be 256 KB of INSERT)
        if self._reading_paused:
            self.resume_reading()
        if server._reading_paused:
            server.resume_reading()
        if scanner.named_parse and not self.transaction_mode:
            self._note_named_parse(server)
        if pool.role == PRIMARY and pool.read_your_writes:
            self.fresh_since = time.monotonic()  # its next reads must see this transaction
        pool.release(server)
        if self.ctx.shutting_down:
            self.fatal(AdminShutdown())
        elif self._rbuf:  # input that waited for this answer (see data_received)
            process_idle(self)

    def _still_pinned(self, server: ServerConnection, tags: int) -> bool:
        """Update the client's pins from this transaction (frontend/pins.py); True while
        any holds, and then the server will be reset with DISCARD ALL after the client."""
        scanner = self.scanner
        pins = updated_pins(self.pins, tags, scanner.session_lock, self._last_sql,
                            scanner.creates_temp)
        scanner.session_lock = scanner.creates_temp = False
        server.take_session_tags()
        if pins and not self.pins:
            log.debug("client %s pinned to server %s", self.process_id, server.target.name)
        self.pins = pins
        if pins:
            server.dirt |= TAG_DISCARD
        return bool(pins)

    def _deallocated(self, server: ServerConnection) -> int:
        """The client's DEALLOCATE ALL (or DISCARD ALL) ran: its statement names and the
        server's are gone. Returns the session tags left to look at."""
        self.prepared.named.clear()
        self.pins &= ~PIN_PREPARE
        return server.take_deallocation()

    def on_server_lost(self, server: ServerConnection) -> None:
        """The server connection broke under us (its pool bans it). The relay held back any
        incomplete message, so the client's stream ends at a message boundary: with an
        ERROR and ReadyForQuery when the lost statement ran outside a transaction block in
        transaction mode (nothing of the client's was lost with the server: the session
        goes on, on another server), else with a FATAL 08006. Only when part of a message
        too big to hold already went out is the connection just closed."""
        pool = self.server_pool
        self.server = self.server_pool = None
        self._set_text = None
        if self._sent_terminate:  # it closed at the client's Terminate: no failure
            if pool is not None:
                pool.discard(server)
            self.close()
            return
        if server.fatal_relayed:  # the client has PostgreSQL's own FATAL: it ends here
            self.close()
            return
        if server.streamed_partial:
            log.warning("server %s closed mid-message; closing client %s",
                        server.target.name, self.process_id)
            self.close()
            return
        lost = ProxyError(f"server connection lost: {server.target.name} closed the "
                          "connection unexpectedly", sqlstate=CONNECTION_FAILURE)
        scanner = self.scanner
        if (self.transaction_mode and not self.pins and server.status == IDLE
                and server.pending == 1 and not scanner.in_batch and scanner.at_boundary
                and not self._closing):
            self.error(lost)
            self.write(be.READY_IDLE)
            self.state = State.IDLE
            if self._reading_paused:
                self.resume_reading()
            if self._rbuf:  # input that waited for the lost answer
                process_idle(self)
            return
        self.fatal(ProxyError(lost.message, sqlstate=CONNECTION_FAILURE, severity="FATAL"))

    def on_parameter_status(self, name: str, value: str) -> None:
        if self.params.get(name) != value:
            if self.cluster is not None and self.cluster.settings.log_parameter_changes:
                log.info("client %s: %s changed from %r to %r", self.process_id, name,
                         self.params.get(name, ""), value)
            self.own_params()[name] = value
            self.params_changed()

    def own_params(self) -> dict[str, str]:
        """This client's settings, to change: its own copy of the shared startup ones."""
        if self.params is self.startup_params:
            self.params = dict(self.params)
        return self.params

    def params_changed(self) -> None:
        if self.params == self.startup_params:  # back to them (RESET ALL): shared again
            self.params = self.startup_params
        self.params_key = shared_params_key(tuple(sorted(self.params.items())))

    def _note_named_parse(self, server: ServerConnection) -> None:
        """A named Parse left a prepared statement on ``server``: deallocate at check-in."""
        server.dirt |= TAG_PREPARE
        self.scanner.named_parse = False

    def _give_back(self, server: ServerConnection, pool: ServerPool) -> None:
        """The client left while holding ``server``: roll it back or close it unless clean."""
        server.client = None
        server.resume_reading()
        scanner = self.scanner
        if scanner.named_parse:
            self._note_named_parse(server)
        if scanner.session_lock:  # a session advisory lock may be held: DISCARD ALL
            scanner.session_lock = False
            server.dirt |= TAG_DISCARD
        if scanner.creates_temp:  # a temporary relation may be there: DISCARD TEMP
            scanner.creates_temp = False
            server.dirt |= TAG_CREATED
        boundary = scanner.at_boundary and not scanner.in_batch
        if boundary and server.is_idle:
            pool.release(server)
        elif boundary and not server.broken and server.pending <= 0 and not server.in_copy:
            pool.release_after_rollback(server)
        else:
            pool.discard(server)
