"""Absent keys take pgcat's *code* defaults (src/config.rs), not CONFIG.md's example values;
enum spellings pgcat accepts are normalised; servers are `[host, port, role]` arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pgcat_py.config import ConfigError, parse_config

# pgcat.md §1.1: key -> code default. The ⚠ rows are where CONFIG.md says otherwise.
GENERAL_CODE_DEFAULTS: dict[str, Any] = {
    "host": "0.0.0.0",
    "port": 5432,  # ⚠ CONFIG.md: 6432
    "enable_prometheus_exporter": None,  # ⚠ unset = disabled
    "prometheus_exporter_port": 9930,
    "connect_timeout": 1000,
    "idle_timeout": 600000,  # ⚠ CONFIG.md: 30000
    "server_lifetime": 3600000,  # ⚠ CONFIG.md: 86400000
    "idle_client_in_transaction_timeout": 0,
    "healthcheck_timeout": 1000,
    "healthcheck_delay": 30000,
    "shutdown_timeout": 60000,
    "ban_time": 60,
    "log_client_connections": False,
    "log_client_disconnections": False,
    "autoreload": None,  # ⚠ CONFIG.md: 15000
    "worker_threads": 4,  # ⚠ CONFIG.md: 5
    "tcp_keepalives_idle": 5,
    "tcp_keepalives_count": 5,
    "tcp_keepalives_interval": 5,
    "tcp_user_timeout": 10000,
    "tls_certificate": None,
    "tls_private_key": None,
    "server_tls": False,
    "verify_server_certificate": False,
    "server_round_robin": True,  # ⚠ the source comment says false
    "admin_auth_type": "md5",
    "validate_config": True,
    "dns_cache_enabled": False,
    "dns_max_ttl": 30,
    "auth_query": None,
    "auth_query_user": None,
    "auth_query_password": None,
}

# pgcat.md §1.2.
POOL_CODE_DEFAULTS: dict[str, Any] = {
    "pool_mode": "transaction",
    "load_balancing_mode": "random",
    "default_role": "any",
    "query_parser_enabled": False,  # ⚠ CONFIG.md: true
    "query_parser_max_length": None,
    "query_parser_read_write_splitting": False,
    "primary_reads_enabled": False,  # ⚠ CONFIG.md: true
    "connect_timeout": None,
    "idle_timeout": None,
    "server_lifetime": None,
    "checkout_failure_limit": None,
    "sharding_function": "pg_bigint_hash",
    "automatic_sharding_key": None,
    "sharding_key_regex": None,
    "shard_id_regex": None,
    "regex_search_limit": 1000,
    "default_shard": "shard_0",
    "auth_query": None,
    "auth_query_user": None,
    "auth_query_password": None,
    "cleanup_server_connections": True,
    "log_client_parameter_status_changes": False,
    "prepared_statements_cache_size": 0,
    "db_activity_based_routing": False,
    "db_activity_init_delay": 100,
    "db_activity_ttl": 900,
    "table_mutation_cache_ms_ttl": 50,
    "plugins": None,
}

# pgcat.md §1.3.
USER_CODE_DEFAULTS: dict[str, Any] = {
    "auth_type": "md5",
    "server_username": None,
    "server_password": None,
    "min_pool_size": None,
    "pool_mode": None,
    "server_lifetime": None,
    "statement_timeout": 0,
    "connect_timeout": None,
    "idle_timeout": None,
}

# Our extensions (documented in pgcat.toml.example).
EXTENSION_DEFAULTS: dict[str, Any] = {
    "max_client_conn": 10000,
    "reserve_pool_size": 0,
    "reserve_pool_timeout": 5000,
    "server_reset_query": "",
    "client_login_timeout": 60000,
    "client_stall_timeout": 60000,
}
GENERAL_ONLY_EXTENSIONS = frozenset({"max_client_conn", "client_login_timeout",
                                     "client_stall_timeout"})


@pytest.mark.parametrize(("key", "default"), GENERAL_CODE_DEFAULTS.items())
def test_general_key_absent_takes_pgcat_code_default(
    toml: Callable[..., str], key: str, default: Any
) -> None:
    assert getattr(parse_config(toml()).config.general, key) == default


@pytest.mark.parametrize(("key", "default"), POOL_CODE_DEFAULTS.items())
def test_pool_key_absent_takes_pgcat_code_default(
    toml: Callable[..., str], key: str, default: Any
) -> None:
    assert getattr(parse_config(toml()).config.pools["app"], key) == default


@pytest.mark.parametrize(("key", "default"), USER_CODE_DEFAULTS.items())
def test_user_key_absent_takes_pgcat_code_default(
    toml: Callable[..., str], key: str, default: Any
) -> None:
    assert getattr(parse_config(toml()).config.pools["app"].users["0"], key) == default


@pytest.mark.parametrize(("key", "default"), EXTENSION_DEFAULTS.items())
def test_extension_key_absent_takes_documented_default(
    toml: Callable[..., str], key: str, default: Any
) -> None:
    config = parse_config(toml()).config
    assert getattr(config.general, key) == default
    if key not in GENERAL_ONLY_EXTENSIONS:  # the others can be overridden per pool
        assert getattr(config.pools["app"], key) is None


def test_general_table_is_required(toml: Callable[..., str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[pools]\n", "pgcat.toml")
    assert caught.value.key_path == "general"
    assert str(caught.value) == "pgcat.toml: general: field required"


def test_pools_table_is_required_but_may_be_empty() -> None:
    general = '[general]\nadmin_username = "a"\nadmin_password = "b"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(general)
    assert caught.value.key_path == "pools"
    assert parse_config(general + "[pools]\n").config.pools == {}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("transaction", "transaction"),
        ("Transaction", "transaction"),
        ("session", "session"),
        ("Session", "session"),
        ("SESSION", "session"),
    ],
)
def test_pool_mode_spellings(toml: Callable[..., str], written: str, expected: str) -> None:
    text = toml(pool=f'pool_mode = "{written}"', user=f'pool_mode = "{written}"')
    pool = parse_config(text).config.pools["app"]
    assert pool.pool_mode == expected
    assert pool.users["0"].pool_mode == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("random", "random"),
        ("Random", "random"),
        ("loc", "loc"),
        ("LOC", "loc"),
        ("least_outstanding_connections", "loc"),
        ("LeastOutstandingConnections", "loc"),
    ],
)
def test_load_balancing_mode_aliases(toml: Callable[..., str], written: str, expected: str) -> None:
    text = toml(pool=f'load_balancing_mode = "{written}"')
    assert parse_config(text).config.pools["app"].load_balancing_mode == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("pg_bigint_hash", "pg_bigint_hash"),
        ("PgBigintHash", "pg_bigint_hash"),
        ("sha1", "sha1"),
        ("Sha1", "sha1"),
    ],
)
def test_sharding_function_aliases(toml: Callable[..., str], written: str, expected: str) -> None:
    text = toml(pool=f'sharding_function = "{written}"')
    assert parse_config(text).config.pools["app"].sharding_function == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("md5", "md5"),
        ("MD5", "md5"),
        ("trust", "trust"),
        ("Trust", "trust"),
        ("scram-sha-256", "scram-sha-256"),
        ("SCRAM-SHA-256", "scram-sha-256"),
    ],
)
def test_auth_type_spellings(toml: Callable[..., str], written: str, expected: str) -> None:
    text = toml(general=f'admin_auth_type = "{written}"', user=f'auth_type = "{written}"')
    config = parse_config(text).config
    assert config.general.admin_auth_type == expected
    assert config.pools["app"].users["0"].auth_type == expected


@pytest.mark.parametrize("written", ["any", "primary", "replica", "Primary", "REPLICA"])
def test_default_role_is_lower_cased(toml: Callable[..., str], written: str) -> None:
    text = toml(pool=f'default_role = "{written}"')
    assert parse_config(text).config.pools["app"].default_role == written.lower()


def test_server_array_becomes_named_fields_with_roles_lower_cased(
    toml: Callable[..., str],
) -> None:
    shard = 'database = "db"\nservers = [["10.0.0.1", 5433, "Primary"], ["h2", 5434, "REPLICA"]]'
    config = parse_config(toml(shard=shard)).config
    primary, replica = config.pools["app"].shards["0"].servers
    assert (primary.host, primary.port, primary.role) == ("10.0.0.1", 5433, "primary")
    assert (replica.host, replica.port, replica.role) == ("h2", 5434, "replica")


def test_mirror_array_becomes_named_fields(toml: Callable[..., str]) -> None:
    shard = 'database = "db"\nservers = [["h1", 5432, "primary"]]\nmirrors = [["m1", 6000, 0]]'
    mirrors = parse_config(toml(shard=shard)).config.pools["app"].shards["0"].mirrors
    assert mirrors is not None
    assert (mirrors[0].host, mirrors[0].port, mirrors[0].server_index) == ("m1", 6000, 0)


def test_shard_list_orders_by_number_not_by_text(toml: Callable[..., str]) -> None:
    extra = "\n".join(
        f'[pools.app.shards.{n}]\ndatabase = "db{n}"\nservers = [["h", 5432, "primary"]]'
        for n in range(1, 11)
    )
    pool = parse_config(
        toml(shard='database = "db0"\nservers = [["h", 5432, "primary"]]', extra=extra)
    ).config.pools["app"]
    assert [s.database for s in pool.shard_list] == [f"db{n}" for n in range(11)]


def test_find_user_by_username(toml: Callable[..., str]) -> None:
    extra = '[pools.app.users.1]\nusername = "bob"\npassword = "x"\npool_size = 2'
    pool = parse_config(toml(extra=extra)).config.pools["app"]
    bob = pool.find_user("bob")
    assert bob is not None and bob.pool_size == 2
    assert pool.find_user("carol") is None
    assert [u.username for u in pool.user_list] == ["alice", "bob"]


def test_default_shard_index(toml: Callable[..., str]) -> None:
    assert parse_config(toml()).config.pools["app"].default_shard_index == 0
    pool = parse_config(toml(pool='default_shard = "random_healthy"')).config.pools["app"]
    assert pool.default_shard_index is None


def test_automatic_sharding_key_loses_its_quotes(toml: Callable[..., str]) -> None:
    text = toml(pool='automatic_sharding_key = \'"data"."id"\'')
    assert parse_config(text).config.pools["app"].automatic_sharding_key == "data.id"


def test_models_are_frozen(toml: Callable[..., str]) -> None:
    config = parse_config(toml()).config
    with pytest.raises(ValueError, match="frozen"):
        config.general.port = 1


def test_seconds_properties(toml: Callable[..., str]) -> None:
    general = parse_config(toml(general="autoreload = 15000")).config.general
    assert general.connect_timeout_s == 1.0
    assert general.idle_timeout_s == 600.0
    assert general.autoreload_s == 15.0
    assert general.prometheus_enabled is False
    assert general.tls_enabled is False
