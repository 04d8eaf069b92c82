"""Reload diffs: which pools to build, drop or rebuild, and which keys need a restart."""

from __future__ import annotations

from collections.abc import Callable

from pgcat_py.config import Config, diff, parse_config

SECOND_POOL = """
[pools.other.users.0]
username = "bob"
password = "bob_pw"
pool_size = 1
[pools.other.shards.0]
database = "other"
servers = [["127.0.0.1", 5432, "primary"]]
"""


def load(text: str) -> Config:
    return parse_config(text, "pgcat.toml").config


def test_same_config_is_an_empty_diff(toml: Callable[..., str]) -> None:
    change = diff(load(toml()), parse_config(toml(), "elsewhere.toml").config)
    assert change.is_empty
    assert change.pools_changed == () and change.general_changed == ()


def test_pool_added_and_removed(toml: Callable[..., str]) -> None:
    one, two = load(toml()), load(toml(extra=SECOND_POOL))
    assert diff(one, two).pools_added == ("other",)
    assert diff(two, one).pools_removed == ("other",)
    assert diff(one, two).pools_changed == ()


def test_change_in_own_section_changes_only_that_pool(toml: Callable[..., str]) -> None:
    old = load(toml(extra=SECOND_POOL))
    new = load(toml(user="pool_size = 6", extra=SECOND_POOL).replace("pool_size = 5\n", ""))
    change = diff(old, new)
    assert change.pools_changed == ("app",)
    assert change.changed_keys == ("pools.app.users.0.pool_size",)
    assert change.general_changed == ()


def test_inherited_general_timeout_changes_pools_that_inherit_it(
    toml: Callable[..., str],
) -> None:
    pinned = SECOND_POOL.replace("pool_size = 1", "pool_size = 1\nidle_timeout = 5")
    old = load(toml(extra=pinned))
    new = load(toml(general="idle_timeout = 1234", extra=pinned))
    change = diff(old, new)
    # pgcat would rebuild neither (§1.6 quirk); "other" overrides idle_timeout per user.
    assert change.pools_changed == ("app",)
    assert change.general_changed == ("idle_timeout",)
    assert change.restart_required == ()


def test_general_key_without_pool_override_changes_every_pool(toml: Callable[..., str]) -> None:
    old = load(toml(extra=SECOND_POOL))
    new = load(toml(general="ban_time = 5", extra=SECOND_POOL))
    assert diff(old, new).pools_changed == ("app", "other")


def test_listener_keys_need_a_restart(toml: Callable[..., str]) -> None:
    change = diff(load(toml()), load(toml(general="port = 6433\nlog_client_connections = true")))
    assert change.general_changed == ("port", "log_client_connections")
    assert change.restart_required == ("port",)
    assert change.pools_changed == ()


def test_global_plugins_change_pools_without_their_own(toml: Callable[..., str]) -> None:
    own = SECOND_POOL.replace(
        "[pools.other.users.0]",
        "[pools.other]\nquery_parser_enabled = true\n"
        "[pools.other.plugins.query_logger]\nenabled = true\n[pools.other.users.0]",
    )
    old = load(toml(extra=own + "[plugins.query_logger]\nenabled = false"))
    new = load(toml(extra=own + "[plugins.query_logger]\nenabled = true"))
    change = diff(old, new)
    assert change.plugins_changed
    assert change.pools_changed == ("app",)


def test_password_change_is_named_but_not_shown(toml: Callable[..., str]) -> None:
    change = diff(load(toml()), load(toml().replace("alice_pw", "new_secret")))
    assert change.pools_changed == ("app",)
    assert change.changed_keys == ("pools.app.users.0.password",)
    assert "new_secret" not in repr(change)
