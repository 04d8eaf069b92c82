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


def _failed(user: str) -> AuthenticationFailed:
    return AuthenticationFailed(f'password authentication failed for user "{user}"')


async def _read_password_message(conn: MessageConnection) -> bytes:
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
        raise _failed(creds.username)
    if creds.auth_type == "scram-sha-256":
        return await _scram(conn, creds)
    salt = new_salt()
    conn.write(be.Authentication(be.AUTH_MD5_PASSWORD, salt).encode())
    payload = await _read_password_message(conn)
    if not verify_md5(creds.username, creds.password, salt, payload):
        raise _failed(creds.username)
    return b""


async def _scram(conn: MessageConnection, creds: Credentials) -> bytes:
    try:
        verifier = creds.scram or ScramVerifier.from_password(creds.password or "")
    except ValueError:
        raise _failed(creds.username) from None
    exchange = ScramServerExchange(verifier)
    conn.write(be.Authentication(be.AUTH_SASL, exchange.mechanisms_payload()).encode())
    try:
        first = await _read_password_message(conn)
        server_first = exchange.client_first(first)
        conn.write(be.Authentication(be.AUTH_SASL_CONTINUE, server_first).encode())
        final = await _read_password_message(conn)
        server_final = exchange.client_final(final)
    except AuthenticationFailed:
        raise _failed(creds.username) from None
    return be.Authentication(be.AUTH_SASL_FINAL, server_final).encode()
