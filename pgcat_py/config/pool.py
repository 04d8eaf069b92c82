"""`[pools.NAME]` with its users, shards, servers and mirrors (pgcat.md §1.2 to §1.4).

Checks that concern one value live here (regexes compile, `automatic_sharding_key` is
`table.column`, `default_shard` is well formed); rules that relate several values (one primary
per shard, `min_pool_size <= pool_size`, ...) are in `rules.py`, so each error names the key.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from pgcat_py.config.plugins import Plugins
from pgcat_py.config.types import (
    U16,
    U32,
    U64,
    AuthType,
    DefaultRole,
    LoadBalancingMode,
    PoolMode,
    Section,
    ServerRole,
    ShardingFunction,
    USize,
)

DEFAULT_SHARD_FORMAT = re.compile(r"shard_(\d+)|random|random_healthy|fail")  # fail: ours


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _array_to_fields(value: object, names: tuple[str, ...], shape: str) -> object:
    """pgcat writes servers and mirrors as TOML arrays; name their positions."""
    if isinstance(value, list | tuple):
        if len(value) != len(names):
            raise ValueError(f"expected {shape}, got an array of {len(value)} items")
        return dict(zip(names, value, strict=True))
    return value


class ServerAddress(Section):
    """One server of a shard: `[host, port, role]`, role case-insensitive."""

    host: str
    port: U16
    role: ServerRole

    @model_validator(mode="before")
    @classmethod
    def _from_array(cls, value: object) -> object:
        return _array_to_fields(value, ("host", "port", "role"), "[host, port, role]")


class Mirror(Section):
    """`[host, port, server_index]`: traffic sent to `servers[server_index]` is copied here."""

    host: str
    port: U16
    # pgcat's struct calls it mirroring_target_index; the array form has no names.
    server_index: USize = Field(alias="mirroring_target_index")

    @model_validator(mode="before")
    @classmethod
    def _from_array(cls, value: object) -> object:
        return _array_to_fields(
            value, ("host", "port", "server_index"), "[host, port, server_index]"
        )


class Shard(Section):
    """`[pools.NAME.shards.N]`: a real database on a primary and its replicas."""

    database: str
    mirrors: list[Mirror] | None = None
    servers: list[ServerAddress]

    @property
    def primary(self) -> ServerAddress | None:
        return next((s for s in self.servers if s.role == "primary"), None)

    @property
    def replicas(self) -> list[ServerAddress]:
        return [s for s in self.servers if s.role == "replica"]


class User(Section):
    """`[pools.NAME.users.N]`: one client-facing user and its server credentials."""

    username: str
    password: str | None = Field(default=None, repr=False)
    auth_type: AuthType = "md5"  # "scram-sha-256" is our extension
    server_username: str | None = None
    server_password: str | None = Field(default=None, repr=False)
    # Required, as in pgcat. 0 would make bb8 panic at startup, so we refuse it here.
    pool_size: Annotated[int, Field(ge=1, le=2**32 - 1)]
    min_pool_size: U32 | None = None
    pool_mode: PoolMode | None = None
    server_lifetime: U64 | None = None  # ms
    statement_timeout: U64 = 0  # ms, 0 = disabled
    connect_timeout: U64 | None = None  # ms
    idle_timeout: U64 | None = None  # ms


def _key_order(key: str) -> tuple[int, int, str]:
    """Numeric keys in numeric order ("2" before "10"), any others after them by name."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


class Pool(Section):
    """A database name clients connect to, its users and its shards."""

    pool_mode: PoolMode = "transaction"
    load_balancing_mode: LoadBalancingMode = "random"
    default_role: DefaultRole = "any"
    query_parser_enabled: bool = False
    query_parser_max_length: USize | None = None  # unset = unlimited
    query_parser_read_write_splitting: bool = False
    primary_reads_enabled: bool = False
    connect_timeout: U64 | None = None  # ms, unset = general's
    idle_timeout: U64 | None = None  # ms, unset = general's
    checkout_failure_limit: U64 | None = None  # unset = disabled (an explicit 0 is not)
    server_lifetime: U64 | None = None  # ms, unset = general's
    sharding_function: ShardingFunction = "pg_bigint_hash"
    automatic_sharding_key: str | None = None
    sharding_key_regex: str | None = None
    shard_id_regex: str | None = None
    regex_search_limit: USize = 1000
    default_shard: Annotated[str, BeforeValidator(_lower)] = "shard_0"
    auth_query: str | None = None
    auth_query_user: str | None = None
    auth_query_password: str | None = Field(default=None, repr=False)
    # Ours: pool_size of users without a [users] entry who log in through auth_query
    # (PgBouncer's default_pool_size; pgcat only looks up the listed users' passwords).
    auth_query_pool_size: Annotated[int, Field(ge=1, le=2**32 - 1)] = 20
    cleanup_server_connections: bool = True
    log_client_parameter_status_changes: bool = False
    prepared_statements_cache_size: USize = 0  # 0 = off
    db_activity_based_routing: bool = False
    db_activity_init_delay: U64 = 100  # ms
    db_activity_ttl: U64 = 900  # s
    table_mutation_cache_ms_ttl: U64 = 50  # ms
    plugins: Plugins | None = None  # unset = the global [plugins]
    # Ours: a Python module whose route(statement) may move or refuse statements
    # (pgcat_py/plugins/hook.py); needs query_parser_enabled.
    plugin_module: str | None = None
    shards: dict[str, Shard]
    users: dict[str, User]

    # Our extensions: per-pool overrides of the [general] keys of the same name.
    reserve_pool_size: U32 | None = None
    reserve_pool_timeout: U64 | None = None  # ms
    server_reset_query: str | None = None
    # Ours: reads go to the primary when no replica of the shard can serve them.
    replica_to_primary_failover_enabled: bool = True
    # Ours (PgDog's names): a replica this far behind its primary takes no reads until it
    # catches up; 0 = no limit. Measured every general.lag_check_interval.
    ban_replica_lag: U64 = 0  # ms
    ban_replica_lag_bytes: U64 = 0  # bytes of WAL
    # Ours: after a client's transaction on the primary, its reads go only to replicas that
    # have replayed what the primary had written by then (else to the primary).
    read_your_writes: bool = False
    # Ours: functions whose calls make a SELECT a write (to the primary), besides nextval &
    # co. and the VOLATILE ones learned from pg_proc; a trailing * matches a prefix.
    write_functions: list[str] = Field(default_factory=list)
    # Ours (issue 12): a lone SELECT that needs several shards runs on each and the results
    # are merged (pgcat_py/scatter/); off, pgcat's default_shard / refusal. The cap is on
    # groups (or DISTINCT rows) a merge holds in memory; past it the query fails (53400).
    cross_shard_queries: bool = False
    cross_shard_max_rows: Annotated[int, Field(ge=1)] = 100_000
    # Ours (issue 12): "allow" splits a multi-row INSERT by its rows' shards, runs UPDATE /
    # DELETE without a key on every shard and routes COPY FROM STDIN rows (outside explicit
    # transactions; no two-phase commit); "refuse" keeps pgcat's default_shard / refusal.
    cross_shard_writes: Literal["allow", "refuse"] = "refuse"

    @field_validator("automatic_sharding_key")
    @classmethod
    def _table_dot_column(cls, key: str | None) -> str | None:
        if key is None:
            return None
        key = key.replace('"', "")  # pgcat compares unquoted identifiers
        if key.count(".") != 1:
            raise ValueError(f"must be fully qualified as table.column (or *.column), got {key!r}")
        return key

    @field_validator("sharding_key_regex", "shard_id_regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @field_validator("default_shard")
    @classmethod
    def _shard_choice(cls, value: str) -> str:
        if DEFAULT_SHARD_FORMAT.fullmatch(value) is None:
            raise ValueError(f"must be shard_<n>, random, random_healthy or fail, got {value!r}")
        return value

    @property
    def default_shard_index(self) -> int | None:
        """N for `default_shard = "shard_N"`; None for random / random_healthy."""
        match = DEFAULT_SHARD_FORMAT.fullmatch(self.default_shard)
        return int(match.group(1)) if match and match.group(1) is not None else None

    @property
    def shard_list(self) -> list[Shard]:
        """The shards in numeric key order: index i is shard i."""
        return [self.shards[key] for key in sorted(self.shards, key=_key_order)]

    @property
    def user_list(self) -> list[User]:
        """The users in key order (numeric keys numerically)."""
        return [self.users[key] for key in sorted(self.users, key=_key_order)]

    def find_user(self, username: str) -> User | None:
        """The user a client logs in as; usernames are unique within a pool."""
        return next((u for u in self.users.values() if u.username == username), None)

    @property
    def auth_query_configured(self) -> bool:
        """All three auth_query keys set on the pool itself (not inherited)."""
        return None not in (self.auth_query, self.auth_query_user, self.auth_query_password)
