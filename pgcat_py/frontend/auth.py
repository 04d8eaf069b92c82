"""Client authentication exchanges: trust, md5 and SCRAM-SHA-256, over a session's messages.

The math lives in protocol.auth; this module drives the message exchange. Every failure is
the same 28P01 "password authentication failed for user" that PostgreSQL sends, whatever went
wrong, so a client learns nothing from the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import backend as be
from ..protocol.auth import ScramServerExchange, ScramVerifier, new_salt, verify_md5
from ..protocol.errors import AuthenticationFailed, ProtocolViolation
from ..protocol.framing import PASSWORD, PG_MAX_AUTH_TOKEN_LENGTH

if TYPE_CHECKING:
    from ..conn import MessageConnection


@dataclass(frozen=True)
class Credentials:
    """How one user proves who they are to the proxy."""

    username: str
    password: str | None
    auth_type: str  # "md5", "scram-sha-256" or "trust"
    scram: ScramVerifier | None = None


def failed(user: str) -> AuthenticationFailed:
    return AuthenticationFailed(f'password authentication failed for user "{user}"')


async def read_password_message(conn: MessageConnection) -> bytes:
    # PostgreSQL reads these with pq_getmessage(buf, PG_MAX_AUTH_TOKEN_LENGTH): a longer
    # declared length ends the connection at once instead of being waited for.
    msg_type, payload = await conn.read_message(PG_MAX_AUTH_TOKEN_LENGTH)
    if msg_type != PASSWORD:
        raise ProtocolViolation(
            f"expected password response, got message type {msg_type}")
    return payload


async def authenticate(conn: MessageConnection, creds: Credentials) -> bytes:
    """Run the exchange ``creds.auth_type`` asks for; raise on failure. Returns the
    exchange's last message, not yet sent (SCRAM's AuthenticationSASLFinal; b"" for the
    others): the caller sends it in one write with AuthenticationOk and the rest of the
    welcome, as PostgreSQL does, which saves a login a send() and the client a read."""
    if creds.auth_type == "trust":
        return b""
    if creds.password is None:
        raise failed(creds.username)
    if creds.auth_type == "scram-sha-256":
        return await _scram(conn, creds)
    salt = new_salt()
    conn.write(be.Authentication(be.AUTH_MD5_PASSWORD, salt).encode())
    payload = await read_password_message(conn)
    if not verify_md5(creds.username, creds.password, salt, payload):
        raise failed(creds.username)
    return b""


async def _scram(conn: MessageConnection, creds: Credentials) -> bytes:
    try:
        verifier = creds.scram or ScramVerifier.from_password(creds.password or "")
    except ValueError:
        raise failed(creds.username) from None
    sasl_final, _client_key = await scram_exchange(conn, verifier, creds.username)
    return sasl_final


async def scram_exchange(conn: MessageConnection, verifier: ScramVerifier,
                         username: str) -> tuple[bytes, bytes]:
    """SCRAM-SHA-256 against ``verifier``: AuthenticationSASLFinal (not yet sent, see
    authenticate) and the ClientKey the client's proof carried (auth_query's server logins
    use it, backend/passthrough.py)."""
    exchange = ScramServerExchange(verifier)
    conn.write(be.Authentication(be.AUTH_SASL, exchange.mechanisms_payload()).encode())
    try:
        first = await read_password_message(conn)
        server_first = exchange.client_first(first)
        conn.write(be.Authentication(be.AUTH_SASL_CONTINUE, server_first).encode())
        final = await read_password_message(conn)
        server_final = exchange.client_final(final)
    except AuthenticationFailed:
        raise failed(username) from None
    return be.Authentication(be.AUTH_SASL_FINAL, server_final).encode(), exchange.client_key
