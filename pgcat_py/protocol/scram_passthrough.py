"""SCRAM-SHA-256 without the password: stored secrets, ClientKey recovery, and the client
half of a server login that answers with a recovered ClientKey.

With auth_query the proxy knows only what PostgreSQL stores, the verifier
``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (src/common/scram-common.c,
scram_build_secret). That checks a client's proof but cannot log in anywhere: a login needs
the ClientKey, of which StoredKey is only the hash. A client that proves itself hands it
over, though (RFC 5802 §3):

    ClientSignature = HMAC(StoredKey, AuthMessage)
    ClientProof     = ClientKey XOR ClientSignature
    so ClientKey    = ClientProof XOR ClientSignature, and H(ClientKey) must be StoredKey

PgBouncer keeps that ClientKey and answers servers with it (its scram.c, "SCRAM pass-through");
so do we. It works where the server keeps the same verifier (the same salt and iteration
count), which is the case when the verifier came from that server's pg_authid. No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from .auth import SCRAM_SHA_256, ScramVerifier, recover_client_key
from .errors import AuthenticationFailed
from .wire import cstr, i32

__all__ = ["ScramKeys", "ScramPassthroughClient", "mock_verifier", "parse_scram_secret",
           "recover_client_key"]

SCRAM_KEY_LEN = 32  # SHA-256 output (scram-common.h SCRAM_SHA_256_KEY_LEN)
CLIENT_NONCE_BYTES = 18  # as libpq's and PgBouncer's SCRAM_RAW_NONCE_LEN
MOCK_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_MOCK_SEED = secrets.token_bytes(32)  # per process, like PostgreSQL's mock_auth_nonce


def parse_scram_secret(text: str) -> ScramVerifier | None:
    """The verifier in PostgreSQL's stored form, or None when ``text`` is not one
    (parse_scram_secret in src/backend/libpq/auth-scram.c)."""
    mechanism, _, rest = text.partition("$")
    if mechanism != SCRAM_SHA_256:
        return None
    iterations_salt, _, keys = rest.partition("$")
    iterations_text, _, salt_text = iterations_salt.partition(":")
    stored_text, _, server_text = keys.partition(":")
    try:
        iterations = int(iterations_text)
        salt = base64.b64decode(salt_text, validate=True)
        stored_key = base64.b64decode(stored_text, validate=True)
        server_key = base64.b64decode(server_text, validate=True)
    except (ValueError, binascii.Error):
        return None
    if iterations < 1 or not salt or len(stored_key) != SCRAM_KEY_LEN or \
            len(server_key) != SCRAM_KEY_LEN:
        return None
    return ScramVerifier((salt, stored_key, server_key, iterations))


def mock_verifier(user: str) -> ScramVerifier:
    """A verifier no password matches, the same for a user every time: an unknown user goes
    through the same exchange as a known one and learns nothing (scram_mock_salt in
    auth-scram.c does the same for roles that do not exist)."""
    salt = hmac.digest(_MOCK_SEED, user.encode(), "sha256")[:16]
    return ScramVerifier((salt, secrets.token_bytes(SCRAM_KEY_LEN),
                          secrets.token_bytes(SCRAM_KEY_LEN), MOCK_ITERATIONS))


def client_signature(stored_key: bytes, auth_message: bytes) -> bytes:
    return hmac.digest(stored_key, auth_message, "sha256")


@dataclass(frozen=True)
class ScramKeys:
    """What a server login needs: the verifier (salt, iterations, ServerKey to check the
    server) and the ClientKey a client's proof gave up."""

    verifier: ScramVerifier
    client_key: bytes

    def __repr__(self) -> str:  # never print a key
        return "ScramKeys(...)"


class ScramPassthroughClient:
    """The client half of SCRAM-SHA-256 towards a server, with a ClientKey instead of a
    password; the same three steps as protocol.auth.ScramClientExchange."""

    def __init__(self, keys: ScramKeys, nonce: str | None = None) -> None:
        self._keys = keys
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(CLIENT_NONCE_BYTES)
                                                ).decode()
        # The user name is left empty, as libpq does: PostgreSQL takes the startup user's.
        self._first_bare = f"n=,r={self._nonce}"
        self._auth_message = b""

    def initial_response(self) -> bytes:
        """SASLInitialResponse payload: mechanism, int32 length, client-first-message."""
        first = f"n,,{self._first_bare}".encode()
        return cstr(SCRAM_SHA_256) + i32(len(first)) + first

    def continue_(self, server_first: bytes) -> bytes:
        """client-final-message for the server's first message. Refused when the server
        salts differently from the verifier: its password changed since we fetched it."""
        text = server_first.decode("utf-8", "replace")
        attrs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce = attrs.get("r", "")
        salt, _stored, _server, iterations = self._keys.verifier.auth_info
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationFailed("server SCRAM nonce does not extend ours")
        if attrs.get("s") != base64.b64encode(salt).decode() or \
                attrs.get("i") != str(iterations):
            raise AuthenticationFailed(
                "server's SCRAM salt or iteration count differs from the auth_query secret "
                "(the password changed): a client must log in again with the new one")
        without_proof = f"c=biws,r={nonce}"  # biws: base64 of the GS2 header "n,,"
        self._auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        stored_key = hashlib.sha256(self._keys.client_key).digest()
        signature = client_signature(stored_key, self._auth_message)
        proof = bytes(a ^ b for a, b in zip(self._keys.client_key, signature, strict=True))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def final(self, server_final: bytes) -> None:
        """Check the server's signature (it knows ServerKey: it is the server we expect)."""
        _salt, _stored, server_key, _iterations = self._keys.verifier.auth_info
        expected = b"v=" + base64.b64encode(hmac.digest(server_key, self._auth_message,
                                                        "sha256"))
        if not self._auth_message or not hmac.compare_digest(expected, server_final.strip()):
            raise AuthenticationFailed("server SCRAM signature mismatch")
