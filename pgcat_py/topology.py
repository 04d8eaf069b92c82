"""Build the runtime pools from a Config: a Cluster per (pool, user), credentials per user.

Kept apart from the App so reload can build a fresh set and diff it against the running one.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parser import ParserSettings

from .activity import ActivitySettings, DbActivity
from .backend.dns import DnsCache
from .backend.server import ServerTarget
from .config import Config, General
from .config.pool import Pool, User
from .config.tls import server_ssl_context
from .conn import SocketOptions
from .frontend.auth import Credentials
from .plugins import PoolPlugins, build_plugins
from .pool.cluster import Cluster, ClusterSettings
from .pool.server_pool import PoolSettings, ServerPool
from .protocol.auth import ScramVerifier
from .router import Router, RouterSettings
from .workers.layout import SINGLE, Worker

if TYPE_CHECKING:
    from .backend.passthrough import ServerSecret

log = logging.getLogger(__name__)


@dataclass
class PoolEntry:
    """What a login to (database, user) gets."""

    cluster: Cluster
    credentials: Credentials
    pool_mode: str
    # Its users log in with the secret auth_query finds (auth_users.py), servers too.
    via_auth_query: bool = False


def address_name(pool_name: str, shard: int, role: str, replica_index: int) -> str:
    """pgcat's address names: ``<pool>_shard_<n>_primary`` / ``_replica_<k>``."""
    suffix = "primary" if role == "primary" else f"replica_{replica_index}"
    return f"{pool_name}_shard_{shard}_{suffix}"


def socket_options(general: General) -> SocketOptions:
    return SocketOptions(general.tcp_keepalives_idle, general.tcp_keepalives_count,
                         general.tcp_keepalives_interval, general.tcp_user_timeout)


def credentials_for(username: str, password: str | None, auth_type: str) -> Credentials:
    scram = None
    if auth_type == "scram-sha-256" and password is not None:
        try:
            scram = ScramVerifier.from_password(password)  # 4096 PBKDF2 rounds: do it once
        except ValueError as exc:
            log.warning("user %s: %s; SCRAM logins will fail", username, exc)
    return Credentials(username, password, auth_type, scram)


def build_router(pool: Pool, shards: int, pool_mode: str, *, plugins: PoolPlugins | None = None,
                 activity: DbActivity | None = None) -> Router:
    """The routing decisions of a pool, from its pgcat keys; ``plugins`` and ``activity``
    are shared by the pool's users (see pool_activity)."""
    parser = ParserSettings.build(
        query_parser_max_length=pool.query_parser_max_length,
        automatic_sharding_key=pool.automatic_sharding_key,
        shard_id_regex=pool.shard_id_regex, sharding_key_regex=pool.sharding_key_regex,
        regex_search_limit=pool.regex_search_limit, write_functions=pool.write_functions)
    return Router(RouterSettings(
        shards=shards, default_role=pool.default_role, default_shard=pool.default_shard,
        query_parser_enabled=pool.query_parser_enabled,
        read_write_splitting=pool.query_parser_read_write_splitting,
        primary_reads_enabled=pool.primary_reads_enabled,
        session_mode=pool_mode == "session", parser=parser,
        sharding_function=pool.sharding_function,
        cross_shard_queries=pool.cross_shard_queries,
        cross_shard_max_rows=pool.cross_shard_max_rows,
        cross_shard_writes=pool.cross_shard_writes == "allow"), plugins=plugins,
        activity=activity)


def pool_activity(pool: Pool) -> DbActivity | None:
    """db_activity_based_routing's tracker, one per pool (pgcat has one per process)."""
    if not pool.db_activity_based_routing:
        return None
    return DbActivity(ActivitySettings(pool.db_activity_init_delay, pool.db_activity_ttl,
                                       pool.table_mutation_cache_ms_ttl))


def prewarm_queries(config: Config, pool_name: str) -> tuple[str, ...]:
    plugins = config.plugins_for(pool_name)
    prewarmer = plugins.prewarmer if plugins is not None else None
    return tuple(prewarmer.queries) if prewarmer is not None and prewarmer.enabled else ()


def user_settings(statement_timeout: int) -> tuple[tuple[str, str], ...]:
    """A user's statement_timeout (ms) as PostgreSQL's own setting on its sessions: pgcat
    times reads on the pooler side, then bans the server and drops the client (#622); here
    PostgreSQL cancels the statement (57014) and the session goes on, as the issue's
    proposed fix (#910) does. A client's own SET or startup value wins."""
    return (("statement_timeout", str(statement_timeout)),) if statement_timeout else ()


@dataclass(frozen=True)
class PoolShared:
    """What every user of one pool shares."""

    server_tls: ssl.SSLContext | None
    dns: DnsCache | None
    plugins: PoolPlugins | None
    activity: DbActivity | None


# The ServerSecret of a (pool, user) that logs in through auth_query, else None
# (auth_users.py).
SecretFor = Callable[[str, str], "ServerSecret | None"]


def build_pools(config: Config, worker: Worker = SINGLE, secret_for: SecretFor | None = None
                ) -> dict[tuple[str, str], PoolEntry]:
    """A PoolEntry per (pool name, username), sized to ``worker``'s share of each pool
    (workers/layout.py; at least one connection, so that every worker can serve).
    ConfigError if server_tls_ca_file does not load (one SSL context for all servers)."""
    entries: dict[tuple[str, str], PoolEntry] = {}
    general = config.general
    server_tls = server_ssl_context(config)
    dns = DnsCache(float(general.dns_max_ttl)) if general.dns_cache_enabled else None
    for pool_name, pool in config.pools.items():
        shared = PoolShared(server_tls, dns, build_plugins(config, pool_name),
                            pool_activity(pool))
        for user in pool.user_list:
            secret = None
            if secret_for is not None and user.password is None \
                    and user.server_password is None:
                secret = secret_for(pool_name, user.username)
            entries[(pool_name, user.username)] = build_entry(config, pool_name, user, worker,
                                                              shared, secret)
    return entries


def build_entry(config: Config, pool_name: str, user: User, worker: Worker,
                shared: PoolShared, secret: ServerSecret | None = None) -> PoolEntry:
    """The PoolEntry of one user of a pool; ``secret``: its servers' login (auth_query)."""
    general = config.general
    pool = config.pools[pool_name]
    eff = config.effective(pool_name, user)
    settings = PoolSettings(
        pool_size=max(1, worker.share(eff.pool_size)),
        min_pool_size=worker.share(eff.min_pool_size),
        connect_timeout=eff.connect_timeout_s, idle_timeout=eff.idle_timeout_s,
        server_lifetime=eff.server_lifetime_s,
        reserve_pool_size=worker.share(eff.reserve_pool_size),
        reserve_pool_timeout=eff.reserve_pool_timeout_s,
        round_robin=general.server_round_robin,
        server_reset_query=eff.server_reset_query,
        cleanup_server_connections=eff.cleanup_server_connections,
        healthcheck_delay=general.healthcheck_delay_s,
        healthcheck_timeout=general.healthcheck_timeout_s,
        ban_time=float(max(general.ban_time, 0)),
        prepared_statements_cache_size=pool.prepared_statements_cache_size,
        prewarm=prewarm_queries(config, pool_name))
    shards: list[list[ServerPool]] = []
    for index, shard in enumerate(pool.shard_list):
        replicas = 0
        servers: list[ServerPool] = []
        for position, address in enumerate(shard.servers):
            if address.role == "mirror":
                continue
            name = address_name(pool_name, index, address.role, replicas)
            replicas += address.role == "replica"
            mirrors = tuple(
                ServerTarget(m.host, m.port, shard.database, eff.server_username,
                             eff.server_password, "mirror", f"{name}_mirror_{k}",
                             socket_options(general), shared.server_tls, (), shared.dns,
                             secret)
                for k, m in enumerate(shard.mirrors or ()) if m.server_index == position)
            target = ServerTarget(address.host, address.port, shard.database,
                                  eff.server_username, eff.server_password,
                                  address.role, name, socket_options(general),
                                  shared.server_tls, mirrors, shared.dns, secret)
            servers.append(ServerPool(target, settings))
        shards.append(servers)
    cluster = Cluster(ClusterSettings(pool_name, user.username, eff.pool_mode,
                                      pool.load_balancing_mode, pool.default_role,
                                      pool.default_shard,
                                      pool.replica_to_primary_failover_enabled,
                                      user_settings(eff.statement_timeout),
                                      # pgcat's documented meaning: 0 disables (its
                                      # code closes at the first failure then)
                                      pool.checkout_failure_limit or 0,
                                      pool.log_client_parameter_status_changes,
                                      pool.ban_replica_lag,
                                      pool.ban_replica_lag_bytes,
                                      pool.read_your_writes),
                      shards, build_router(pool, len(shards), eff.pool_mode,
                                           plugins=shared.plugins, activity=shared.activity))
    creds = credentials_for(user.username, user.password, user.auth_type)
    return PoolEntry(cluster, creds, eff.pool_mode, via_auth_query=secret is not None)
