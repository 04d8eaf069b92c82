"""ServerPool: the connections to one server address for one (pool, user).

Bookkeeping follows bb8/psycopg_pool: idle connections in a deque (FIFO when
server_round_robin, else LIFO), a queue of waiters that a checked-in connection is handed to
directly, and a waiter that times out can never lose a connection handed to it. The reserve
pool (PgBouncer's reserve_pool_size / reserve_pool_timeout) lets a waiter that has waited
long enough open connections beyond pool_size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..backend.server import ServerConnection, ServerTarget, open_server
from ..protocol.errors import PoolTimeout, ProxyError, ServerError

log = logging.getLogger(__name__)

RESET_TIMEOUT = 5.0  # seconds a reset/rollback at check-in may take before we close instead


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


class ServerPool:
    """Connections to one address; see the module docstring."""

    def __init__(self, target: ServerTarget, settings: PoolSettings) -> None:
        self.target = target
        self.settings = settings
        self.idle: deque[ServerConnection] = deque()
        self.active: set[ServerConnection] = set()
        self.opening = 0
        self.waiters: deque[asyncio.Future[ServerConnection]] = deque()
        self._wait_started: dict[asyncio.Future[ServerConnection], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.errors = 0

    # --- counters (SHOW POOLS vocabulary) -------------------------------------------
    @property
    def size(self) -> int:
        return len(self.idle) + len(self.active) + self.opening

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
        return max((now - t for t in self._wait_started.values()), default=0.0)

    # --- checkout / checkin -----------------------------------------------------------
    async def checkout(self, timeout: float | None = None) -> ServerConnection:
        """A logged-in, idle connection within ``timeout`` (default connect_timeout)."""
        if self.closed:
            raise ServerError(f"pool for {self.target.name} is closed")
        server = self._take_idle(time.monotonic())
        if server is not None:
            return self._lend(server)
        if self.size < self.settings.pool_size:
            return self._lend(await self._open())
        deadline = time.monotonic() + (self.settings.connect_timeout if timeout is None
                                       else timeout)
        return self._lend(await self._wait(deadline))

    def _lend(self, server: ServerConnection) -> ServerConnection:
        self.active.add(server)
        return server

    def _take_idle(self, now: float) -> ServerConnection | None:
        while self.idle:
            server = self.idle.popleft() if self.settings.round_robin else self.idle.pop()
            if server.is_usable and now - server.created_at < self.settings.server_lifetime:
                return server
            server.terminate()
        return None

    async def _open(self) -> ServerConnection:
        self.opening += 1
        try:
            server = await open_server(self.target, self.settings.connect_timeout,
                                       self.settings.application_name)
        except ProxyError:
            self.errors += 1
            raise
        finally:
            self.opening -= 1
        server.on_lost = self._on_lost
        return server

    async def _wait(self, deadline: float) -> ServerConnection:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ServerConnection] = loop.create_future()
        self.waiters.append(fut)
        self._wait_started[fut] = time.monotonic()
        try:
            return await self._wait_for(fut, deadline)
        finally:
            self._wait_started.pop(fut, None)
            with contextlib.suppress(ValueError):
                self.waiters.remove(fut)

    async def _wait_for(self, fut: asyncio.Future[ServerConnection],
                        deadline: float) -> ServerConnection:
        s = self.settings
        reserve_at = time.monotonic() + s.reserve_pool_timeout if s.reserve_pool_size else None
        while True:
            now = time.monotonic()
            wake = deadline if reserve_at is None else min(deadline, reserve_at)
            try:
                return await asyncio.wait_for(asyncio.shield(fut), max(0.0, wake - now))
            except TimeoutError:
                if fut.done() and not fut.cancelled():
                    return fut.result()  # handed over just as we timed out: keep it
                if reserve_at is not None and time.monotonic() >= reserve_at:
                    reserve_at = None
                    if self.size < s.pool_size + s.reserve_pool_size:
                        fut.cancel()
                        return await self._open()
                if time.monotonic() >= deadline:
                    fut.cancel()
                    raise PoolTimeout(
                        "could not get connection from the pool - AllServersDown") from None
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self.checkin(fut.result())  # never lose a connection handed to us
                else:
                    fut.cancel()
                raise

    def checkin(self, server: ServerConnection) -> None:
        """Take back a clean, idle connection (or close it if it is not)."""
        self.active.discard(server)
        if self.closed or not server.is_usable or not server.is_idle or server.dirt:
            self._discard(server)
            return
        if time.monotonic() - server.created_at >= self.settings.server_lifetime:
            self._discard(server)
            return
        server.detach()
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                self.active.add(server)
                fut.set_result(server)
                return
        self.idle.append(server)

    def release(self, server: ServerConnection) -> None:
        """Check in after use: reset first if the client left the session dirty."""
        sql = server.reset_sql(self.settings.server_reset_query,
                               self.settings.cleanup_server_connections)
        if not sql or not server.is_usable or not server.is_idle:
            if server.dirt and not sql:
                server.dirt.clear()  # cleanup disabled: pgcat reuses it as is
            self.checkin(server)
            return
        self._spawn(self._reset_then_checkin(server, sql))

    def release_after_rollback(self, server: ServerConnection) -> None:
        """A client left mid-transaction: roll back, reset, then check in."""
        self._spawn(self._reset_then_checkin(server, "ROLLBACK"))

    async def _reset_then_checkin(self, server: ServerConnection, sql: str) -> None:
        server.detach()
        try:
            async with asyncio.timeout(RESET_TIMEOUT):
                errors = await server.simple_query(sql)
                if not errors and sql == "ROLLBACK":
                    follow = server.reset_sql(self.settings.server_reset_query,
                                              self.settings.cleanup_server_connections)
                    errors = await server.simple_query(follow) if follow else []
                    sql = follow or sql
        except (TimeoutError, ProxyError) as exc:
            log.warning("reset of server %s failed: %s", self.target.name, exc)
            self._discard(server)
            return
        if errors:
            log.warning("reset of server %s failed: %s", self.target.name, errors[0].text)
            self._discard(server)
            return
        if sql != "ROLLBACK":
            server.after_reset()
        server.dirt.clear()
        self.checkin(server)

    def discard(self, server: ServerConnection) -> None:
        """A connection that must never be reused (broken, or mid-message)."""
        self._discard(server)

    def _discard(self, server: ServerConnection) -> None:
        self.active.discard(server)
        with contextlib.suppress(ValueError):
            self.idle.remove(server)
        server.on_lost = None
        server.terminate()
        self._refill_for_waiters()

    def _on_lost(self, server: ServerConnection) -> None:
        self.active.discard(server)
        with contextlib.suppress(ValueError):
            self.idle.remove(server)
        self._refill_for_waiters()

    def _refill_for_waiters(self) -> None:
        """Capacity was freed: open a connection for the first waiter, if any."""
        if self.closed or not any(not f.done() for f in self.waiters):
            return
        if self.size < self.settings.pool_size:
            self._spawn(self._open_for_waiter())

    async def _open_for_waiter(self) -> None:
        try:
            server = await self._open()
        except ProxyError as exc:
            for fut in self.waiters:
                if not fut.done():
                    fut.set_exception(exc)
                    break
            return
        self.checkin(server)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- maintenance --------------------------------------------------------------
    async def maintain(self, now: float) -> None:
        """Close idle connections past idle_timeout / server_lifetime; keep min_pool_size."""
        s = self.settings
        for server in list(self.idle):
            expired = now - server.created_at >= s.server_lifetime
            too_idle = now - server.last_used >= s.idle_timeout and self.size > s.min_pool_size
            if expired or too_idle or not server.is_usable:
                self._discard(server)
        while not self.closed and self.size < s.min_pool_size:
            try:
                self.checkin(self._lend(await self._open()))
            except ProxyError as exc:
                log.warning("could not open min_pool_size connection to %s: %s",
                            self.target.name, exc)
                return

    def close(self) -> None:
        """Close idle connections now; busy ones are closed when checked in."""
        self.closed = True
        for server in list(self.idle):
            self._discard(server)
        for fut in self.waiters:
            if not fut.done():
                fut.set_exception(ServerError(f"pool for {self.target.name} was closed"))
        for task in self._tasks:
            task.cancel()
