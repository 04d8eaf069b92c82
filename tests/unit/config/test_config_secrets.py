"""Secrets from the environment (`"${NAME}"`), and passwords never in reprs, errors or the
redacted view (DESIGN.md §5 and invariant 5)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pgcat_py.config import ConfigError, parse_config

SECRETS = ("admin_pw", "alice_pw", "server_pw", "query_pw")

INTERCEPT = """
[plugins.intercept]
enabled = true
[plugins.intercept.queries.0]
query = "select current_user"
schema = [["current_user", "text"]]
result = [["${USER}"]]
"""


def full_of_secrets(toml: Callable[..., str]) -> str:
    return toml(
        general='auth_query = "q"\nauth_query_user = "u"\nauth_query_password = "query_pw"',
        user='server_password = "server_pw"',
    )


def test_password_from_environment(toml: Callable[..., str]) -> None:
    text = toml().replace('"alice_pw"', '"${ALICE_PASSWORD}"')
    config = parse_config(text, environ={"ALICE_PASSWORD": "from-env"}).config
    assert config.pools["app"].users["0"].password == "from-env"


def test_admin_password_from_os_environ(
    toml: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGCAT_ADMIN_PASSWORD", "s3cret")
    text = toml().replace('"admin_pw"', '"${PGCAT_ADMIN_PASSWORD}"')
    assert parse_config(text).config.general.admin_password == "s3cret"


def test_unset_variable_names_the_key_and_the_variable(toml: Callable[..., str]) -> None:
    text = toml().replace('"alice_pw"', '"${ALICE_PASSWORD}"')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "pgcat.toml", environ={})
    assert str(caught.value) == (
        "pgcat.toml: pools.app.users.0.password: environment variable ALICE_PASSWORD is not set"
    )


def test_integer_key_from_environment(toml: Callable[..., str]) -> None:
    text = toml(general='port = "${PORT}"')
    assert parse_config(text, environ={"PORT": "6432"}).config.general.port == 6432


def test_integer_key_from_environment_must_be_an_integer(toml: Callable[..., str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(toml(general='port = "${PORT}"'), environ={"PORT": "high"})
    assert caught.value.key_path == "general.port"
    assert "must hold an integer" in caught.value.message


def test_bool_key_from_environment(toml: Callable[..., str]) -> None:
    text = toml(general='server_tls = "${TLS}"')
    assert parse_config(text, environ={"TLS": "True"}).config.general.server_tls is True


def test_server_host_from_environment(toml: Callable[..., str]) -> None:
    shard = 'database = "db"\nservers = [["${PRIMARY_HOST}", 5432, "primary"]]'
    config = parse_config(toml(shard=shard), environ={"PRIMARY_HOST": "db1"}).config
    assert config.pools["app"].shards["0"].servers[0].host == "db1"


def test_only_a_whole_reference_is_substituted(toml: Callable[..., str]) -> None:
    text = toml().replace('"alice_pw"', '"pre${X}post"')
    assert parse_config(text, environ={"X": "y"}).config.pools["app"].users["0"].password == (
        "pre${X}post"
    )


def test_intercept_placeholders_are_left_for_pgcat(toml: Callable[..., str]) -> None:
    config = parse_config(toml(extra=INTERCEPT), environ={}).config
    assert config.plugins is not None and config.plugins.intercept is not None
    assert config.plugins.intercept.queries["0"].result == [["${USER}"]]


def test_repr_hides_passwords(toml: Callable[..., str]) -> None:
    config = parse_config(full_of_secrets(toml)).config
    text = repr(config) + str(config) + repr(config.effective("app", "alice"))
    assert not any(secret in text for secret in SECRETS)


def test_redacted_view_stars_every_password(toml: Callable[..., str]) -> None:
    config = parse_config(full_of_secrets(toml)).config
    view = config.redacted()
    dumped = json.dumps(view)
    assert not any(secret in dumped for secret in SECRETS)
    assert view["general"]["admin_password"] == "***"
    assert view["general"]["auth_query_password"] == "***"
    user = view["pools"]["app"]["users"]["0"]
    assert (user["password"], user["server_password"]) == ("***", "***")
    assert user["username"] == "alice"
    assert view["pools"]["app"]["auth_query_password"] is None  # unset stays unset


def test_wrongly_typed_password_is_not_echoed(toml: Callable[..., str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(toml().replace('"alice_pw"', "123456789"))
    assert caught.value.key_path == "pools.app.users.0.password"
    assert "123456789" not in str(caught.value)


def test_redacted_view_uses_toml_key_names(toml: Callable[..., str]) -> None:
    view = parse_config(toml(extra=INTERCEPT)).config.redacted()
    assert view["plugins"]["intercept"]["queries"]["0"]["schema"] == [["current_user", "text"]]
