"""Password math: MD5 as PostgreSQL computes it, SCRAM-SHA-256 both ways (RFC 5802/7677).

The expected values are computed here independently, with hashlib and hmac, from the
formulas in the PostgreSQL docs and the RFC, not by calling the code under test twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from pgcat_py.protocol.auth import (
    SCRAM_SHA_256,
    ScramClientExchange,
    ScramServerExchange,
    ScramVerifier,
    md5_password_hash,
    md5_response,
    new_salt,
    verify_md5,
)
from pgcat_py.protocol.backend import AUTH_SASL, Authentication
from pgcat_py.protocol.errors import (
    INVALID_PASSWORD,
    PROTOCOL_VIOLATION,
    AuthenticationFailed,
    ProtocolViolation,
)
from pgcat_py.protocol.wire import cstr, i32

SALT = b"\x01\x02\x03\x04"


def md5hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_md5_response_matches_postgres_formula() -> None:
    # "md5" + md5(md5(password + user) + salt), as libpq's pg_password_sendauth does.
    inner = md5hex(b"postgres" + b"postgres")
    expected = "md5" + md5hex(inner.encode() + SALT)
    assert md5_response("postgres", "postgres", SALT) == expected


def test_md5_password_hash_is_what_pg_authid_stores() -> None:
    assert md5_password_hash("bob", "secret") == "md5" + md5hex(b"secretbob")


def test_md5_response_from_a_stored_hash_equals_the_one_from_the_password() -> None:
    stored = md5_password_hash("bob", "secret")
    assert md5_response("bob", stored, SALT) == md5_response("bob", "secret", SALT)


def test_md5_response_depends_on_the_user_name() -> None:
    assert md5_response("alice", "secret", SALT) != md5_response("bob", "secret", SALT)


def test_verify_md5_accepts_the_right_password_message() -> None:
    payload = md5_response("bob", "secret", SALT).encode() + b"\0"
    assert verify_md5("bob", "secret", SALT, payload)
    assert verify_md5("bob", md5_password_hash("bob", "secret"), SALT, payload)


@pytest.mark.parametrize(("user", "password", "salt", "suffix"), [
    ("bob", "wrong", SALT, b"\0"),
    ("eve", "secret", SALT, b"\0"),
    ("bob", "secret", b"\x04\x03\x02\x01", b"\0"),
    ("bob", "secret", SALT, b""),          # the PasswordMessage string is NUL-terminated
    ("bob", "secret", SALT, b"\0\0"),
])
def test_verify_md5_refuses_anything_else(user: str, password: str, salt: bytes,
                                          suffix: bytes) -> None:
    payload = md5_response("bob", "secret", SALT).encode() + suffix
    assert not verify_md5(user, password, salt, payload)


def test_new_salt_is_four_fresh_bytes() -> None:
    salts = {new_salt() for _ in range(20)}
    assert all(len(s) == 4 for s in salts)
    assert len(salts) > 1


def test_mechanisms_payload_lists_scram_sha_256_only() -> None:
    payload = ScramServerExchange.mechanisms_payload()
    assert payload == b"SCRAM-SHA-256\0\0"
    assert Authentication(AUTH_SASL, payload).sasl_mechanisms() == [SCRAM_SHA_256]


def scram_login(client_password: str, server_password: str) -> None:
    """One whole exchange between our client and our server halves."""
    server = ScramServerExchange(ScramVerifier.from_password(server_password))
    client = ScramClientExchange("bob", client_password)
    server_first = server.client_first(client.initial_response())
    server_final = server.client_final(client.continue_(server_first))
    client.final(server_final)


def test_scram_client_and_server_agree_on_the_right_password() -> None:
    scram_login("s3cret pass", "s3cret pass")


def test_scram_server_refuses_a_wrong_password() -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        scram_login("wrong", "s3cret")
    assert caught.value.sqlstate == INVALID_PASSWORD
    assert caught.value.is_fatal


def test_scram_client_refuses_a_forged_server_signature() -> None:
    server = ScramServerExchange(ScramVerifier.from_password("s3cret"))
    client = ScramClientExchange("bob", "s3cret")
    server_first = server.client_first(client.initial_response())
    server.client_final(client.continue_(server_first))
    forged = b"v=" + base64.b64encode(b"\0" * 32)
    with pytest.raises(AuthenticationFailed):
        client.final(forged)


def rfc5802_client_final(password: str, client_first_bare: str, server_first: str
                         ) -> tuple[str, str]:
    """client-final-message and the server signature to expect, straight from RFC 5802 §3."""
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = "c=biws,r=" + attrs["r"]            # biws = base64("n,,")
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    server_signature = hmac.digest(server_key, auth_message, "sha256")
    return (f"{without_proof},p={base64.b64encode(proof).decode()}",
            f"v={base64.b64encode(server_signature).decode()}")


@pytest.mark.parametrize("user", ["", "bob"])
def test_scram_server_accepts_an_independent_client_including_libpqs_empty_user(
        user: str) -> None:
    # libpq sends "n,,n=,r=...": PostgreSQL ignores the SCRAM user name.
    server = ScramServerExchange(ScramVerifier.from_password("s3cret"))
    bare = f"n={user},r=clientnonce0123456789"
    first = ("n,," + bare).encode()
    server_first = server.client_first(cstr(SCRAM_SHA_256) + i32(len(first)) + first).decode()
    assert server_first.startswith("r=clientnonce0123456789")
    client_final, expected_signature = rfc5802_client_final("s3cret", bare, server_first)
    assert server.client_final(client_final.encode()).decode() == expected_signature


def test_scram_client_proof_matches_an_independent_computation() -> None:
    verifier = ScramVerifier.from_password("s3cret")
    server = ScramServerExchange(verifier)
    client = ScramClientExchange("bob", "s3cret")
    initial = client.initial_response()
    first = initial[len(cstr(SCRAM_SHA_256)) + 4:].decode()
    server_first = server.client_first(initial)
    expected_final, _ = rfc5802_client_final("s3cret", first.removeprefix("n,,"),
                                             server_first.decode())
    assert client.continue_(server_first).decode() == expected_final


def test_sasl_initial_response_names_the_mechanism_and_counts_the_data() -> None:
    initial = ScramClientExchange("bob", "pw").initial_response()
    assert initial.startswith(b"SCRAM-SHA-256\0")
    rest = initial[len(b"SCRAM-SHA-256\0"):]
    assert int.from_bytes(rest[:4], "big") == len(rest) - 4
    assert rest[4:].startswith(b"n,,n=bob,r=")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "PLAIN", "scram-sha-256", ""])
def test_client_first_with_a_bad_mechanism_is_a_protocol_violation(mechanism: str) -> None:
    first = b"n,,n=,r=abc"
    server = ScramServerExchange(ScramVerifier.from_password("pw"))
    with pytest.raises(ProtocolViolation) as caught:
        server.client_first(cstr(mechanism) + i32(len(first)) + first)
    assert caught.value.sqlstate == PROTOCOL_VIOLATION


@pytest.mark.parametrize("payload", [
    b"SCRAM-SHA-256",                         # mechanism not terminated
    b"SCRAM-SHA-256\0\x00\x00",               # length cut short
    b"SCRAM-SHA-256\0\x00\x00\x00\x10n,,",    # data shorter than its length
    b"SCRAM-SHA-256\0\x00\x00\x00\x0bn,,n=,r=abcX",  # a byte after the data
])
def test_truncated_or_overlong_sasl_initial_response_is_a_protocol_violation(
        payload: bytes) -> None:
    server = ScramServerExchange(ScramVerifier.from_password("pw"))
    with pytest.raises(ProtocolViolation):
        server.client_first(payload)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\xff\xfe", b"p=tls-unique,,n=,r=abc"])
def test_malformed_client_first_message_fails_authentication(data: bytes) -> None:
    server = ScramServerExchange(ScramVerifier.from_password("pw"))
    with pytest.raises(AuthenticationFailed):
        server.client_first(cstr(SCRAM_SHA_256) + i32(len(data)) + data)


def test_client_first_without_data_fails_authentication() -> None:
    server = ScramServerExchange(ScramVerifier.from_password("pw"))
    with pytest.raises(AuthenticationFailed):
        server.client_first(cstr(SCRAM_SHA_256) + i32(-1))


@pytest.mark.parametrize("server_first", [b"\xff", b"", b"r=abc", b"e=other-error"])
def test_client_translates_a_malformed_server_first_message(server_first: bytes) -> None:
    client = ScramClientExchange("bob", "pw")
    client.initial_response()
    with pytest.raises(AuthenticationFailed):
        client.continue_(server_first)


@pytest.mark.parametrize("server_final", [b"\xff", b"", b"e=invalid-proof"])
def test_client_translates_a_malformed_server_final_message(server_final: bytes) -> None:
    server = ScramServerExchange(ScramVerifier.from_password("pw"))
    client = ScramClientExchange("bob", "pw")
    client.continue_(server.client_first(client.initial_response()))
    with pytest.raises(AuthenticationFailed):
        client.final(server_final)


def test_scram_client_logs_in_with_a_user_name_saslprep_refuses() -> None:
    # The SCRAM user name is ignored by PostgreSQL; a control character in it must not matter.
    server = ScramServerExchange(ScramVerifier.from_password("s3cret"))
    client = ScramClientExchange("bob\x07", "s3cret")
    client.final(server.client_final(client.continue_(
        server.client_first(client.initial_response()))))


def test_scram_client_with_an_unusable_password_fails_authentication() -> None:
    with pytest.raises(AuthenticationFailed):
        ScramClientExchange("bob", "pass\x07word")


@pytest.mark.parametrize("password", ["md5" + "x" * 32, "md5" + "A" * 32, "md5" + "0" * 31])
def test_a_password_that_only_looks_like_an_md5_hash_is_hashed_as_plain_text(
        password: str) -> None:
    # PostgreSQL treats "md5" + 32 lower-case hex digits as a hash, anything else as text.
    inner = md5hex(password.encode() + b"bob")
    assert md5_response("bob", password, SALT) == "md5" + md5hex(inner.encode() + SALT)
