"""Client TLS: the answer to SSLRequest, the upgrade, and `tls_mode = "require"`.

As in PostgreSQL's backend startup (ProcessStartupPacket, then ProcessSSLStartup): a client
may send SSLRequest before its StartupMessage; 'S' starts the TLS handshake and everything
after it, the StartupMessage included, is encrypted; 'N' (no certificate configured) lets
the client go on in plaintext or give up, as its sslmode says. Only the handshake itself
lives here (conn.py's start_tls); login.py decides when to call it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.tls import client_ssl_context
from ..protocol.errors import INVALID_AUTHORIZATION, ProtocolViolation, ProxyError

if TYPE_CHECKING:
    from ..config import Config
    from ..conn import MessageConnection

# The one-byte answers to SSLRequest (Frontend/Backend Protocol, "SSL Session Encryption");
# GSSENCRequest always gets 'N': no GSSAPI here.
SSL_ACCEPTED = b"S"
SSL_REFUSED = b"N"


@dataclass(frozen=True)
class ClientTls:
    """What the listener offers clients: the context built at startup, and whether a
    client that does not ask for TLS is refused."""

    context: ssl.SSLContext
    required: bool


def client_tls(config: Config) -> ClientTls | None:
    """None without tls_certificate; ConfigError naming the key when a file does not load."""
    context = client_ssl_context(config)
    if context is None:
        return None
    return ClientTls(context, config.general.tls_required)


async def answer_ssl_request(conn: MessageConnection, tls: ClientTls | None) -> bool:
    """'S' and the TLS handshake (True), or 'N' when no certificate is configured (False)."""
    if tls is None:
        conn.write(SSL_REFUSED)
        return False
    if conn.has_unread:
        # Bytes sent behind the SSLRequest, before the handshake, were not encrypted: a
        # man in the middle may have put them there (PostgreSQL refuses them since
        # CVE-2021-23214).
        raise ProtocolViolation("received unencrypted data after SSL request")
    conn.write(SSL_ACCEPTED)
    await conn.start_tls(tls.context, server_side=True)
    return True


def encryption_request_again(name: str) -> ProtocolViolation:
    """A second SSLRequest (or a GSSENCRequest) on a connection already encrypted."""
    return ProtocolViolation(f"{name} received on a connection that is already encrypted")


def tls_required() -> ProxyError:
    """The answer to a plaintext StartupMessage under tls_mode = "require"."""
    return ProxyError("SSL/TLS required: this pooler accepts only encrypted connections",
                      sqlstate=INVALID_AUTHORIZATION, severity="FATAL",
                      detail='Connect with sslmode=require (or stronger); the pooler\'s '
                             'tls_mode is "require".')

