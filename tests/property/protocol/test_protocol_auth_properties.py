"""Auth properties: SCRAM halves interoperate for any password, and no peer bytes escape the
ProxyError family (a client's or server's garbage must become an ErrorResponse, not a crash).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgcat_py.protocol.auth import (
    SCRAM_SHA_256,
    ScramClientExchange,
    ScramServerExchange,
    ScramVerifier,
    md5_response,
    verify_md5,
)
from pgcat_py.protocol.errors import AuthenticationFailed, ProxyError
from pgcat_py.protocol.wire import cstr, i32

# SASLprep (RFC 4013) maps or refuses some code points; printable ASCII passes unchanged.
passwords = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                    max_size=20)
users = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=10)
# One verifier for the garbage properties: PBKDF2 is deliberately slow.
VERIFIER = ScramVerifier.from_password("s3cret")

scram_like = st.lists(st.sampled_from(["n", "y", "p=x", "", "n=", "n=u", "r=abc", "s=QUJD",
                                       "i=4096", "c=biws", "p=AAAA", "m=x", "a=b", "e=x"]),
                      max_size=6).map(lambda parts: ",".join(parts).encode())
peer_bytes = st.binary(max_size=40) | scram_like


@settings(max_examples=15, deadline=None)
@given(users, passwords, passwords)
def test_scram_exchange_succeeds_iff_the_passwords_match(user: str, client_password: str,
                                                        server_password: str) -> None:
    server = ScramServerExchange(ScramVerifier.from_password(server_password))
    client = ScramClientExchange(user, client_password)
    server_first = server.client_first(client.initial_response())
    client_final = client.continue_(server_first)
    if client_password == server_password:
        client.final(server.client_final(client_final))
    else:
        with pytest.raises(AuthenticationFailed):
            server.client_final(client_final)


@settings(max_examples=200)
@given(peer_bytes)
def test_any_client_first_message_is_answered_or_a_proxy_error(data: bytes) -> None:
    server = ScramServerExchange(VERIFIER)
    with contextlib.suppress(ProxyError):
        server.client_first(cstr(SCRAM_SHA_256) + i32(len(data)) + data)


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_any_sasl_initial_response_payload_is_answered_or_a_proxy_error(payload: bytes) -> None:
    with contextlib.suppress(ProxyError):
        ScramServerExchange(VERIFIER).client_first(payload)


@settings(max_examples=100)
@given(peer_bytes)
def test_any_client_final_message_fails_as_authentication(data: bytes) -> None:
    server = ScramServerExchange(VERIFIER)
    server.client_first(ScramClientExchange("bob", "s3cret").initial_response())
    with pytest.raises(AuthenticationFailed):
        server.client_final(data)


@settings(max_examples=200)
@given(peer_bytes)
def test_any_server_first_message_is_answered_or_a_proxy_error(data: bytes) -> None:
    client = ScramClientExchange("bob", "s3cret")
    client.initial_response()
    with contextlib.suppress(ProxyError):
        client.continue_(data)


@settings(max_examples=100, deadline=None)
@given(peer_bytes)
def test_any_forged_server_final_message_fails_as_authentication(data: bytes) -> None:
    server = ScramServerExchange(VERIFIER)
    client = ScramClientExchange("bob", "s3cret")
    client.continue_(server.client_first(client.initial_response()))
    with pytest.raises(AuthenticationFailed):
        client.final(data)


@settings(max_examples=100)
@given(users, passwords, st.binary(min_size=4, max_size=4), passwords)
def test_verify_md5_accepts_exactly_the_matching_password(user: str, password: str,
                                                          salt: bytes, guess: str) -> None:
    payload = md5_response(user, guess, salt).encode() + b"\0"
    assert verify_md5(user, password, salt, payload) == (guess == password)
