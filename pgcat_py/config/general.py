"""The `[general]` table: every key of pgcat.md §1.1 with pgcat's *code* default, plus ours.

Durations keep pgcat's units and key names (ms unless the name or pgcat says seconds:
`ban_time`, `dns_max_ttl`, `tcp_keepalives_idle`, `tcp_keepalives_interval`); the `*_s`
properties give seconds for asyncio.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pgcat_py.config.types import (
    I16,
    I64,
    U16,
    U32,
    U64,
    AuthType,
    Section,
    TlsMode,
    USize,
    ms_to_seconds,
)

# Our extension's default: PgBouncer's is 100, far too low for a pooler that fronts apps with
# their own pools; 10000 keeps the limit as a guard against runaway clients, not a tuning knob.
DEFAULT_MAX_CLIENT_CONN = 10_000
# PgBouncer's reserve_pool_timeout default is 5 s; we keep pgcat's habit of milliseconds.
DEFAULT_RESERVE_POOL_TIMEOUT_MS = 5_000
# PgBouncer's client_login_timeout and PostgreSQL's authentication_timeout are both 60 s.
DEFAULT_CLIENT_LOGIN_TIMEOUT_MS = 60_000


class General(Section):
    """Pooler-wide settings (pgcat's `struct General`)."""

    host: str = "0.0.0.0"
    port: U16 = 5432  # pgcat's code default; its example config uses 6432
    enable_prometheus_exporter: bool | None = None  # unset = disabled
    prometheus_exporter_port: I16 = 9930
    connect_timeout: U64 = 1_000  # ms, checkout wait (includes opening a server connection)
    idle_timeout: U64 = 600_000  # ms
    tcp_keepalives_idle: U64 = 5  # s
    tcp_keepalives_count: U32 = 5
    tcp_keepalives_interval: U64 = 5  # s
    tcp_user_timeout: U64 = 10_000  # ms
    log_client_connections: bool = False
    log_client_disconnections: bool = False
    dns_cache_enabled: bool = False
    dns_max_ttl: U64 = 30  # s
    shutdown_timeout: U64 = 60_000  # ms
    healthcheck_timeout: U64 = 1_000  # ms
    healthcheck_delay: U64 = 30_000  # ms
    ban_time: I64 = 60  # s
    idle_client_in_transaction_timeout: U64 = 0  # ms, 0 = disabled
    server_lifetime: U64 = 3_600_000  # ms
    server_round_robin: bool = True  # pgcat's code default (its comment says false)
    worker_threads: USize = 4
    autoreload: U64 | None = None  # ms, unset = disabled
    tls_certificate: str | None = None
    tls_private_key: str | None = None
    server_tls: bool = False
    verify_server_certificate: bool = False
    admin_username: str
    admin_password: str = Field(repr=False)
    admin_auth_type: AuthType = "md5"  # "scram-sha-256" is our extension
    validate_config: bool = True
    auth_query: str | None = None
    auth_query_user: str | None = None
    auth_query_password: str | None = Field(default=None, repr=False)

    # Our extensions (PgBouncer vocabulary), not in pgcat.
    max_client_conn: U32 = DEFAULT_MAX_CLIENT_CONN
    # Extra server connections a pool may open for a client that waited reserve_pool_timeout.
    reserve_pool_size: U32 = 0
    reserve_pool_timeout: U64 = DEFAULT_RESERVE_POOL_TIMEOUT_MS  # ms
    # Run at check-in when a client dirtied the session, instead of pgcat's cleanup
    # (RESET ALL / DEALLOCATE ALL, see cleanup_server_connections); "" = pgcat's cleanup.
    server_reset_query: str = ""
    # Also listen on the Unix socket <dir>/.s.PGSQL.<port>, as PgBouncer does (the admin
    # console included); unset = TCP only.
    unix_socket_dir: str | None = None
    # Follow promotions without a config change: every role_check_interval ms, shards with
    # replicas ask each server pg_is_in_recovery() and the one that says no is the primary.
    follow_promotions: bool = True
    role_check_interval: Annotated[int, Field(ge=100, le=2**32 - 1)] = 1_000  # ms
    # How often replicas' replay position is compared with their primary's (ms): for
    # ban_replica_lag, ban_replica_lag_bytes and read_your_writes.
    lag_check_interval: Annotated[int, Field(ge=10, le=2**32 - 1)] = 250
    # "prefer": clients choose (pgcat's only behaviour); "require": a StartupMessage that did
    # not come over TLS is refused with 28000 (needs tls_certificate).
    tls_mode: TlsMode = "prefer"
    # PEM CA certificates that server certificates must chain to when
    # verify_server_certificate is on; unset = the system store.
    server_tls_ca_file: str | None = None
    # A client that has not finished its login (startup packet, TLS, authentication) this
    # many ms after connecting gets FATAL 08006 and is closed (PgBouncer's
    # client_login_timeout); until then it takes a max_client_conn slot.
    client_login_timeout: Annotated[int, Field(ge=1, le=2**32 - 1)] = (
        DEFAULT_CLIENT_LOGIN_TIMEOUT_MS)
    # A client holding a server that stops in the middle of a message it sends, or stops
    # reading a result, with no progress for this many ms, is closed with its server
    # (sweep.py; PgBouncer's query_timeout plays this role); 0 = never.
    client_stall_timeout: U64 = 60_000

    @property
    def prometheus_enabled(self) -> bool:
        """pgcat starts the exporter only when the key is explicitly true."""
        return self.enable_prometheus_exporter is True

    @property
    def tls_enabled(self) -> bool:
        """Client-facing TLS is on when a certificate is configured."""
        return self.tls_certificate is not None

    @property
    def tls_required(self) -> bool:
        """Clients must ask for TLS before their StartupMessage (tls_mode = "require")."""
        return self.tls_mode == "require"

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
    def healthcheck_timeout_s(self) -> float:
        return ms_to_seconds(self.healthcheck_timeout)

    @property
    def healthcheck_delay_s(self) -> float:
        return ms_to_seconds(self.healthcheck_delay)

    @property
    def shutdown_timeout_s(self) -> float:
        return ms_to_seconds(self.shutdown_timeout)

    @property
    def idle_client_in_transaction_timeout_s(self) -> float:
        return ms_to_seconds(self.idle_client_in_transaction_timeout)

    @property
    def tcp_user_timeout_s(self) -> float:
        return ms_to_seconds(self.tcp_user_timeout)

    @property
    def reserve_pool_timeout_s(self) -> float:
        return ms_to_seconds(self.reserve_pool_timeout)

    @property
    def client_stall_timeout_s(self) -> float:
        return ms_to_seconds(self.client_stall_timeout)

    @property
    def client_login_timeout_s(self) -> float:
        return ms_to_seconds(self.client_login_timeout)

    @property
    def autoreload_s(self) -> float | None:
        return None if self.autoreload is None else ms_to_seconds(self.autoreload)
