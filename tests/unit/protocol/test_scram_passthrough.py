"""SCRAM without the password: a client's proof gives up its ClientKey, and that ClientKey
logs in to a server that keeps the same verifier (and to no other)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
import scramp

from pgcat_py.protocol.auth import ScramServerExchange, ScramVerifier
from pgcat_py.protocol.errors import AuthenticationFailed
from pgcat_py.protocol.scram_passthrough import (
    ScramKeys,
    ScramPassthroughClient,
    mock_verifier,
    parse_scram_secret,
    recover_client_key,
)
from pgcat_py.protocol.wire import cstr, i32

PASSWORD = "s3cret"


def stored_form(verifier: ScramVerifier) -> str:
    """PostgreSQL's pg_authid.rolpassword for ``verifier`` (scram_build_secret)."""
    salt, stored_key, server_key, iterations = verifier.auth_info
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(stored_key).decode()}:{b64(server_key).decode()}")


def client_key_of(password: str, verifier: ScramVerifier) -> bytes:
    """RFC 5802: ClientKey = HMAC(SaltedPassword, "Client Key"), from the password."""
    salt, _stored, _server, iterations = verifier.auth_info
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return hmac.digest(salted, b"Client Key", "sha256")


def log_in_with_password(verifier: ScramVerifier, password: str) -> ScramServerExchange:
    """A real client (scramp) against our server half; returns the finished exchange."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], "user", password)  # the name is ignored
    server = ScramServerExchange(verifier)
    first = client.get_client_first().encode()
    server_first = server.client_first(cstr("SCRAM-SHA-256") + i32(len(first)) + first)
    client.set_server_first(server_first.decode())
    server_final = server.client_final(client.get_client_final().encode())
    client.set_server_final(server_final.decode())
    return server


@pytest.fixture(scope="module")
def verifier() -> ScramVerifier:
    return ScramVerifier.from_password(PASSWORD)


def test_stored_verifier_parses_back(verifier: ScramVerifier) -> None:
    assert parse_scram_secret(stored_form(verifier)) == verifier


@pytest.mark.parametrize("text", [
    "md5" + "0" * 32, "plain password", "SCRAM-SHA-256$x:AAAA$AAAA:AAAA",
    "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA",  # keys of the wrong length
    "SCRAM-SHA-256$4096:not base64!$x:y", "SCRAM-SHA-1$4096:AAAA$AAAA:AAAA", ""])
def test_what_is_not_a_verifier_is_none(text: str) -> None:
    assert parse_scram_secret(text) is None


def test_client_proof_gives_up_the_client_key(verifier: ScramVerifier) -> None:
    server = log_in_with_password(verifier, PASSWORD)
    assert server.client_key == client_key_of(PASSWORD, verifier)


def test_wrong_password_gives_no_client_key(verifier: ScramVerifier) -> None:
    with pytest.raises(AuthenticationFailed):
        log_in_with_password(verifier, "wrong")


def test_recover_client_key_is_proof_xor_client_signature(verifier: ScramVerifier) -> None:
    _salt, stored_key, _server, _i = verifier.auth_info
    client_key = client_key_of(PASSWORD, verifier)
    auth_message = b"n=,r=abc,r=abcdef,s=xyz,i=4096,c=biws,r=abcdef"
    signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    assert recover_client_key(proof, stored_key, auth_message) == client_key
    flipped = bytes([proof[0] ^ 1]) + proof[1:]
    assert recover_client_key(flipped, stored_key, auth_message) is None
    assert recover_client_key(proof[:-1], stored_key, auth_message) is None


def test_recovered_client_key_logs_in_to_a_server_with_the_same_verifier(
        verifier: ScramVerifier) -> None:
    client_key = log_in_with_password(verifier, PASSWORD).client_key
    client = ScramPassthroughClient(ScramKeys(verifier, client_key))
    server = ScramServerExchange(verifier)  # PostgreSQL, holding the same pg_authid row
    server_first = server.client_first(client.initial_response())
    server_final = server.client_final(client.continue_(server_first))
    client.final(server_final)  # the server's signature checks out too
    assert server.client_key == client_key


def test_a_server_with_another_verifier_is_refused_before_any_proof(
        verifier: ScramVerifier) -> None:
    client_key = client_key_of(PASSWORD, verifier)
    client = ScramPassthroughClient(ScramKeys(verifier, client_key))
    changed = ScramVerifier.from_password(PASSWORD)  # same password, new salt
    server_first = ScramServerExchange(changed).client_first(client.initial_response())
    with pytest.raises(AuthenticationFailed, match="salt"):
        client.continue_(server_first)


def test_a_forged_server_signature_is_refused(verifier: ScramVerifier) -> None:
    client = ScramPassthroughClient(ScramKeys(verifier, client_key_of(PASSWORD, verifier)))
    server = ScramServerExchange(verifier)
    client.continue_(server.client_first(client.initial_response()))
    with pytest.raises(AuthenticationFailed):
        client.final(b"v=" + base64.b64encode(b"\0" * 32))


def test_a_server_nonce_must_extend_ours(verifier: ScramVerifier) -> None:
    client = ScramPassthroughClient(ScramKeys(verifier, b"k" * 32), nonce="abc")
    salt, _s, _k, iterations = verifier.auth_info
    first = f"r=xyz,s={base64.b64encode(salt).decode()},i={iterations}".encode()
    with pytest.raises(AuthenticationFailed, match="nonce"):
        client.continue_(first)


def test_mock_verifier_salt_is_stable_per_user_and_no_password_matches() -> None:
    assert mock_verifier("ghost").auth_info[0] == mock_verifier("ghost").auth_info[0]
    assert mock_verifier("ghost").auth_info[0] != mock_verifier("other").auth_info[0]
    for password in ("", "ghost", PASSWORD):
        with pytest.raises(AuthenticationFailed):
            log_in_with_password(mock_verifier("ghost"), password)


def test_keys_never_show_in_a_repr(verifier: ScramVerifier) -> None:
    assert "k" * 8 not in repr(ScramKeys(verifier, b"k" * 32))
