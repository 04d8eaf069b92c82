"""Password math for both sides of the proxy: MD5 and SCRAM-SHA-256 (via scramp).

The client side verifies what a client proves; the server side answers what a PostgreSQL
server asks. No I/O: each step takes the peer's bytes and returns ours.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import scramp

from .errors import AuthenticationFailed, ProtocolViolation
from .wire import Reader, cstr, i32

SCRAM_SHA_256 = "SCRAM-SHA-256"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_password_hash(user: str, password: str) -> str:
    """PostgreSQL's stored md5 form: "md5" + md5(password + user)."""
    return "md5" + md5_hex((password + user).encode())


def md5_response(user: str, password: str, salt: bytes) -> str:
    """What a client sends for AuthenticationMD5Password: md5(md5(password+user) + salt).

    ``password`` may already be a stored md5 hash ("md5..."), as with auth passthrough.
    """
    stored = password if _is_md5_hash(password) else md5_password_hash(user, password)
    return "md5" + md5_hex(stored[3:].encode() + salt)


def _is_md5_hash(password: str) -> bool:
    # get_password_type (src/backend/libpq/crypt.c): "md5" and 32 lower-case hex digits.
    return (len(password) == 35 and password.startswith("md5")
            and all(c in "0123456789abcdef" for c in password[3:]))


def verify_md5(user: str, password: str, salt: bytes, response: bytes) -> bool:
    """Check a client's PasswordMessage payload (``md5...\\0``) in constant time."""
    expected = md5_response(user, password, salt).encode() + b"\0"
    return hmac.compare_digest(expected, response)


def new_salt() -> bytes:
    return secrets.token_bytes(4)


@dataclass(frozen=True)
class ScramVerifier:
    """What a server keeps to check SCRAM proofs without the password (RFC 5802 §3)."""

    auth_info: tuple[bytes, bytes, bytes, int]

    @classmethod
    def from_password(cls, password: str) -> ScramVerifier:
        mech = scramp.ScramMechanism(SCRAM_SHA_256)
        try:
            salt, stored_key, server_key, iterations = mech.make_auth_info(password)
        except scramp.ScramException as exc:  # e.g. SASLprep refuses control characters
            raise ValueError(f"password unusable for SCRAM-SHA-256: {exc}") from None
        return cls((salt, stored_key, server_key, iterations))


class ScramServerExchange:
    """The server half of SCRAM-SHA-256 with a client: first and final messages.

    Channel binding is not offered, even over TLS (SCRAM-SHA-256-PLUS would bind to our
    certificate's hash), so only SCRAM-SHA-256 is advertised; a client that could bind says
    so with GS2 flag "y", which is accepted.
    """

    def __init__(self, verifier: ScramVerifier) -> None:
        mech = scramp.ScramMechanism(SCRAM_SHA_256)
        self._server = mech.make_server(lambda _user: verifier.auth_info)

    @staticmethod
    def mechanisms_payload() -> bytes:
        """AuthenticationSASL's data: the mechanism list, NUL-separated, NUL-terminated."""
        return cstr(SCRAM_SHA_256) + b"\0"

    def client_first(self, payload: bytes) -> bytes:
        """Consume SASLInitialResponse; returns server-first-message."""
        r = Reader(payload)
        mechanism = r.cstring()
        if mechanism != SCRAM_SHA_256:
            raise ProtocolViolation("client selected an invalid SASL authentication mechanism")
        data = r.nullable_bytes() or b""
        r.end()  # CheckSASLAuth: pq_getmsgend, "invalid message format"
        try:
            self._set_client_first(data.decode())
            first: str = self._server.get_server_first()
            return first.encode()
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise AuthenticationFailed(f"SCRAM exchange failed: {exc}") from None

    def _set_client_first(self, client_first: str) -> None:
        """PostgreSQL ignores the SCRAM user name (libpq sends it empty, "n=,") and uses the
        startup user; scramp validates it. Parse with a placeholder name, then restore the
        bare message as sent, since the proofs are computed over it (RFC 5802 AuthMessage)."""
        try:
            second_comma = client_first.index(",", client_first.index(",") + 1)
        except ValueError:
            raise AuthenticationFailed("malformed SCRAM client-first-message") from None
        header, bare = client_first[:second_comma + 1], client_first[second_comma + 1:]
        name_end = bare.find(",")
        if not bare.startswith("n=") or name_end < 0:
            raise AuthenticationFailed("malformed SCRAM client-first-message")
        self._server.set_client_first(header + "n=*" + bare[name_end:])
        self._server.client_first_bare = bare

    def client_final(self, payload: bytes) -> bytes:
        """Consume SASLResponse; returns server-final-message or raises on a bad proof."""
        try:
            self._server.set_client_final(payload.decode())
            final: str = self._server.get_server_final()
            return final.encode()
        except (scramp.ScramException, UnicodeDecodeError):
            raise AuthenticationFailed("SCRAM proof mismatch") from None


class ScramClientExchange:
    """The client half of SCRAM-SHA-256, for logging in to a PostgreSQL server."""

    def __init__(self, user: str, password: str) -> None:
        # PostgreSQL ignores the SCRAM user name (it uses the startup user's), but scramp
        # refuses an empty one and one SASLprep rejects (control characters): send a
        # placeholder then.
        for name in (user, "user") if user else ("user",):
            try:
                self._client = scramp.ScramClient([SCRAM_SHA_256], name, password)
                return
            except scramp.ScramException as exc:
                error = exc
        raise AuthenticationFailed(f"password cannot be used for SCRAM: {error}") from None

    def initial_response(self) -> bytes:
        """SASLInitialResponse payload: mechanism, int32 length, client-first-message."""
        first: bytes = self._client.get_client_first().encode()
        return cstr(SCRAM_SHA_256) + i32(len(first)) + first

    def continue_(self, server_first: bytes) -> bytes:
        try:
            self._client.set_server_first(server_first.decode())
            final: str = self._client.get_client_final()
            return final.encode()
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise AuthenticationFailed(f"SCRAM exchange with server failed: {exc}") from None

    def final(self, server_final: bytes) -> None:
        try:
            self._client.set_server_final(server_final.decode())
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise AuthenticationFailed(f"server SCRAM signature mismatch: {exc}") from None
