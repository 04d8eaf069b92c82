"""auth_query: one pool's lookup of users' secrets in PostgreSQL, its connection and its cache.

The query runs as auth_query_user on the pool's primary (shard 0), on a connection of its own
that no client ever gets, kept open between lookups and replaced after any error. pgcat
replaces ``$1`` by the user name as raw text (a name with a quote breaks out of the query);
here ``$1`` becomes a string literal, quotes doubled, so ``'$1'`` and ``$1`` both work and a
user name cannot inject SQL. The first row whose first column is the user name gives the
secret (second column); no such row, or a NULL secret, is "no such user".

Cache policy: a lookup's answer, found or not, is reused for CACHE_TTL seconds. A failed
login asks again at once (the password may have changed in PostgreSQL), but at most once per
REFETCH_INTERVAL per user, so password guessing does not become a query per guess. When the
lookup fails (server down, auth_query_user refused) an answer still in the cache, however
old, is used, and the failure logged; without one the client gets 08006. A lookup never takes
longer than connect_timeout + QUERY_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..conn import ConnectionClosed
from ..protocol import backend as be
from ..protocol.errors import CONNECTION_FAILURE, ProxyError
from ..protocol.framing import DATA_ROW, ERROR_RESPONSE, READY_FOR_QUERY
from ..protocol.frontend import Query
from .passthrough import ServerSecret, StoredSecret
from .server import ServerConnection, ServerTarget, open_server

log = logging.getLogger(__name__)

CACHE_TTL = 60.0  # seconds a looked-up secret is used without asking again
REFETCH_INTERVAL = 1.0  # seconds between lookups of one user after failed logins
QUERY_TIMEOUT = 5.0  # seconds for the query itself, on top of connect_timeout
CACHE_LIMIT = 10_000  # users remembered per pool; past it the cache starts over
APPLICATION_NAME = "pgcat-py auth_query"


@dataclass(frozen=True)
class AuthQuerySettings:
    """One pool's auth_query, auth_query_user and auth_query_password, and where to run it."""

    pool_name: str
    query: str
    target: ServerTarget  # the primary of shard 0, as auth_query_user
    connect_timeout: float  # seconds


@dataclass(frozen=True)
class _Cached:
    secret: StoredSecret | None  # None: no such user (or no password)
    fetched_at: float  # monotonic


class AuthQueryFailed(ProxyError):
    """The lookup itself failed: the client cannot be told whether its password is right."""

    sqlstate = CONNECTION_FAILURE
    severity = "FATAL"


def query_for(template: str, user: str) -> str:
    """``template`` with ``$1`` as the user name, a SQL string literal either way."""
    literal = "'" + user.replace("'", "''") + "'"
    if "\\" in user:  # a literal that means the same whatever standard_conforming_strings says
        literal = "E'" + user.replace("\\", "\\\\").replace("'", "''") + "'"
    return template.replace("'$1'", literal).replace("$1", literal)


def secret_from_rows(rows: list[list[str | None]], user: str) -> StoredSecret | None:
    """The secret of ``user`` in auth_query's rows (see the module docstring)."""
    for row in rows:
        if len(row) >= 2 and row[0] == user:
            return StoredSecret.parse(row[1]) if row[1] else None
    if rows:
        log.warning("auth_query: no row names user %r in its first column (%d rows)", user,
                    len(rows))
    return None


class AuthQuery:
    """One pool's auth_query: see the module docstring."""

    def __init__(self, settings: AuthQuerySettings) -> None:
        self.settings = settings
        self._conn: ServerConnection | None = None
        self._lock = asyncio.Lock()  # one query at a time on the one connection
        self._cache: dict[str, _Cached] = {}
        # Per user, shared with the ServerTargets of its pool entry (backend/passthrough.py).
        self.server_secrets: dict[str, ServerSecret] = {}
        self.lookups = 0  # queries run (for tests and logs)

    def server_secret(self, user: str) -> ServerSecret:
        secret = self.server_secrets.get(user)
        if secret is None:
            secret = self.server_secrets[user] = ServerSecret()
        return secret

    async def secret(self, user: str, now: float) -> StoredSecret | None:
        """The user's secret, from the cache while it is younger than CACHE_TTL."""
        cached = self._cache.get(user)
        if cached is not None and now - cached.fetched_at < CACHE_TTL:
            return cached.secret
        return await self._refresh(user, now, CACHE_TTL)

    async def refetch(self, user: str, now: float) -> StoredSecret | None:
        """After a failed login: ask again unless asked within REFETCH_INTERVAL."""
        return await self._refresh(user, now, REFETCH_INTERVAL)

    async def _refresh(self, user: str, now: float, fresh_for: float) -> StoredSecret | None:
        try:
            async with asyncio.timeout(self.settings.connect_timeout + QUERY_TIMEOUT):
                async with self._lock:
                    cached = self._cache.get(user)  # another login may have just asked
                    if cached is not None and cached.fetched_at > now - fresh_for:
                        return cached.secret
                    secret = await self._lookup(user)
        except (ProxyError, OSError, ConnectionClosed, TimeoutError) as exc:
            return self._failed(user, exc)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[user] = _Cached(secret, now)
        return secret

    def _failed(self, user: str, exc: BaseException) -> StoredSecret | None:
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        s = self.settings
        cached = self._cache.get(user)
        if cached is not None:
            log.warning("auth_query of pool %s failed (%s): using the secret of %r looked up "
                        "before", s.pool_name, reason, user)
            return cached.secret
        log.error("auth_query of pool %s on %s:%d as %s failed: %s", s.pool_name,
                  s.target.host, s.target.port, s.target.user, reason)
        raise AuthQueryFailed(f'could not look up the password of user "{user}": the '
                              f'auth_query of pool "{s.pool_name}" failed (see the pgcat-py '
                              "log)")

    async def _lookup(self, user: str) -> StoredSecret | None:
        conn = self._conn
        if conn is None or not conn.is_usable:
            s = self.settings
            conn = await open_server(s.target, s.connect_timeout, APPLICATION_NAME)
            self._conn = conn
        try:
            self.lookups += 1
            rows = await run_query(conn, query_for(self.settings.query, user))
        except BaseException:
            self._conn = None  # mid-query: the connection's state is unknown
            conn.terminate()
            raise
        return secret_from_rows(rows, user)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


async def run_query(conn: ServerConnection, sql: str) -> list[list[str | None]]:
    """Every row of a simple Query, as text; ProxyError for the server's ErrorResponse."""
    conn.write(Query(sql).encode())
    rows: list[list[str | None]] = []
    error: be.NoticeOrError | None = None
    while True:
        msg_type, payload = await conn.read_message()
        if msg_type == READY_FOR_QUERY:
            break
        if msg_type == DATA_ROW:
            row = be.decode_backend(msg_type, payload)
            assert isinstance(row, be.DataRow)
            rows.append([None if v is None else v.decode() for v in row.values])
        elif msg_type == ERROR_RESPONSE and error is None:
            decoded = be.decode_backend(msg_type, payload)
            assert isinstance(decoded, be.NoticeOrError)
            error = decoded
    if error is not None:
        raise ProxyError(f"the query failed: {error.text}", sqlstate=CONNECTION_FAILURE)
    return rows
