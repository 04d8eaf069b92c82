"""Every refusal names the file and the key path to fix (pgcat.md §1.5 rules, type errors,
missing keys, bad TOML, missing file), and the CLI's exit code is EX_CONFIG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pgcat_py.config import EX_CONFIG, ConfigError, load_config, parse_config


def refusal(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "pgcat.toml", environ={})
    return caught.value


def test_exit_code_is_ex_config() -> None:
    assert EX_CONFIG == 78


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == str(path)
    assert caught.value.key_path == ""
    assert str(caught.value) == f"{path}: cannot read the file: No such file or directory"


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[general]\nport = 6432\nhost = "0.0.0.0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == str(path)
    assert "invalid TOML" in caught.value.message
    assert "line 3" in caught.value.message


def test_missing_required_user_key_names_its_path(toml: Callable[..., str]) -> None:
    text = toml().replace("pool_size = 5\n", "")
    error = refusal(text)
    assert error.key_path == "pools.app.users.0.pool_size"
    assert str(error) == "pgcat.toml: pools.app.users.0.pool_size: field required"


def test_missing_admin_password_names_its_path() -> None:
    error = refusal('[general]\nadmin_username = "a"\n[pools]\n')
    assert error.key_path == "general.admin_password"


def test_missing_shard_database_names_its_path(toml: Callable[..., str]) -> None:
    error = refusal(toml(shard='servers = [["h", 5432, "primary"]]'))
    assert error.key_path == "pools.app.shards.0.database"


def test_type_error_shows_the_value(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool='connect_timeout = "soon"'))
    assert error.key_path == "pools.app.connect_timeout"
    assert "valid integer" in error.message and "'soon'" in error.message


def test_bool_is_not_an_integer(toml: Callable[..., str]) -> None:
    assert refusal(toml(user="statement_timeout = true")).key_path == (
        "pools.app.users.0.statement_timeout"
    )


def test_string_is_not_a_bool(toml: Callable[..., str]) -> None:
    # pgcat's serde rejects it too; lax coercion would hide "false" being a string.
    assert refusal(toml(general='server_tls = "false"')).key_path == "general.server_tls"


def test_port_beyond_u16(toml: Callable[..., str]) -> None:
    assert refusal(toml(general="port = 70000")).key_path == "general.port"


def test_prometheus_port_is_i16_like_pgcat(toml: Callable[..., str]) -> None:
    assert refusal(toml(general="prometheus_exporter_port = 40000")).key_path == (
        "general.prometheus_exporter_port"
    )


def test_negative_timeout(toml: Callable[..., str]) -> None:
    assert refusal(toml(general="idle_timeout = -1")).key_path == "general.idle_timeout"


def test_server_with_bad_port_names_the_entry(toml: Callable[..., str]) -> None:
    shard = 'database = "db"\nservers = [["h", 5432, "primary"], ["h2", "x", "replica"]]'
    assert refusal(toml(shard=shard)).key_path == "pools.app.shards.0.servers.1.port"


def test_server_array_of_wrong_length(toml: Callable[..., str]) -> None:
    error = refusal(toml(shard='database = "db"\nservers = [["h", 5432]]'))
    assert error.key_path == "pools.app.shards.0.servers.0"
    assert "[host, port, role]" in error.message


def test_server_role_unknown(toml: Callable[..., str]) -> None:
    error = refusal(toml(shard='database = "db"\nservers = [["h", 5432, "leader"]]'))
    assert error.key_path == "pools.app.shards.0.servers.0.role"


def test_pool_mode_unknown(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool='pool_mode = "statement"'))
    assert error.key_path == "pools.app.pool_mode"
    assert "'transaction' or 'session'" in error.message


def test_all_problems_are_listed(toml: Callable[..., str]) -> None:
    error = refusal(toml(general="port = -1", pool='pool_mode = "x"'))
    assert [p.key_path for p in error.problems] == ["general.port", "pools.app.pool_mode"]
    assert str(error).endswith("(and 1 more)")


# --- pgcat.md §1.5, rule by rule -----------------------------------------------------------


def test_rule1_general_auth_query_needs_user_and_password(toml: Callable[..., str]) -> None:
    error = refusal(toml(general='auth_query = "SELECT usename, passwd FROM pg_shadow"'))
    assert [p.key_path for p in error.problems] == [
        "general.auth_query_user",
        "general.auth_query_password",
    ]


def test_rule2_pool_auth_query_needs_user_and_password(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool='auth_query = "SELECT 1"\nauth_query_user = "u"'))
    assert error.key_path == "pools.app.auth_query_password"


def test_rule2_pool_inherits_general_auth_query_keys(toml: Callable[..., str]) -> None:
    general = 'auth_query_user = "u"\nauth_query_password = "p"'
    loaded = parse_config(toml(general=general, pool='auth_query = "SELECT 1"'))
    assert loaded.config.effective("app", "alice").auth_query_user == "u"


def test_rule3_user_needs_password_without_auth_query(toml: Callable[..., str]) -> None:
    error = refusal(toml().replace('password = "alice_pw"\n', ""))
    assert error.key_path == "pools.app.users.0.password"


def test_rule3_user_without_password_is_fine_with_auth_query(toml: Callable[..., str]) -> None:
    general = 'auth_query = "SELECT 1"\nauth_query_user = "u"\nauth_query_password = "p"'
    text = toml(general=general).replace('password = "alice_pw"\n', "")
    assert parse_config(text).config.pools["app"].users["0"].password is None


def test_rule4_tls_certificate_needs_private_key(toml: Callable[..., str]) -> None:
    error = refusal(toml(general='tls_certificate = "server.cert"'))
    assert error.key_path == "general.tls_private_key"


def test_rule5_default_role(toml: Callable[..., str]) -> None:
    assert refusal(toml(pool='default_role = "leader"')).key_path == "pools.app.default_role"


def test_rule6_shard_key_must_be_a_number(toml: Callable[..., str]) -> None:
    extra = '[pools.app.shards.first]\ndatabase = "db"\nservers = [["h", 5432, "primary"]]'
    assert refusal(toml(extra=extra)).key_path == "pools.app.shards.first"


def test_rule6_shard_numbers_without_gaps(toml: Callable[..., str]) -> None:
    extra = '[pools.app.shards.2]\ndatabase = "db"\nservers = [["h", 5432, "primary"]]'
    error = refusal(toml(extra=extra))
    assert error.key_path == "pools.app.shards"
    assert "0, 2" in error.message


def test_rule6_shard_needs_a_server(toml: Callable[..., str]) -> None:
    error = refusal(toml(shard='database = "db"\nservers = []'))
    assert error.key_path == "pools.app.shards.0.servers"


def test_rule6_at_most_one_primary(toml: Callable[..., str]) -> None:
    shard = (
        'database = "db"\nservers = [["a", 1, "primary"], ["b", 1, "replica"], ["c", 1, "primary"]]'
    )
    error = refusal(toml(shard=shard))
    assert error.key_path == "pools.app.shards.0.servers.2"
    assert "servers.0" in error.message


def test_rule6_duplicate_server(toml: Callable[..., str]) -> None:
    shard = (
        'database = "db"\nservers = [["a", 1, "primary"], ["b", 1, "replica"], ["b", 1, "Replica"]]'
    )
    error = refusal(toml(shard=shard))
    assert error.key_path == "pools.app.shards.0.servers.2"
    assert error.message == "duplicate of servers.1"


def test_rule6_same_address_as_primary_and_replica_is_allowed(toml: Callable[..., str]) -> None:
    # pgcat's own example config does this.
    shard = 'database = "db"\nservers = [["a", 1, "primary"], ["a", 1, "replica"]]'
    assert len(parse_config(toml(shard=shard)).config.pools["app"].shards["0"].servers) == 2


def test_rule7_shard_id_regex_compiles(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool="shard_id_regex = '/\\* shard_id: (\\d+ \\*/'"))
    assert error.key_path == "pools.app.shard_id_regex"
    assert "regular expression" in error.message


def test_rule7_sharding_key_regex_compiles(toml: Callable[..., str]) -> None:
    assert refusal(toml(pool="sharding_key_regex = '['")).key_path == (
        "pools.app.sharding_key_regex"
    )


def test_rule7_pgcat_example_regexes_compile(toml: Callable[..., str]) -> None:
    pool = (
        "sharding_key_regex = '/\\* sharding_key: (\\d+) \\*/'\n"
        "shard_id_regex = '/\\* shard_id: (\\d+) \\*/'"
    )
    assert parse_config(toml(pool=pool)).config.pools["app"].shard_id_regex is not None


def test_rule8_read_write_splitting_needs_parser(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool="query_parser_read_write_splitting = true"))
    assert error.key_path == "pools.app.query_parser_read_write_splitting"


def test_rule9_pool_plugins_need_parser(toml: Callable[..., str]) -> None:
    extra = "[pools.app.plugins.query_logger]\nenabled = true"
    assert refusal(toml(extra=extra)).key_path == "pools.app.plugins"


def test_rule9_global_plugins_need_no_parser(toml: Callable[..., str]) -> None:
    extra = "[plugins.query_logger]\nenabled = true"
    assert parse_config(toml(extra=extra)).config.plugins is not None


def test_plugin_tables_have_every_field_required(toml: Callable[..., str]) -> None:
    extra = "[plugins.table_access]\nenabled = true"
    assert refusal(toml(extra=extra)).key_path == "plugins.table_access.tables"


def test_rule10_automatic_sharding_key_is_table_dot_column(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool='automatic_sharding_key = "id"'))
    assert error.key_path == "pools.app.automatic_sharding_key"


def test_rule11_default_shard_within_shards(toml: Callable[..., str]) -> None:
    error = refusal(toml(pool='default_shard = "shard_1"'))
    assert error.key_path == "pools.app.default_shard"
    assert "invalid shard 1" in error.message


def test_rule11_default_shard_format(toml: Callable[..., str]) -> None:
    assert refusal(toml(pool='default_shard = "first"')).key_path == "pools.app.default_shard"


def test_rule12_min_pool_size_at_most_pool_size(toml: Callable[..., str]) -> None:
    error = refusal(toml(user="min_pool_size = 6"))
    assert error.key_path == "pools.app.users.0.min_pool_size"
    assert error.message == "min_pool_size (6) cannot be larger than pool_size (5)"


@pytest.mark.parametrize(
    "key", ["db_activity_init_delay", "table_mutation_cache_ms_ttl", "db_activity_ttl"]
)
def test_rule13_db_activity_durations_positive(toml: Callable[..., str], key: str) -> None:
    error = refusal(toml(pool=f"db_activity_based_routing = true\n{key} = 0"))
    assert error.key_path == f"pools.app.{key}"


def test_rule13_zero_is_fine_when_routing_is_off(toml: Callable[..., str]) -> None:
    assert parse_config(toml(pool="db_activity_ttl = 0")).config.pools["app"].db_activity_ttl == 0


# --- beyond pgcat: what would crash or misroute at run time ---------------------------------


def test_pool_size_zero_is_refused(toml: Callable[..., str]) -> None:
    text = toml().replace("pool_size = 5", "pool_size = 0")
    assert refusal(text).key_path == "pools.app.users.0.pool_size"


def test_pool_without_shards_is_refused(toml: Callable[..., str]) -> None:
    text = toml(pool="shards = {}").split("[pools.app.shards.0]")[0]
    assert refusal(text).key_path == "pools.app.shards"


def test_duplicate_username_in_a_pool(toml: Callable[..., str]) -> None:
    extra = '[pools.app.users.1]\nusername = "alice"\npassword = "x"\npool_size = 1'
    error = refusal(toml(extra=extra))
    assert error.key_path == "pools.app.users.1.username"
    assert "users.0" in error.message


def test_mirror_pointing_past_the_servers(toml: Callable[..., str]) -> None:
    shard = 'database = "db"\nservers = [["h", 5432, "primary"]]\nmirrors = [["m", 1, 1]]'
    assert refusal(toml(shard=shard)).key_path == "pools.app.shards.0.mirrors.0"


def test_pool_name_needing_quotes_is_quoted_in_the_path(toml: Callable[..., str]) -> None:
    text = toml(pool='pool_mode = "x"').replace("pools.app", 'pools."my.db"')
    assert refusal(text).key_path == 'pools."my.db".pool_mode'
