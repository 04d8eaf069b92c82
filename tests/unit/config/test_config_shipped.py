"""pgcat's own configs, and the Permify guide's, load unchanged (read from ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgcat_py.config import load_config

SHIPPED = [
    "pgcat.toml",
    "pgcat.minimal.toml",
    "examples__docker__pgcat.toml",
    "circleci__pgcat.toml",
    "tests__go__pgcat.toml",
    "permify-seed.toml",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_unchanged(
    shipped_configs: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pgcat's Go test config has `port = "${PORT}"` (its harness substitutes it); ours
    # resolves the same reference from the environment.
    monkeypatch.setenv("PORT", "6432")
    loaded = load_config(shipped_configs / name)
    assert loaded.config.path == str(shipped_configs / name)
    assert loaded.config.pools


@pytest.mark.parametrize("name", SHIPPED)
def test_no_key_of_a_shipped_config_is_left_unsupported(
    shipped_configs: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13's promise: every key pgcat's own configs set does what pgcat says.
    monkeypatch.setenv("PORT", "6432")
    loaded = load_config(shipped_configs / name)
    assert [w for w in loaded.warnings if w.kind == "not_yet_supported"] == []


def test_every_shipped_file_is_covered(shipped_configs: Path) -> None:
    assert sorted(p.name for p in shipped_configs.glob("*.toml")) == sorted(SHIPPED)


def test_pgcat_toml_values_match_pgcats_own_unit_test(shipped_configs: Path) -> None:
    # The assertions of src/config.rs `test_config`, plus keys that moved under typos.
    config = load_config(shipped_configs / "pgcat.toml").config
    assert config.general.ban_time == 60
    assert config.general.idle_client_in_transaction_timeout == 0
    assert config.general.idle_timeout == 30000
    assert config.general.worker_threads == 5
    assert config.general.autoreload == 15000
    assert len(config.pools) == 2
    sharded = config.pools["sharded_db"]
    assert len(sharded.shards) == 3
    assert sharded.idle_timeout == 40000
    assert sharded.connect_timeout == 3000
    assert len(sharded.users) == 2
    assert sharded.shards["0"].servers[0].host == "127.0.0.1"
    assert sharded.shards["1"].servers[0].role == "primary"
    assert sharded.shards["1"].database == "shard1"
    assert [s.database for s in sharded.shard_list] == ["shard0", "shard1", "shard2"]
    assert sharded.users["0"].username == "sharding_user"
    assert sharded.users["1"].password == "other_user"
    assert sharded.users["1"].pool_size == 21
    assert sharded.default_role == "any"
    assert sharded.prepared_statements_cache_size == 500
    simple = config.pools["simple_db"]
    assert len(simple.shards) == 1
    assert len(simple.users) == 1
    assert simple.shards["0"].servers[0].port == 5432
    assert simple.shards["0"].database == "some_db"
    assert simple.default_role == "primary"
    assert simple.pool_mode == "session"
    assert simple.users["0"].min_pool_size == 3
    assert simple.users["0"].server_lifetime == 60000
    assert config.general.auth_query is None


def test_pgcat_toml_plugins_global_and_per_pool(shipped_configs: Path) -> None:
    config = load_config(shipped_configs / "pgcat.toml").config
    assert config.plugins is not None
    assert config.plugins.enabled_names() == ["intercept"]
    assert config.plugins.table_access is not None
    assert config.plugins.table_access.tables == ["pg_user", "pg_roles", "pg_database"]
    own = config.plugins_for("sharded_db")
    assert own is not None and own.enabled_names() == ["intercept", "prewarmer"]
    assert config.plugins_for("simple_db") == config.plugins
    assert own.intercept is not None
    query = own.intercept.queries["1"]
    assert query.columns[2] == ["current_user", "text"]
    assert query.result == [["${DATABASE}", "public", "${USER}"]]  # pgcat's placeholders


def test_pgcat_toml_typo_table_is_the_only_unknown_key(shipped_configs: Path) -> None:
    loaded = load_config(shipped_configs / "pgcat.toml")
    assert [w.key_path for w in loaded.unknown_keys] == ["pool"]


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "pgcat.toml"])
def test_other_shipped_configs_have_no_unknown_keys(
    shipped_configs: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "6432")
    assert load_config(shipped_configs / name).unknown_keys == []


def test_minimal_config_takes_code_defaults(shipped_configs: Path) -> None:
    config = load_config(shipped_configs / "pgcat.minimal.toml").config
    assert config.general.port == 6433
    assert config.general.connect_timeout == 1000
    pool = config.pools["pgml"]
    assert pool.pool_mode == "transaction"
    assert pool.users["0"].min_pool_size == 1
    assert pool.shards["0"].servers[0].port == 28815


def test_go_config_port_comes_from_environment(
    shipped_configs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "7432")
    config = load_config(shipped_configs / "tests__go__pgcat.toml").config
    assert config.general.port == 7432
    assert config.general.server_round_robin is False


def test_permify_seed_is_session_mode_with_a_replica(shipped_configs: Path) -> None:
    config = load_config(shipped_configs / "permify-seed.toml").config
    pool = config.pools["postgres"]
    assert pool.pool_mode == "session"
    assert pool.query_parser_read_write_splitting is True
    shard = pool.shard_list[0]
    assert shard.primary is not None and shard.primary.host == "PRIMARY_HOST"
    assert [r.host for r in shard.replicas] == ["REPLICA_HOST"]
    assert config.general.enable_prometheus_exporter is False
