"""ServerPool: the connections to one server address for one (pool, user).

Checkout is event-driven, as in PgBouncer: a request either gets an idle connection at once,
or joins a FIFO of waiters; a connection checked in is handed straight to the first waiter
(``server_ready`` callback), with no task switch on the hot path. A waiter whose
connect_timeout passes gets ``checkout_failed``: one sweep every WAIT_SWEEP seconds while
anyone waits checks the deadlines, instead of a timer per wait (uvloop timers cost more
than the rest of a checkout). Idle connections are reused FIFO when
server_round_robin (pgcat's default), else LIFO. The reserve pool (PgBouncer's
reserve_pool_size / reserve_pool_timeout) lets a waiter that has waited long enough open
connections beyond pool_size.

Health (pgcat §5): an idle connection unused for healthcheck_delay is checked with ``;``
(within healthcheck_timeout) before a client gets it. A failed check, a failed connect or a
connection that breaks while in use bans a replica for ban_time: its waiters are failed at
once so they move on to the next candidate. Primaries are never banned. The role is state:
health checks that follow promotions change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from time import monotonic  # a name, not time's attribute: compiled, a cheaper lookup
from typing import Any, Final, Protocol

from ..backend.mirror import Mirror
from ..backend.server import XACT_TIME_BOUNDS, ServerConnection, ServerTarget, open_server
from ..protocol.errors import PoolTimeout, ProxyError, ServerError
from .counters import Averages, Totals

log = logging.getLogger(__name__)

RESET_TIMEOUT: Final = 5.0  # seconds a reset/rollback at check-in may take before we close instead
WAIT_SWEEP: Final = 0.05  # seconds between checks of waiters' connect/reserve_pool timeouts
LOG_EVERY: Final = 10.0  # seconds between repeated log lines about the same ban
ALL_SERVERS_DOWN: Final = "could not get connection from the pool - AllServersDown"


@dataclass(frozen=True)
class PoolSettings:
    """Effective settings for one (pool, user), all durations in seconds."""

    pool_size: int
    min_pool_size: int = 0
    connect_timeout: float = 1.0
    idle_timeout: float = 600.0
    server_lifetime: float = 3600.0
    reserve_pool_size: int = 0
    reserve_pool_timeout: float = 5.0
    round_robin: bool = True
    server_reset_query: str = ""
    cleanup_server_connections: bool = True
    application_name: str | None = None
    healthcheck_delay: float = 30.0
    healthcheck_timeout: float = 1.0
    ban_time: float = 60.0
    prepared_statements_cache_size: int = 0  # per server connection; 0: our default
    prewarm: tuple[str, ...] = ()  # run on every new connection (prewarmer plugin)


class Waiter(Protocol):
    """Someone waiting for a connection: exactly one of the two is called, once."""

    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None: ...
    def checkout_failed(self, pool: ServerPool, exc: ProxyError) -> None: ...


class ServerPool:
    """Connections to one address; see the module docstring."""

    def __init__(self, target: ServerTarget, settings: PoolSettings) -> None:
        self.target = target
        self.settings = settings
        self.idle: deque[ServerConnection] = deque()
        self.active: set[ServerConnection] = set()
        self.opening = 0
        self.waiters: OrderedDict[Waiter, float] = OrderedDict()  # -> when it started waiting
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.errors = 0
        self.checking = 0  # idle connections being health-checked
        # One control-plane question at a time (role, lag, catalog checks start together):
        # the second finds the first's connection idle instead of opening another.
        self._asking = asyncio.Lock()
        self.role = target.role
        self.banned_until = 0.0  # monotonic; 0: not banned
        self.ban_reason = ""  # the last one, for the admin console and logs
        self._ban_logged_at = 0.0
        self.errors_seen = 0  # errors at the last role check (see Cluster.follow_roles)
        self.banned_at = 0.0  # wall clock of the last ban, for SHOW BANS
        self.on_banned: Callable[[ServerPool, str, float], None] | None = None
        self.totals = Totals()  # of closed connections and of waits (pool/counters.py)
        self.retired = False  # replaced by a reload: serves its waiters, then closes
        self.reconnect_before = 0.0  # admin RECONNECT: older connections close at check-in
        # Replication (pool/lag.py): how far this replica has replayed, how far behind.
        self.replay_lsn = 0
        self.lag_bytes = 0
        self.lag_ms = 0
        self.lagging = False  # past ban_replica_lag(_bytes): no reads until it catches up
        self.read_your_writes = False  # its cluster's setting, read at each check-in
        self.averages = Averages()  # of the last AVERAGE_PERIOD (update_averages)
        self.xact_buckets = [0] * (len(XACT_TIME_BOUNDS) + 1)  # filled by its connections
        self._averaged = Totals()

    # --- counters (SHOW POOLS vocabulary) -------------------------------------------
    @property
    def size(self) -> int:
        return len(self.idle) + len(self.active) + self.opening + self.checking

    @property
    def sv_idle(self) -> int:
        return len(self.idle)

    @property
    def sv_active(self) -> int:
        return len(self.active)

    @property
    def cl_waiting(self) -> int:
        return len(self.waiters)

    def maxwait(self, now: float) -> float:
        """How long the longest current waiter has waited, in seconds."""
        for started in self.waiters.values():
            return now - started
        return 0.0

    # --- checkout -------------------------------------------------------------------
    def take_idle(self) -> ServerConnection | None:
        """An idle connection right now, unless others are queued before us."""
        if self.waiters or self.closed or not self.idle:
            return None
        server = self._pop_idle()
        if server is not None:
            self.active.add(server)
            self.totals.assignments += 1
        return server

    def request(self, waiter: Waiter) -> ServerConnection | None:
        """An idle connection now, or None and ``waiter`` is called back later."""
        if self.closed:
            waiter.checkout_failed(self, ServerError(f"pool {self.target.name} is closed"))
            return None
        server = self.take_idle()
        if server is not None:
            return server
        self.waiters[waiter] = monotonic()
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(WAIT_SWEEP, self._sweep)
        if self.size < self.settings.pool_size:
            self._start_open(waiter)
        return None

    def cancel(self, waiter: Waiter) -> None:
        """The waiter is gone (client left): forget it."""
        self.waiters.pop(waiter, None)

    # --- bans -------------------------------------------------------------------------
    def is_banned(self, now: float) -> bool:
        if not self.banned_until:
            return False
        if now < self.banned_until:
            return True
        self.unban()
        return False

    def unban(self) -> None:
        if self.banned_until:
            log.info("server %s unbanned", self.target.name)
        self.banned_until = 0.0

    def ban(self, reason: str, now: float | None = None, seconds: float | None = None,
            announce: bool = True) -> None:
        """Take a replica out of rotation for ban_time (a primary is never banned, as in
        pgcat); its waiters fail over to the next candidate at once. ``announce``: tell
        the other workers (on_banned), unless the ban came from one of them."""
        self.errors += 1
        if self.role != "replica":
            return
        now = monotonic() if now is None else now
        self.banned_until = now + (self.settings.ban_time if seconds is None else seconds)
        self.banned_at = time.time()
        if self.ban_reason != reason or now - self._ban_logged_at > LOG_EVERY:
            log.warning("server %s banned%s for %.0f s: %s", self.target.name,
                        "" if announce else " by another worker", self.banned_until - now,
                        reason)
            self._ban_logged_at = now
        self.ban_reason = reason
        if announce and self.on_banned is not None:
            self.on_banned(self, reason, self.banned_until - now)
        while self.waiters:
            waiter, _ = self.waiters.popitem(last=False)
            waiter.checkout_failed(self, ServerError(f"server {self.target.name} is banned: "
                                                     f"{reason}"))

    async def observed_role(self, open_if_needed: bool) -> str | None:
        """"primary" or "replica" as the server says now (pg_is_in_recovery()), or None when
        it cannot be asked."""
        value = await self.ask("SELECT pg_is_in_recovery()", open_if_needed)
        if value is None:
            return None
        return "replica" if value == "t" else "primary"

    async def ask(self, sql: str, open_if_needed: bool) -> str | None:
        """The first value ``sql`` returns, or None when it cannot be asked. Asks on an idle
        pooled connection (its idle time untouched, so idle_timeout still applies); with
        none idle, opens one through the pool (within pool_size) only if
        ``open_if_needed``: no connection is ever kept just for this."""
        async with self._asking:
            return await self._ask(sql, open_if_needed)

    async def _ask(self, sql: str, open_if_needed: bool) -> str | None:
        s = self.settings
        server = self.take_idle() if self.idle else None
        last_used = server.last_used if server is not None else 0.0
        try:
            async with asyncio.timeout(s.connect_timeout + s.healthcheck_timeout):
                if server is None and open_if_needed:
                    server = await self.checkout()
                    last_used = monotonic()
                if server is None:
                    return None
                value = await server.query_value(sql)
        except (TimeoutError, ProxyError):
            if server is not None:
                self.discard(server)
            return None
        self.checkin(server)
        server.last_used, server.last_answered = last_used, monotonic()
        return value

    def _pop_idle(self) -> ServerConnection | None:
        now = monotonic()
        lifetime = self.settings.server_lifetime
        stale = now - self.settings.healthcheck_delay
        while self.idle:
            server = self.idle.popleft() if self.settings.round_robin else self.idle.pop()
            # Bytes from an idle server were never asked for (a FATAL before it closes, say):
            # such a session cannot be trusted with a client.
            if server.is_usable and not server.has_unread and now - server.created_at < lifetime:
                if server.last_used > stale or server.last_answered > stale:
                    return server
                self._start_health_check(server)
                continue
            server.on_lost = None
            server.terminate()
        return None

    def _start_health_check(self, server: ServerConnection) -> None:
        self.checking += 1
        self._spawn(self._health_check(server))

    async def _health_check(self, server: ServerConnection) -> None:
        """pgcat's check of a connection idle past healthcheck_delay: ``;`` must answer
        within healthcheck_timeout, or the connection is closed and a replica banned."""
        try:
            async with asyncio.timeout(self.settings.healthcheck_timeout):
                errors = await server.simple_query(";")
        except (TimeoutError, ProxyError) as exc:
            errors = [exc]  # type: ignore[list-item]
        finally:
            self.checking -= 1
        if errors or not server.is_usable:
            server.on_lost = None
            server.terminate()
            self.ban("health check failed")
            self._refill_for_waiters()
            return
        self._put_back(server)

    def _sweep(self) -> None:
        """Fail waiters past connect_timeout; open reserve connections for those past
        reserve_pool_timeout. Waiters are in arrival order, so the scan stops early."""
        self._sweeper = None
        s = self.settings
        now = monotonic()
        while self.waiters:
            waiter, started = next(iter(self.waiters.items()))
            if now - started < s.connect_timeout:
                break
            del self.waiters[waiter]
            self.totals.wait_time += now - started
            waiter.checkout_failed(self, PoolTimeout(
                f"{ALL_SERVERS_DOWN} (waited {now - started:.1f} s for a server of "
                f"{self.target.name})"))
        if s.reserve_pool_size and self.size < s.pool_size + s.reserve_pool_size:
            overdue = sum(1 for started in self.waiters.values()
                          if now - started >= s.reserve_pool_timeout)
            for waiter in list(self.waiters)[:max(0, overdue - self.opening)]:
                if self.size >= s.pool_size + s.reserve_pool_size:
                    break
                self._start_open(waiter)
        if self.waiters and self._sweeper is None and not self.closed:
            self._sweeper = asyncio.get_running_loop().call_later(WAIT_SWEEP, self._sweep)

    def _serve_next(self, server: ServerConnection) -> bool:
        """Hand ``server`` to the first waiter; False when nobody waits."""
        if not self.waiters:
            return False
        waiter, started = self.waiters.popitem(last=False)
        self.totals.wait_time += monotonic() - started
        self.totals.assignments += 1
        self.active.add(server)
        waiter.server_ready(self, server)
        return True

    def _start_open(self, waiter: Waiter) -> None:
        """Open one connection for ``waiter``; counted at once, so capacity checks made in
        the same loop tick see it."""
        self.opening += 1
        self._spawn(self._open_for(waiter))

    async def _open_for(self, waiter: Waiter) -> None:
        try:
            server = await self._connect()
        except ProxyError as exc:
            self.opening -= 1
            if self.waiters.pop(waiter, None) is not None:
                waiter.checkout_failed(self, exc)
            self.ban(f"connect failed: {exc.message}")
            return
        self.opening -= 1
        self._adopt(server)
        self._put_back(server)

    async def _moved_addresses(self) -> frozenset[str]:
        """With the DNS cache: addresses of idle connections that the host name no longer
        resolves to (the cache refreshes every dns_max_ttl)."""
        dns = self.target.dns
        if dns is None or not self.idle:
            return frozenset()
        try:
            now = await dns.addresses(self.target.host, self.target.port)
        except OSError as exc:
            log.warning("DNS: cannot resolve %s: %s", self.target.host, exc)
            return frozenset()
        return frozenset(s.address for s in self.idle if s.address not in now)

    async def _connect(self) -> ServerConnection:
        """A new connection, prewarmed (pgcat's prewarmer plugin: its queries run on every
        new connection before a client gets it; a failure fails the connection)."""
        s = self.settings
        server = await open_server(self.target, s.connect_timeout, s.application_name)
        for sql in s.prewarm:
            try:
                async with asyncio.timeout(s.connect_timeout):
                    errors = await server.simple_query(sql)
                problem = errors[0].text if errors else ""
            except (TimeoutError, ProxyError) as exc:
                problem = str(exc) or "timed out"
            if problem:
                server.terminate()
                raise ServerError(f"prewarm query on {self.target.name} failed: {problem}")
        return server

    # --- control-plane checkout ------------------------------------------------------
    async def checkout(self) -> ServerConnection:
        """Awaitable checkout for the proxy's own use (learning parameters, tests)."""
        future: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()
        waiter = _FutureWaiter(future)
        server = self.request(waiter)
        if server is not None:
            return server
        try:
            return await future
        except asyncio.CancelledError:
            self.cancel(waiter)
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result())
            raise

    # --- checkin --------------------------------------------------------------------
    def release(self, server: ServerConnection) -> None:
        """Check in after use: reset first if the client left the session dirty."""
        server.client = None
        s = self.settings
        if server.take_session_tags():
            sql = server.reset_sql(s.server_reset_query, s.cleanup_server_connections)
            if sql and not server.broken and server.is_idle:
                self._spawn(self._reset_then_checkin(server, sql))
                return
            server.dirt = 0  # cleanup disabled: reused as it is, as pgcat does
        self.checkin(server)

    def release_after_rollback(self, server: ServerConnection) -> None:
        """A client left mid-transaction: roll back, reset, then check in."""
        server.detach()
        self._spawn(self._reset_then_checkin(server, "ROLLBACK"))

    def checkin(self, server: ServerConnection) -> None:
        """Take back a clean, idle connection (or close it if it is not)."""
        self.active.discard(server)
        now = monotonic()
        if (self.closed or server.broken or server.is_closed or not server.is_idle
                or server.expected or (self.retired and not self.waiters)
                or server.created_at < self.reconnect_before
                or now - server.created_at >= self.settings.server_lifetime):
            self._discard(server)
            return
        server.last_used = now
        if not self.waiters or not self._serve_next(server):
            self.idle.append(server)

    def _put_back(self, server: ServerConnection) -> None:
        """A connection just opened or health-checked: to a waiter, else idle. A pool that
        was retired or closed meanwhile has no sweep left to close it: closed now (the
        soak's leak: connections opened for a reload's old pool stayed open for good)."""
        server.last_used = monotonic()
        if self._serve_next(server):
            return
        if self.retired or self.closed:
            self._discard(server)
            return
        self.idle.append(server)

    async def _reset_then_checkin(self, server: ServerConnection, sql: str) -> None:
        s = self.settings
        try:
            async with asyncio.timeout(RESET_TIMEOUT):
                errors = await server.simple_query(sql)
                if not errors and sql == "ROLLBACK":
                    sql = server.reset_sql(s.server_reset_query, s.cleanup_server_connections)
                    errors = await server.simple_query(sql) if sql else []
        except (TimeoutError, ProxyError) as exc:
            log.warning("reset of server %s failed: %s", self.target.name, exc)
            self._discard(server)
            return
        if errors:
            log.warning("reset of server %s failed: %s", self.target.name, errors[0].text)
            self._discard(server)
            return
        if sql:
            server.after_reset()
        server.dirt = 0
        self.checkin(server)

    def discard(self, server: ServerConnection) -> None:
        """A connection that must never be reused (broken, or mid-message)."""
        server.detach()
        self._discard(server)

    def _discard(self, server: ServerConnection) -> None:
        self.totals.fold(server)
        self.active.discard(server)
        with contextlib.suppress(ValueError):
            self.idle.remove(server)
        server.on_lost = None
        server.terminate()
        self._refill_for_waiters()

    def _on_lost(self, server: ServerConnection) -> None:
        self.totals.fold(server)
        if server in self.active:  # broke while in use: the server is in trouble
            self.ban("server connection lost")
        self.active.discard(server)
        with contextlib.suppress(ValueError):
            self.idle.remove(server)
        self._refill_for_waiters()

    def _refill_for_waiters(self) -> None:
        """Capacity was freed: open a connection for the first waiter, if any."""
        if not self.closed and self.waiters and self.size < self.settings.pool_size:
            self._start_open(next(iter(self.waiters)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- maintenance --------------------------------------------------------------
    async def maintain(self, now: float) -> None:
        """Close idle connections past idle_timeout / server_lifetime; keep min_pool_size."""
        s = self.settings
        moved = await self._moved_addresses()
        for server in list(self.idle):
            if server.address in moved:
                self._discard(server)  # its host name points elsewhere now
                continue
            expired = now - server.created_at >= s.server_lifetime
            too_idle = now - server.last_used >= s.idle_timeout and self.size > s.min_pool_size
            if expired or too_idle or not server.is_usable:
                self._discard(server)
        while not self.closed and self.size < s.min_pool_size:
            self.opening += 1
            try:
                server = await self._connect()
            except ProxyError as exc:
                log.warning("could not open min_pool_size connection to %s: %s",
                            self.target.name, exc)
                return
            finally:
                self.opening -= 1
            self._adopt(server)
            self._put_back(server)

    def _adopt(self, server: ServerConnection) -> None:
        """A new connection of this pool's."""
        server.mirrors = [Mirror(target, self.settings.connect_timeout)
                          for target in self.target.mirrors]
        server.xact_buckets = self.xact_buckets  # one histogram per address
        server.on_lost = self._on_lost
        server.statements.set_capacity(self.settings.prepared_statements_cache_size)

    def counters(self) -> Totals:
        """This address's counters: closed connections' and live ones'."""
        return self.totals.with_live([*self.idle, *self.active])

    def update_averages(self, seconds: float) -> None:
        now = self.counters()
        self.averages = Averages.between(now, self._averaged, seconds)
        self._averaged = now

    def reconnect(self) -> None:
        """Admin RECONNECT: connections opened before now close when released."""
        self.reconnect_before = monotonic()
        for server in list(self.idle):
            self._discard(server)

    def retire(self) -> None:
        """A reload replaced this pool: idle connections close now, busy ones serve the
        clients already waiting here, then close at check-in."""
        self.retired = True
        for server in list(self.idle):
            self._discard(server)

    def close(self) -> None:
        """Close idle connections now; busy ones are closed when checked in."""
        self.closed = True
        for server in list(self.idle):
            self._discard(server)
        if self._sweeper is not None:
            self._sweeper.cancel()
        while self.waiters:
            waiter, _ = self.waiters.popitem(last=False)
            waiter.checkout_failed(self, ServerError(f"pool {self.target.name} was closed"))
        for task in self._tasks:
            task.cancel()


class _FutureWaiter:
    """Adapts the callback interface to a future, for ``ServerPool.checkout``."""

    def __init__(self, future: asyncio.Future[ServerConnection]) -> None:
        self.future = future

    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None:
        if self.future.done():
            pool.release(server)
        else:
            self.future.set_result(server)

    def checkout_failed(self, pool: ServerPool, exc: ProxyError) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
