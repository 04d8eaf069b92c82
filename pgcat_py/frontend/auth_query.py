"""A client login checked against the secret auth_query found in PostgreSQL.

The challenge follows the secret, as PostgreSQL's own does with an `md5` pg_hba line: an md5
hash (or a plaintext password) gets AuthenticationMD5Password, a SCRAM verifier gets
SCRAM-SHA-256, whose proof also gives up the ClientKey the proxy then logs in to servers
with. A user auth_query does not know goes through a SCRAM exchange against a verifier no
password matches (PostgreSQL's mock authentication does the same), and gets the same 28P01
as a wrong password.

When the proof fails the secret is looked up again (backend/auth_query.py says how often):
an md5 response is checked once more against a changed hash, so a password changed in
PostgreSQL works at the first try; a SCRAM client, whose proof is bound to the old salt,
gets 28P01 and its next login uses the new verifier.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..protocol import backend as be
from ..protocol.auth import new_salt, verify_md5
from ..protocol.errors import AuthenticationFailed
from ..protocol.scram_passthrough import mock_verifier
from .auth import failed, read_password_message, scram_exchange

if TYPE_CHECKING:
    from ..backend.auth_query import AuthQuery
    from ..backend.passthrough import StoredSecret
    from ..conn import MessageConnection


async def authenticate_by_query(conn: MessageConnection, lookup: AuthQuery,
                                user: str) -> tuple[bytes, StoredSecret, bytes]:
    """Authenticate ``user`` against its looked-up secret; raise 28P01 on failure (or 08006
    when the lookup fails). Returns SCRAM's final message (b"" for md5; sent with the
    welcome, see frontend.auth.authenticate), the secret that matched, and the ClientKey
    (b"" unless SCRAM)."""
    secret = await lookup.secret(user, time.monotonic())
    if secret is not None and secret.scram is None:
        return b"", await _md5(conn, lookup, user, secret), b""
    verifier = secret.scram if secret is not None else mock_verifier(user)
    assert verifier is not None
    try:
        sasl_final, client_key = await scram_exchange(conn, verifier, user)
    except AuthenticationFailed:
        await _refetch(lookup, user)
        raise
    if secret is None:  # unreachable: no proof matches a mock verifier
        raise failed(user)
    return sasl_final, secret, client_key


async def _md5(conn: MessageConnection, lookup: AuthQuery, user: str,
               secret: StoredSecret) -> StoredSecret:
    """The md5 exchange; the same response is checked again against a re-read hash."""
    salt = new_salt()
    conn.write(be.Authentication(be.AUTH_MD5_PASSWORD, salt).encode())
    response = await read_password_message(conn)
    if verify_md5(user, secret.text, salt, response):
        return secret
    fresh = await _refetch(lookup, user)
    if fresh is not None and fresh != secret and fresh.scram is None \
            and verify_md5(user, fresh.text, salt, response):
        return fresh
    raise failed(user)


async def _refetch(lookup: AuthQuery, user: str) -> StoredSecret | None:
    """The secret once more; a failing lookup now is no reason to hide the 28P01."""
    try:
        return await lookup.refetch(user, time.monotonic())
    except Exception:  # AuthQueryFailed, logged by the lookup
        return None
