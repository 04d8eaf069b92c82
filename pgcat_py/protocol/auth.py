"""Password math for both sides of the proxy: MD5 and SCRAM-SHA-256 (via scramp).

The client side verifies what a client proves; the server side answers what a PostgreSQL
server asks. No I/O: each step takes the peer's bytes and returns ours.
"""

from __future__ import annotations

import base64
import binascii
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

    RFC 5802 §5 and §7 with PostgreSQL's choices (auth-scram.c): the SCRAM user name is
    ignored (libpq sends it empty; the startup user is the one that logs in), an authzid or
    a mandatory extension ("m=") is refused, extensions after the nonce are skipped.
    Channel binding is not offered, even over TLS (SCRAM-SHA-256-PLUS would bind to our
    certificate's hash), so only SCRAM-SHA-256 is advertised and a client that asks for
    binding ("p=") is refused; one that could bind says so with GS2 flag "y", which is
    accepted. Plain hmac and hashlib, no per-login objects: a login burst spends its CPU on
    this (scramp, used before, validated each nonce character by character: ~300 µs a login).
    """

    __slots__ = ("_auth_message", "_gs2_header", "_nonce", "_verifier", "client_key")

    def __init__(self, verifier: ScramVerifier) -> None:
        self._verifier = verifier
        self._gs2_header = ""
        self._nonce = ""
        self._auth_message = ""  # client-first-bare "," server-first, once sent
        self.client_key = b""  # what the client's proof carried, once it checked out

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
        flag, authzid, bare = _text(data).split(",", 2) if data.count(b",") >= 2 else ("",) * 3
        if flag not in ("n", "y"):  # "p=...": binding we do not offer; anything else: garbage
            raise AuthenticationFailed("unsupported SCRAM channel binding flag")
        if authzid:
            raise AuthenticationFailed("SCRAM authorization identity is not supported")
        attrs = bare.split(",")
        if attrs[0].startswith("m="):
            raise AuthenticationFailed("client requires an unsupported SCRAM extension")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise AuthenticationFailed("malformed SCRAM client-first-message")
        client_nonce = attrs[1][2:]
        if not client_nonce or not _is_printable(client_nonce):
            raise AuthenticationFailed("invalid SCRAM nonce")
        salt, _stored_key, _server_key, iterations = self._verifier.auth_info
        self._gs2_header = f"{flag},,"
        self._nonce = client_nonce + base64.b64encode(secrets.token_bytes(SERVER_NONCE_BYTES)
                                                      ).decode()
        first = f"r={self._nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        self._auth_message = f"{bare},{first}"
        return first.encode()

    def client_final(self, payload: bytes) -> bytes:
        """Consume SASLResponse; returns server-final-message or raises on a bad proof."""
        if not self._auth_message:
            raise AuthenticationFailed("SCRAM client-final-message before the first one")
        final = _text(payload)
        without_proof, _, proof_text = final.rpartition(",p=")
        attrs = without_proof.split(",")
        if len(attrs) < 2 or attrs[0][:2] != "c=" or attrs[1][:2] != "r=" or "," in proof_text:
            raise AuthenticationFailed("malformed SCRAM client-final-message")
        if _b64(attrs[0][2:]) != self._gs2_header.encode():
            raise AuthenticationFailed("SCRAM channel binding check failed")
        if not hmac.compare_digest(attrs[1][2:].encode(), self._nonce.encode()):
            raise AuthenticationFailed("SCRAM nonce mismatch")
        proof = _b64(proof_text)
        _salt, stored_key, server_key, _iterations = self._verifier.auth_info
        auth_message = f"{self._auth_message},{without_proof}".encode()
        client_key = recover_client_key(proof, stored_key, auth_message)
        if client_key is None:
            raise AuthenticationFailed("SCRAM proof mismatch")
        self.client_key = client_key  # for a server login without the password (auth_query)
        server_signature = hmac.digest(server_key, auth_message, "sha256")
        return b"v=" + base64.b64encode(server_signature)


SERVER_NONCE_BYTES = 18  # PostgreSQL's SCRAM_RAW_NONCE_LEN


def recover_client_key(proof: bytes, stored_key: bytes, auth_message: bytes) -> bytes | None:
    """The ClientKey inside a client's proof (ClientProof XOR ClientSignature, RFC 5802
    §3), or None when the proof is wrong: its hash must be StoredKey (constant time)."""
    signature = hmac.digest(stored_key, auth_message, "sha256")
    if len(proof) != len(signature):
        return None
    client_key = (int.from_bytes(proof) ^ int.from_bytes(signature)).to_bytes(len(proof))
    if not hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key):
        return None
    return client_key


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationFailed("SCRAM message is not valid UTF-8") from None


def _is_printable(nonce: str) -> bool:
    """RFC 5802 `printable`: %x21-7E except ","."""
    return nonce.isascii() and nonce.isprintable() and " " not in nonce and "," not in nonce


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("invalid base64 in a SCRAM message") from None


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
