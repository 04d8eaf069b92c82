"""A server connection's login: SSLRequest (pgcat's server_tls), the StartupMessage, the
authentication exchange (trust, cleartext, md5, SCRAM-SHA-256, or an auth_query user's
stored secret: passthrough.py), then what the server says of itself (ParameterStatus,
BackendKeyData) up to its first ReadyForQuery. Control plane only: it reads whole messages.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ..protocol import backend as be
from ..protocol.auth import md5_response
from ..protocol.errors import ServerError
from ..protocol.framing import (
    AUTHENTICATION,
    BACKEND_KEY_DATA,
    ERROR_RESPONSE,
    PARAMETER_STATUS,
    READY_FOR_QUERY,
)
from ..protocol.frontend import PasswordMessage
from ..protocol.startup import SSLRequest, StartupMessage
from .passthrough import scram_client

if TYPE_CHECKING:
    from .server import ServerConnection, ServerTarget


async def request_tls(conn: ServerConnection, context: ssl.SSLContext) -> bool:
    """SSLRequest first (pgcat's server_tls): on 'S' the TLS handshake (True); on 'N'
    plaintext goes on (False), unless the context verifies certificates: then a server
    that will not show one is refused, or a man in the middle could say 'N'."""
    t = conn.target
    conn.write(SSLRequest().encode())
    while not conn._rbuf:
        await conn._wait_for_data()
    answer = conn._rbuf[0]
    if answer == ord("N") and context.verify_mode == ssl.CERT_NONE:
        conn.consume(1)
        return False
    if answer == ord("N"):
        raise ServerError(f"server {t.name or t.host} does not accept TLS, and "
                          "verify_server_certificate is on")
    if answer == ord("E"):  # an ErrorResponse: a server that does not know SSLRequest
        _, payload = await conn.read_message()
        raise server_error(payload, t)
    if answer != ord("S") or len(conn._rbuf) > 1:
        # Bytes after the 'S' were not encrypted (libpq refuses them, CVE-2021-23222).
        raise ServerError(f"server {t.name or t.host}: unexpected answer to SSLRequest")
    conn.consume(1)
    await conn.start_tls(context, server_side=False, server_hostname=t.host)
    return True


async def log_in(conn: ServerConnection, application_name: str | None = None) -> None:
    """StartupMessage, authentication, and the server's parameters and key."""
    t = conn.target
    params = {"user": t.user, "database": t.database}
    if application_name:
        params["application_name"] = application_name
    conn.write(StartupMessage(params).encode())
    while True:
        msg_type, payload = await conn.read_message()
        if msg_type == AUTHENTICATION:
            await _authenticate(conn, payload)
        elif msg_type == PARAMETER_STATUS:
            msg = be.decode_backend(msg_type, payload)
            assert isinstance(msg, be.ParameterStatus)
            conn.defaults[msg.name.lower()] = msg.value
            conn.reported[msg.name.lower()] = (msg.name, msg.value)
        elif msg_type == BACKEND_KEY_DATA:
            key = be.decode_backend(BACKEND_KEY_DATA, payload)
            assert isinstance(key, be.BackendKeyData)
            conn.process_id, conn.secret_key = key.process_id, key.secret_key
        elif msg_type == ERROR_RESPONSE:
            raise server_error(payload, t)
        elif msg_type == READY_FOR_QUERY:
            conn.note_status(payload[0])
            return


async def _authenticate(conn: ServerConnection, payload: bytes) -> None:
    msg = be.decode_backend(AUTHENTICATION, payload)
    assert isinstance(msg, be.Authentication)
    t = conn.target
    if msg.code == be.AUTH_OK:
        return
    if msg.code == be.AUTH_SASL:
        await _scram(conn, msg.sasl_mechanisms())
        return
    password = t.password if t.secret is None else t.secret.password
    if password is None:
        raise ServerError(f"server {t.name} asks for a password and none is configured")
    if msg.code == be.AUTH_CLEARTEXT_PASSWORD:
        conn.write(PasswordMessage(password.encode() + b"\0").encode())
    elif msg.code == be.AUTH_MD5_PASSWORD:
        answer = md5_response(t.user, password, msg.data[:4])
        conn.write(PasswordMessage(answer.encode() + b"\0").encode())
    else:
        raise ServerError(f"unsupported authentication method {msg.code} on {t.name}")


async def _scram(conn: ServerConnection, mechanisms: list[str]) -> None:
    if "SCRAM-SHA-256" not in mechanisms:
        raise ServerError(f"server offers no supported SASL mechanism: {mechanisms}")
    t = conn.target
    scram = scram_client(t.user, t.password, t.secret, t.name)
    conn.write(PasswordMessage(scram.initial_response()).encode())
    first = await _sasl_step(conn, be.AUTH_SASL_CONTINUE)
    conn.write(PasswordMessage(scram.continue_(first)).encode())
    scram.final(await _sasl_step(conn, be.AUTH_SASL_FINAL))


async def _sasl_step(conn: ServerConnection, code: int) -> bytes:
    msg_type, payload = await conn.read_message()
    if msg_type == ERROR_RESPONSE:
        raise server_error(payload, conn.target)
    msg = be.decode_backend(msg_type, payload)
    if not isinstance(msg, be.Authentication) or msg.code != code:
        raise ServerError(f"unexpected message during SASL with {conn.target.name}")
    return msg.data


def server_error(payload: bytes, target: ServerTarget) -> ServerError:
    """A server's ErrorResponse as ours, naming the server."""
    err = be.decode_backend(ERROR_RESPONSE, payload)
    assert isinstance(err, be.NoticeOrError)
    return ServerError(f"server {target.name or target.host}: {err.text}",
                       sqlstate=err.sqlstate or None)
