"""Unknown keys are warnings with their dotted path (pgcat drops them silently); valid keys
pgcat-py does not implement yet are never silently dropped either."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel

from pgcat_py.config import NOT_YET_SUPPORTED, ConfigError, lint, parse_config


def unknown_paths(text: str) -> list[str]:
    return [w.key_path for w in parse_config(text).unknown_keys]


def test_unknown_general_key_has_its_path_and_a_suggestion(toml: Callable[..., str]) -> None:
    loaded = parse_config(toml(general="ban_tme = 5"))
    [warning] = loaded.unknown_keys
    assert warning.key_path == "general.ban_tme"
    assert warning.kind == "unknown_key"
    assert "did you mean ban_time?" in warning.message
    assert loaded.config.general.ban_time == 60  # the typo changed nothing


def test_unknown_keys_at_every_depth(toml: Callable[..., str]) -> None:
    text = toml(
        pool="typo_key = 1",
        user="pool_sise = 3",
        shard='database = "db"\nservers = [["h", 1, "primary"]]\nweight = 2',
        extra="[plugins.query_logger]\nenabled = false\nverbose = true\n[metrics]\nport = 1",
    )
    assert unknown_paths(text) == [
        "pools.app.typo_key",
        "pools.app.users.0.pool_sise",
        "pools.app.shards.0.weight",
        "plugins.query_logger.verbose",
        "metrics",
    ]


def test_pgcat_toml_typo_table_pool_is_reported_at_pool(toml: Callable[..., str]) -> None:
    warnings = parse_config(toml(extra="[pool.sharded_db.plugins]")).unknown_keys
    assert [w.key_path for w in warnings] == ["pool"]
    assert "[pools.NAME]" in warnings[0].message


@pytest.mark.parametrize(
    ("general", "pool", "path", "hint"),
    [
        ("verify_config = true", "", "general.verify_config", "validate_config"),
        (
            "prepared_statements_cache_size = 5",
            "",
            "general.prepared_statements_cache_size",
            "per pool",
        ),
        (
            "",
            "db_activity_based_ms_init_delay = 5",
            "pools.app.db_activity_based_ms_init_delay",
            "db_activity_init_delay",
        ),
        (
            "",
            "table_mutation_cache_ttl = 5",
            "pools.app.table_mutation_cache_ttl",
            "table_mutation_cache_ms_ttl",
        ),
    ],
)
def test_names_from_pgcat_docs_that_its_code_ignores(
    toml: Callable[..., str], general: str, pool: str, path: str, hint: str
) -> None:
    [warning] = parse_config(toml(general=general, pool=pool)).unknown_keys
    assert warning.key_path == path
    assert hint in warning.message


def test_unknown_keys_ride_along_on_a_refusal(toml: Callable[..., str]) -> None:
    # The typo is why pool_size is missing: the error should help find it.
    text = toml().replace("pool_size = 5", "pool_sise = 5")
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.key_path == "pools.app.users.0.pool_size"
    assert [w.key_path for w in caught.value.warnings] == ["pools.app.users.0.pool_sise"]


def test_not_yet_supported_key_at_default_is_silent(toml: Callable[..., str]) -> None:
    text = toml(
        general="worker_threads = 4\nserver_tls = false\nenable_prometheus_exporter = false",
        pool="prepared_statements_cache_size = 0\nregex_search_limit = 1000",
        user="statement_timeout = 0",
    )
    assert parse_config(text).warnings == []


# No key is "not yet supported" today; the mechanism is tested with auth_query's keys,
# the last ones that were.
WAS_NOT_YET_SUPPORTED = frozenset(
    {"general.auth_query", "general.auth_query_user", "general.auth_query_password"})


def test_auth_query_keys_are_supported(toml: Callable[..., str]) -> None:
    general = 'auth_query = "q"\nauth_query_user = "u"\nauth_query_password = "p"'
    pool = 'auth_query = "q2"\nauth_query_user = "u2"\nauth_query_password = "p2"'
    assert parse_config(toml(general=general, pool=pool)).warnings == []


def test_not_yet_supported_key_set_is_warned_with_its_path(
        toml: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint, "NOT_YET_SUPPORTED", WAS_NOT_YET_SUPPORTED)
    text = toml(
        general="auth_query = 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1'\n"
                "auth_query_user = 'u'\nauth_query_password = 'p'",
        pool="query_parser_enabled = true\ndb_activity_ttl = 100",
        user="statement_timeout = 100",
        shard='database = "db"\nservers = [["h", 1, "primary"]]\nmirrors = [["m", 1, 0]]',
    )
    warnings = parse_config(text).warnings
    assert all(w.kind == "not_yet_supported" for w in warnings)
    assert [w.key_path for w in warnings] == [
        "general.auth_query",
        "general.auth_query_password",
        "general.auth_query_user",
    ]
    assert "not support it yet" in warnings[0].message


def test_plugins_and_db_activity_routing_are_supported(toml: Callable[..., str]) -> None:
    text = toml(pool="query_parser_enabled = true\ndb_activity_based_routing = true",
                extra="[plugins.query_logger]\nenabled = true")
    assert parse_config(text).warnings == []


def test_not_yet_supported_warning_never_shows_a_secret(
        toml: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint, "NOT_YET_SUPPORTED", WAS_NOT_YET_SUPPORTED)
    general = 'auth_query = "q"\nauth_query_user = "u"\nauth_query_password = "hunter2"'
    warnings = parse_config(toml(general=general)).warnings
    assert "general.auth_query_password" in [w.key_path for w in warnings]
    assert not any("hunter2" in str(w) for w in warnings)


def test_every_not_yet_supported_path_names_a_real_key() -> None:
    from pgcat_py.config import Config, General, Pool, Shard, User

    owners: dict[str, type[BaseModel]] = {
        "general": General,
        "pools.*": Pool,
        "pools.*.users.*": User,
        "pools.*.shards.*": Shard,
        "": Config,
    }
    for path in NOT_YET_SUPPORTED:
        owner, _, key = path.rpartition(".")
        assert key in owners[owner].model_fields, path
