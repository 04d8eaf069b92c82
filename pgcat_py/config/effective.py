"""What one (pool, user) pair actually runs with, after precedence user > pool > general.

pgcat resolves these when it builds a pool (src/pool.rs `ConnectionPool::from_config`); we
resolve them in one place so the pool, the admin console and reload diffs agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgcat_py.config.general import General
from pgcat_py.config.pool import Pool, User
from pgcat_py.config.types import AuthTypeName, PoolModeName, ms_to_seconds


@dataclass(frozen=True, slots=True)
class EffectivePoolSettings:
    """Settings of the connection pool for one (pool, user); durations in ms like pgcat."""

    pool_name: str
    username: str
    auth_type: AuthTypeName
    pool_mode: PoolModeName
    connect_timeout: int
    idle_timeout: int
    server_lifetime: int
    pool_size: int
    min_pool_size: int
    reserve_pool_size: int
    reserve_pool_timeout: int
    server_reset_query: str  # "" = pgcat's cleanup behaviour
    statement_timeout: int  # 0 = disabled
    server_username: str
    server_password: str | None = field(repr=False)
    cleanup_server_connections: bool
    auth_query: str | None
    auth_query_user: str | None
    auth_query_password: str | None = field(repr=False)

    @property
    def connect_timeout_s(self) -> float:
        return ms_to_seconds(self.connect_timeout)

    @property
    def idle_timeout_s(self) -> float:
        return ms_to_seconds(self.idle_timeout)

    @property
    def server_lifetime_s(self) -> float:
        return ms_to_seconds(self.server_lifetime)

    @property
    def reserve_pool_timeout_s(self) -> float:
        return ms_to_seconds(self.reserve_pool_timeout)

    @property
    def statement_timeout_s(self) -> float | None:
        """None when disabled."""
        return ms_to_seconds(self.statement_timeout) if self.statement_timeout else None


def _first(*values: int | None) -> int:
    """The first value that is set; the last argument (general's) always is."""
    for value in values:
        if value is not None:
            return value
    raise AssertionError("the general default is always set")


def effective_settings(
    general: General, pool_name: str, pool: Pool, user: User
) -> EffectivePoolSettings:
    """Resolves user > pool > general for every setting a connection pool needs."""
    return EffectivePoolSettings(
        pool_name=pool_name,
        username=user.username,
        auth_type=user.auth_type,
        pool_mode=user.pool_mode or pool.pool_mode,
        connect_timeout=_first(user.connect_timeout, pool.connect_timeout, general.connect_timeout),
        idle_timeout=_first(user.idle_timeout, pool.idle_timeout, general.idle_timeout),
        server_lifetime=_first(user.server_lifetime, pool.server_lifetime, general.server_lifetime),
        pool_size=user.pool_size,
        min_pool_size=user.min_pool_size or 0,
        reserve_pool_size=_first(pool.reserve_pool_size, general.reserve_pool_size),
        reserve_pool_timeout=_first(pool.reserve_pool_timeout, general.reserve_pool_timeout),
        server_reset_query=(
            general.server_reset_query
            if pool.server_reset_query is None
            else pool.server_reset_query
        ),
        statement_timeout=user.statement_timeout,
        server_username=(user.username if user.server_username is None else user.server_username),
        server_password=(user.password if user.server_password is None else user.server_password),
        cleanup_server_connections=pool.cleanup_server_connections,
        # pgcat copies general's auth_query* into every pool lacking its own (config.rs).
        auth_query=pool.auth_query if pool.auth_query is not None else general.auth_query,
        auth_query_user=(
            pool.auth_query_user if pool.auth_query_user is not None else general.auth_query_user
        ),
        auth_query_password=(
            pool.auth_query_password
            if pool.auth_query_password is not None
            else general.auth_query_password
        ),
    )
