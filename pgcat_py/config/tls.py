"""The SSL contexts `[general]` asks for, built once at startup with the stdlib `ssl` module.

`client_ssl_context`: we are the TLS server for clients (tls_certificate, tls_private_key).
`server_ssl_context`: we are the TLS client of PostgreSQL servers (server_tls,
verify_server_certificate, server_tls_ca_file). A file that does not load is a ConfigError
naming its key, so a broken certificate stops the proxy at startup (exit 78), never at the
first client. Paths are relative to the working directory, as in pgcat.
"""

from __future__ import annotations

import ssl

from pgcat_py.config.errors import ConfigError
from pgcat_py.config.model import Config

# PostgreSQL's ssl_min_protocol_version default (runtime config, "SSL"); libpq's too.
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


def client_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The context client connections are upgraded with; None without tls_certificate.

    No client certificates are asked for (pgcat neither): clients authenticate with passwords.
    """
    general = config.general
    if general.tls_certificate is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_TLS_VERSION
    try:
        # The certificate alone first, so a bad one is not blamed on the key.
        context.load_verify_locations(cafile=general.tls_certificate)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            config.path, "general.tls_certificate", f"cannot load the certificate: {exc}"
        ) from None
    try:
        context.load_cert_chain(general.tls_certificate, general.tls_private_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            config.path, "general.tls_private_key", f"cannot load the private key: {exc}"
        ) from None
    return context


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The context server connections are upgraded with; None without server_tls.

    With verify_server_certificate the certificate must chain to server_tls_ca_file (or the
    system store) and name the server's host as configured (libpq's sslmode=verify-full);
    without it any certificate is taken (sslmode=require).
    """
    general = config.general
    if not general.server_tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = MIN_TLS_VERSION
    if not general.verify_server_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if general.server_tls_ca_file is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context
    try:
        context.load_verify_locations(cafile=general.server_tls_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            config.path, "general.server_tls_ca_file", f"cannot load the CA certificates: {exc}"
        ) from None
    return context
