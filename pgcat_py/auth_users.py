"""auth_query at run time: each pool's lookup, the logins that use it, and the pool entries
of users pgcat.toml does not list, made at their first successful login.

A pool has a lookup when auth_query, auth_query_user and auth_query_password are all set
(on the pool, or inherited from [general] as pgcat does). Then two kinds of users log in
with the secret PostgreSQL stores (frontend/auth_query.py): listed users without a password
(pgcat's case), and users not listed at all (PgBouncer's), whose entry gets the pool's
settings and auth_query_pool_size, and shows in SHOW POOLS like any other. Listed users with
a password log in with it, as in pgcat. A reload keeps a pool's lookup, its cache and its
users' entries while neither auth_query* nor the pool's section changed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from .backend.auth_query import AuthQuery, AuthQuerySettings
from .backend.dns import DnsCache
from .backend.passthrough import ServerSecret
from .backend.server import ServerTarget
from .config import Config
from .config.pool import User
from .config.tls import server_ssl_context
from .config.types import ms_to_seconds
from .frontend.auth_query import authenticate_by_query
from .plugins import build_plugins
from .topology import PoolEntry, PoolShared, build_entry, pool_activity, socket_options

if TYPE_CHECKING:
    from .app import App
    from .conn import MessageConnection

log = logging.getLogger(__name__)

Login = Callable[["MessageConnection"], Awaitable[bytes]]
PoolKey = tuple[str, str]


def lookup_settings(config: Config, pool_name: str) -> AuthQuerySettings | None:
    """The pool's auth_query (general's where the pool sets none), run on the primary of
    shard 0 (its first server when it has no primary); None when not all three are set."""
    pool, general = config.pools[pool_name], config.general
    query = pool.auth_query if pool.auth_query is not None else general.auth_query
    user = pool.auth_query_user if pool.auth_query_user is not None else general.auth_query_user
    password = pool.auth_query_password if pool.auth_query_password is not None \
        else general.auth_query_password
    if query is None or user is None or password is None:
        return None
    shard = pool.shard_list[0]
    address = shard.primary or shard.servers[0]
    target = ServerTarget(address.host, address.port, shard.database, user, password,
                          "primary", f"{pool_name}_auth_query", socket_options(general),
                          server_ssl_context(config))
    timeout = pool.connect_timeout if pool.connect_timeout is not None \
        else general.connect_timeout
    return AuthQuerySettings(pool_name, query, target, ms_to_seconds(timeout))


def _same_lookup(a: AuthQuerySettings, b: AuthQuerySettings) -> bool:
    """Equal but for the SSL context, which is built anew at every reload."""
    ta, tb = a.target, b.target
    return (a.query, a.connect_timeout, ta.host, ta.port, ta.database, ta.user, ta.password,
            ta.tls is None) == (b.query, b.connect_timeout, tb.host, tb.port, tb.database,
                                tb.user, tb.password, tb.tls is None)


class AuthQueries:
    """Every pool's AuthQuery; see the module docstring."""

    def __init__(self, config: Config) -> None:
        self.by_pool: dict[str, AuthQuery] = {}
        self._kept: set[str] = set()  # pools whose lookup the last reconfigure kept
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take a new config: lookups whose settings did not change stay, with their cache."""
        fresh: dict[str, AuthQuery] = {}
        for name in config.pools:
            settings = lookup_settings(config, name)
            if settings is None:
                continue
            old = self.by_pool.get(name)
            keep = old is not None and _same_lookup(old.settings, settings)
            fresh[name] = old if keep and old is not None else AuthQuery(settings)
        for name, old in self.by_pool.items():
            if fresh.get(name) is not old:
                old.close()
        self._kept = {name for name, lookup in fresh.items() if self.by_pool.get(name) is lookup}
        self.by_pool = fresh

    def secret_for(self, pool_name: str, user: str) -> ServerSecret | None:
        """For topology.build_pools: the servers' login of a listed user without password."""
        lookup = self.by_pool.get(pool_name)
        return lookup.server_secret(user) if lookup is not None else None

    def login_for(self, app: App, database: str, user: str) -> Login | None:
        """How ``user`` logs in to pool ``database`` through auth_query; None when it does
        not (no lookup, or a listed user with a password or trust)."""
        lookup = self.by_pool.get(database)
        if lookup is None:
            return None
        entry = app.pools.get((database, user))
        if entry is not None and (not entry.via_auth_query
                                  or entry.credentials.auth_type == "trust"):
            return None
        return partial(self._login, app, lookup, database, user)

    async def _login(self, app: App, lookup: AuthQuery, database: str, user: str,
                     conn: MessageConnection) -> bytes:
        sasl_final, secret, client_key = await authenticate_by_query(conn, lookup, user)
        changed = lookup.server_secret(user).learn(secret, client_key)
        entry = app.pools.get((database, user))
        if entry is None:
            self.add_entry(app, database, user)
        elif changed:  # servers refused the old secret: let them be tried again now
            for pool in entry.cluster.pools:
                pool.unban()
        return sasl_final

    def rejoin(self, app: App, database: str, user: str) -> PoolEntry | None:
        """A user not in the file who logged in before a reload: its entry again."""
        lookup = self.by_pool.get(database)
        secret = lookup.server_secrets.get(user) if lookup is not None else None
        if secret is None or not secret.is_known:
            return None
        return self.add_entry(app, database, user)

    def add_entry(self, app: App, pool_name: str, user: str) -> PoolEntry:
        """The pool entry of a user not in the file: the pool's settings, its shared state
        (plugins, activity), auth_query_pool_size, paused or disabled like its pool."""
        config = app.config
        pool = config.pools[pool_name]
        model = User.model_validate({"username": user, "pool_size": pool.auth_query_pool_size})
        siblings = [e for (name, _), e in app.pools.items() if name == pool_name]
        entry = build_entry(config, pool_name, model, app.worker,
                            _shared(config, pool_name, siblings), self.secret_for(pool_name, user))
        entry.cluster.paused = any(e.cluster.paused for e in siblings)
        entry.cluster.disabled = any(e.cluster.disabled for e in siblings)
        app.pools[(pool_name, user)] = entry
        app.watch_bans()
        log.info("auth_query: pool %s has a connection pool for user %s now", pool_name, user)
        return entry

    def kept_entries(self, old: dict[PoolKey, PoolEntry], new: dict[PoolKey, PoolEntry],
                     rebuilt: set[str]) -> dict[PoolKey, PoolEntry]:
        """At a reload: the entries of unlisted users of pools that did not change."""
        return {key: entry for key, entry in old.items()
                if entry.via_auth_query and key not in new and key[0] not in rebuilt
                and key[0] in self._kept}

    def close(self) -> None:
        for lookup in self.by_pool.values():
            lookup.close()


def _shared(config: Config, pool_name: str, siblings: list[PoolEntry]) -> PoolShared:
    """What the pool's other users share, or new when it has none yet."""
    for entry in siblings:
        target = entry.cluster.pools[0].target
        router = entry.cluster.router
        return PoolShared(target.tls, target.dns, router.plugins, router.activity)
    general = config.general
    dns = DnsCache(float(general.dns_max_ttl)) if general.dns_cache_enabled else None
    return PoolShared(server_ssl_context(config), dns, build_plugins(config, pool_name),
                      pool_activity(config.pools[pool_name]))
