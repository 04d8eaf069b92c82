"""Effective settings per (pool, user): user > pool > general, as src/pool.rs resolves them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pgcat_py.config import parse_config


def test_general_values_when_nothing_overrides(toml: Callable[..., str]) -> None:
    settings = parse_config(toml()).config.effective("app", "alice")
    assert settings.pool_mode == "transaction"
    assert settings.connect_timeout == 1000
    assert settings.idle_timeout == 600000
    assert settings.server_lifetime == 3600000
    assert settings.pool_size == 5
    assert settings.min_pool_size == 0
    assert settings.reserve_pool_size == 0
    assert settings.reserve_pool_timeout == 5000
    assert settings.server_reset_query == ""
    assert settings.statement_timeout == 0
    assert settings.statement_timeout_s is None
    assert settings.cleanup_server_connections is True


@pytest.mark.parametrize("key", ["connect_timeout", "idle_timeout", "server_lifetime"])
def test_timeouts_user_over_pool_over_general(toml: Callable[..., str], key: str) -> None:
    general_only = toml(general=f"{key} = 111")
    with_pool = toml(general=f"{key} = 111", pool=f"{key} = 222")
    with_user = toml(general=f"{key} = 111", pool=f"{key} = 222", user=f"{key} = 333")
    values = [
        getattr(parse_config(text).config.effective("app", "alice"), key)
        for text in (general_only, with_pool, with_user)
    ]
    assert values == [111, 222, 333]


def test_pool_mode_user_over_pool(toml: Callable[..., str]) -> None:
    config = parse_config(toml(pool='pool_mode = "session"')).config
    assert config.effective("app", "alice").pool_mode == "session"
    text = toml(pool='pool_mode = "session"', user='pool_mode = "transaction"')
    assert parse_config(text).config.effective("app", "alice").pool_mode == "transaction"


@pytest.mark.parametrize(
    ("key", "general", "pool"),
    [
        ("reserve_pool_size", "3", "7"),
        ("reserve_pool_timeout", "1000", "2500"),
        ("server_reset_query", '"DISCARD ALL"', '""'),
    ],
)
def test_extensions_pool_over_general(
    toml: Callable[..., str], key: str, general: str, pool: str
) -> None:
    text = toml(general=f"{key} = {general}")
    assert str(getattr(parse_config(text).config.effective("app", "alice"), key)) == (
        general.strip('"')
    )
    text = toml(general=f"{key} = {general}", pool=f"{key} = {pool}")
    assert str(getattr(parse_config(text).config.effective("app", "alice"), key)) == (
        pool.strip('"')
    )


def test_server_credentials_fall_back_to_client_credentials(toml: Callable[..., str]) -> None:
    settings = parse_config(toml()).config.effective("app", "alice")
    assert (settings.server_username, settings.server_password) == ("alice", "alice_pw")
    text = toml(user='server_username = "svc"\nserver_password = "svc_pw"')
    settings = parse_config(text).config.effective("app", "alice")
    assert (settings.server_username, settings.server_password) == ("svc", "svc_pw")


def test_effective_accepts_a_user_object(toml: Callable[..., str]) -> None:
    config = parse_config(toml(user="min_pool_size = 2\nstatement_timeout = 1500")).config
    user = config.pools["app"].users["0"]
    settings = config.effective("app", user)
    assert (settings.min_pool_size, settings.statement_timeout_s) == (2, 1.5)


def test_unknown_pool_or_user_is_a_key_error(toml: Callable[..., str]) -> None:
    config = parse_config(toml()).config
    with pytest.raises(KeyError):
        config.effective("nope", "alice")
    with pytest.raises(KeyError):
        config.effective("app", "bob")
