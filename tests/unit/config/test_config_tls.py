"""config/tls.py and the TLS keys: tls_mode, server_tls_ca_file, the SSL contexts built
once at startup, and every refusal naming its key (also through `pgcat-py --check`)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from pgcat_py.cli import check
from pgcat_py.config import ConfigError, check_tls_files, diff, parse_config
from pgcat_py.config.tls import client_ssl_context, server_ssl_context
from tests.harness.certs import CertFiles, make_ca, make_leaf


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def leaf(ca: CertFiles, tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_leaf(tmp_path_factory.mktemp("leaf"), ca, "proxy", "DNS:localhost")


def listener(files: CertFiles, extra: str = "") -> str:
    return f'tls_certificate = "{files.cert}"\ntls_private_key = "{files.key}"\n{extra}'


def refusal(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "pgcat.toml", environ={})
    return caught.value


# --- tls_mode ------------------------------------------------------------------------------
def test_tls_mode_defaults_to_prefer(toml: Callable[..., str]) -> None:
    general = parse_config(toml()).config.general
    assert (general.tls_mode, general.tls_required) == ("prefer", False)
    assert general.server_tls_ca_file is None


def test_tls_mode_is_case_insensitive(toml: Callable[..., str], leaf: CertFiles) -> None:
    general = parse_config(toml(general=listener(leaf, 'tls_mode = "REQUIRE"'))).config.general
    assert general.tls_required


def test_unknown_tls_mode_names_the_key(toml: Callable[..., str]) -> None:
    error = refusal(toml(general='tls_mode = "verify-full"'))
    assert error.key_path == "general.tls_mode"
    assert "'prefer' or 'require'" in error.message


def test_require_without_a_certificate_is_refused(toml: Callable[..., str]) -> None:
    # pgcat cannot require TLS (its #633); asking for it with nothing to offer is a mistake.
    error = refusal(toml(general='tls_mode = "require"'))
    assert error.key_path == "general.tls_mode"
    assert "tls_certificate" in error.message


def test_tls_keys_are_no_longer_not_yet_supported(toml: Callable[..., str],
                                                  leaf: CertFiles, ca: CertFiles) -> None:
    extra = (f'tls_mode = "require"\nserver_tls = true\nverify_server_certificate = true\n'
             f'server_tls_ca_file = "{ca.cert}"')
    assert parse_config(toml(general=listener(leaf, extra))).warnings == []


# --- the client-facing context -------------------------------------------------------------
def test_no_certificate_no_client_context(toml: Callable[..., str]) -> None:
    assert client_ssl_context(parse_config(toml()).config) is None


def test_client_context_serves_tls_1_2_and_up(toml: Callable[..., str], leaf: CertFiles) -> None:
    context = client_ssl_context(parse_config(toml(general=listener(leaf))).config)
    assert context is not None
    assert context.protocol == ssl.PROTOCOL_TLS_SERVER
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # no client certificates asked for


def test_key_of_another_certificate_names_the_key(toml: Callable[..., str], leaf: CertFiles,
                                                  ca: CertFiles) -> None:
    mismatched = CertFiles(leaf.cert, ca.key)
    config = parse_config(toml(general=listener(mismatched))).config
    with pytest.raises(ConfigError) as caught:
        client_ssl_context(config)
    assert caught.value.key_path == "general.tls_private_key"


# --- the server-facing context -------------------------------------------------------------
def test_no_server_tls_no_server_context(toml: Callable[..., str]) -> None:
    assert server_ssl_context(parse_config(toml()).config) is None


def test_server_tls_alone_takes_any_certificate(toml: Callable[..., str]) -> None:
    context = server_ssl_context(parse_config(toml(general="server_tls = true")).config)
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)


def verifying(ca_file: Path) -> str:
    return f'server_tls = true\nverify_server_certificate = true\nserver_tls_ca_file = "{ca_file}"'


def test_verify_checks_chain_and_host_name(toml: Callable[..., str], ca: CertFiles) -> None:
    general = verifying(ca.cert)
    context = server_ssl_context(parse_config(toml(general=general)).config)
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert [cert["subject"] for cert in context.get_ca_certs()] == [
        ((("commonName", "pgcat-py test ca"),),)]


def test_verify_without_ca_file_uses_the_system_store(toml: Callable[..., str]) -> None:
    general = "server_tls = true\nverify_server_certificate = true"
    context = server_ssl_context(parse_config(toml(general=general)).config)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED


def test_unloadable_ca_file_names_the_key(toml: Callable[..., str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    config = parse_config(toml(general=verifying(bad))).config
    for build in (server_ssl_context, check_tls_files):
        with pytest.raises(ConfigError) as caught:
            build(config)
        assert caught.value.key_path == "general.server_tls_ca_file"


# --- reload and --check --------------------------------------------------------------------
def test_listener_tls_keys_need_a_restart(toml: Callable[..., str], leaf: CertFiles) -> None:
    before = parse_config(toml()).config
    after = parse_config(toml(general=listener(leaf, 'tls_mode = "require"'))).config
    assert sorted(diff(before, after).restart_required) == [
        "tls_certificate", "tls_mode", "tls_private_key"]


def test_server_tls_ca_file_rebuilds_the_pools(toml: Callable[..., str], ca: CertFiles) -> None:
    before = parse_config(toml()).config
    after = parse_config(toml(general=f'server_tls_ca_file = "{ca.cert}"')).config
    assert diff(before, after).pools_changed == ("app",)


def test_check_fails_naming_the_key_of_a_file_that_does_not_load(
        toml: Callable[..., str], leaf: CertFiles, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pgcat.toml"
    path.write_text(toml(general=listener(CertFiles(leaf.cert, tmp_path / "missing.key"))))
    assert check(str(path)) == 78
    expected = f"{path}: general.tls_private_key: cannot load the private key"
    assert expected in capsys.readouterr().err
