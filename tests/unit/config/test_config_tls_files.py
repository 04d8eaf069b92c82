"""Rule 4's file half (`check_tls_files`): certificate and key must load, errors name the key.
Kept out of load_config because pgcat's own configs name files inside pgcat's repository."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pgcat_py.config import ConfigError, check_tls_files, parse_config


def tls_config(toml: Callable[..., str], cert: Path, key: Path) -> str:
    return toml(general=f'tls_certificate = "{cert}"\ntls_private_key = "{key}"')


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "server.cert", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_no_tls_configured_is_fine(toml: Callable[..., str]) -> None:
    check_tls_files(parse_config(toml()).config)


def test_missing_certificate_file_names_the_key(toml: Callable[..., str], tmp_path: Path) -> None:
    config = parse_config(tls_config(toml, tmp_path / "no.cert", tmp_path / "no.key")).config
    with pytest.raises(ConfigError) as caught:
        check_tls_files(config)
    assert caught.value.key_path == "general.tls_certificate"


def test_shipped_style_relative_paths_still_load(toml: Callable[..., str]) -> None:
    # The CircleCI config names ".circleci/server.cert": loading must not look for it.
    text = tls_config(toml, Path(".circleci/server.cert"), Path(".circleci/server.key"))
    assert parse_config(text).config.general.tls_enabled


def test_valid_pair_loads(toml: Callable[..., str], key_pair: tuple[Path, Path]) -> None:
    check_tls_files(parse_config(tls_config(toml, *key_pair)).config)


def test_garbage_key_names_the_key(
    toml: Callable[..., str], key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, _ = key_pair
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key\n")
    config = parse_config(tls_config(toml, cert, bad_key)).config
    with pytest.raises(ConfigError) as caught:
        check_tls_files(config)
    assert caught.value.key_path == "general.tls_private_key"


def test_garbage_certificate_names_the_certificate(
    toml: Callable[..., str], key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    _, key = key_pair
    bad_cert = tmp_path / "bad.cert"
    bad_cert.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        check_tls_files(parse_config(tls_config(toml, bad_cert, key)).config)
    assert caught.value.key_path == "general.tls_certificate"
