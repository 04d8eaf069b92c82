"""Startup packets as ProcessStartupPacket (src/backend/postmaster/postmaster.c) reads them."""

from __future__ import annotations

import struct

import pytest

from pgcat_py.protocol.errors import (
    FEATURE_NOT_SUPPORTED,
    INVALID_AUTHORIZATION,
    PROTOCOL_VIOLATION,
    ProtocolViolation,
)
from pgcat_py.protocol.startup import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    MAX_STARTUP_PACKET_LENGTH,
    PROTOCOL_3_0,
    SSL_REQUEST_CODE,
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
    StartupPacket,
    parse_options,
    read_startup_packet,
)


def packet(code: int, body: bytes) -> bytes:
    return struct.pack("!ii", len(body) + 8, code) + body


def refused(data: bytes) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as caught:
        read_startup_packet(data)
    assert caught.value.is_fatal
    return caught.value


def test_startup_message_bytes_match_what_libpq_sends() -> None:
    msg = StartupMessage({"user": "bob", "database": "app"})
    assert msg.encode() == (b"\x00\x00\x00\x1f\x00\x03\x00\x00"
                            b"user\x00bob\x00database\x00app\x00\x00")


def test_special_request_codes_are_the_documented_magic_numbers() -> None:
    assert SSL_REQUEST_CODE == (1234 << 16) | 5679
    assert GSSENC_REQUEST_CODE == (1234 << 16) | 5680
    assert CANCEL_REQUEST_CODE == (1234 << 16) | 5678
    assert SSLRequest().encode() == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    assert CancelRequest(7, -1).encode() == (b"\x00\x00\x00\x10\x04\xd2\x16\x2e"
                                             b"\x00\x00\x00\x07\xff\xff\xff\xff")


@pytest.mark.parametrize("pkt", [
    StartupMessage({"user": "bob"}),
    StartupMessage({"user": "bob", "database": "app", "options": "-c a=b"}, minor_version=2),
    SSLRequest(),
    GSSENCRequest(),
    CancelRequest(4242, -123456789),
], ids=repr)
def test_each_packet_kind_round_trips_and_leaves_what_follows(pkt: StartupPacket) -> None:
    encoded = pkt.encode()
    assert read_startup_packet(encoded + b"Q\x00") == (pkt, len(encoded))


def test_every_proper_prefix_asks_for_more_bytes() -> None:
    encoded = StartupMessage({"user": "bob", "database": "app"}).encode()
    for cut in range(len(encoded)):
        assert read_startup_packet(encoded[:cut]) == (None, 0)
        assert read_startup_packet(bytearray(encoded[:cut])) == (None, 0)


def test_database_defaults_to_the_user_name() -> None:
    assert StartupMessage({"user": "bob"}).database == "bob"
    assert StartupMessage({"user": "bob", "database": ""}).database == "bob"
    assert StartupMessage({"user": "bob", "database": "app"}).database == "app"


@pytest.mark.parametrize("length", [-1, 0, 4, 7, -(2**31)])
def test_length_below_eight_is_refused(length: int) -> None:
    err = refused(struct.pack("!i", length))
    assert err.sqlstate == PROTOCOL_VIOLATION
    assert "invalid length of startup packet" in err.message


def test_length_limit_excludes_the_length_word() -> None:
    # ProcessStartupPacket subtracts the length word first: 10000 bytes of code and body.
    longest = MAX_STARTUP_PACKET_LENGTH + 4
    assert read_startup_packet(struct.pack("!i", longest)) == (None, 0)
    err = refused(struct.pack("!i", longest + 1))
    assert err.sqlstate == PROTOCOL_VIOLATION


def test_a_packet_of_the_longest_length_is_read() -> None:
    # code + "user\0bob\0a\0" + filler + "\0" + terminator = 10000 bytes
    filler = "x" * (MAX_STARTUP_PACKET_LENGTH - 4 - 11 - 2)
    pkt = StartupMessage({"user": "bob", "a": filler})
    encoded = pkt.encode()
    assert len(encoded) == MAX_STARTUP_PACKET_LENGTH + 4
    assert read_startup_packet(encoded) == (pkt, len(encoded))


def test_a_bad_length_is_refused_before_the_body_arrives() -> None:
    refused(struct.pack("!i", 1 << 20))


@pytest.mark.parametrize("params", [{}, {"database": "app"}, {"user": ""}])
def test_missing_user_is_invalid_authorization(params: dict[str, str]) -> None:
    err = refused(StartupMessage(params).encode())
    assert err.sqlstate == INVALID_AUTHORIZATION == "28000"
    assert "no PostgreSQL user name specified" in err.message


@pytest.mark.parametrize(("major", "minor"), [(2, 0), (4, 0), (1234, 1), (0, 0)])
def test_unsupported_protocol_version_is_feature_not_supported(major: int, minor: int) -> None:
    # ProcessStartupPacket: ERRCODE_FEATURE_NOT_SUPPORTED, FATAL.
    err = refused(packet((major << 16) | minor, b"user\x00bob\x00\x00"))
    assert err.sqlstate == FEATURE_NOT_SUPPORTED
    assert f"unsupported frontend protocol {major}.{minor}" in err.message


def test_protocol_3_with_a_newer_minor_is_read_for_negotiation() -> None:
    pkt, _ = read_startup_packet(packet(PROTOCOL_3_0 | 7, b"user\x00bob\x00\x00"))
    assert pkt == StartupMessage({"user": "bob"}, minor_version=7)


@pytest.mark.parametrize("body", [
    b"",                                    # no terminator at all
    b"user\x00bob\x00",                     # last pair not followed by the terminator
    b"user\x00bob",                         # value not terminated
    b"user\x00bob\x00database\x00",         # name without a value
    b"user\x00\x00",                        # odd count: the terminator read as a value
    b"user\x00bob\x00\x00extra\x00\x00",    # bytes after the terminator
    b"user\x00bob\x00\x00\x00",             # two terminators
    b"user\x00bob\x00\x00x\x00\x00",        # empty name mid-packet ends the list early
])
def test_malformed_parameter_list_is_a_protocol_violation(body: bytes) -> None:
    err = refused(packet(PROTOCOL_3_0, body))
    assert err.sqlstate == PROTOCOL_VIOLATION
    assert "expected terminator as last byte" in err.message


@pytest.mark.parametrize(("code", "body"), [
    (CANCEL_REQUEST_CODE, b"\x00\x00\x00\x01"),
    (CANCEL_REQUEST_CODE, b"\x00" * 12),
    (SSL_REQUEST_CODE, b"\x00"),
    (GSSENC_REQUEST_CODE, b"\x00\x00\x00\x00"),
])
def test_special_request_of_the_wrong_length_is_a_protocol_violation(code: int,
                                                                     body: bytes) -> None:
    err = refused(packet(code, body))
    assert err.sqlstate == PROTOCOL_VIOLATION
    assert "invalid length of startup packet" in err.message


def test_empty_values_and_repeated_names_are_accepted_last_one_wins() -> None:
    body = b"user\x00a\x00options\x00\x00user\x00b\x00\x00"
    pkt, _ = read_startup_packet(packet(PROTOCOL_3_0, body))
    assert pkt == StartupMessage({"user": "b", "options": ""})


@pytest.mark.parametrize(("options", "expected"), [
    ("-c a=b", {"a": "b"}),
    ("-ca=b", {"a": "b"}),
    ("--a-b=c", {"a_b": "c"}),
    ("-c a-b=c-d", {"a_b": "c-d"}),              # dash becomes underscore in the name only
    ("-c search_path=a,b -c x=1", {"search_path": "a,b", "x": "1"}),
    (r"-c application_name=my\ app", {"application_name": "my app"}),
    (r"-c a=\\", {"a": "\\"}),                    # a backslash escapes itself
    ("  -c\ta=1   -c b=2 ", {"a": "1", "b": "2"}),
    ("-c a==b", {"a": "=b"}),                     # only the first '=' separates
    ("-c a=1 -c a=2", {"a": "2"}),
    ("-c a", {}),                                 # no value: not a setting
    ("-c", {}),
    ("-F -d 3 --x=1", {"x": "1"}),                # other switches are not settings
    ("", {}),
])
def test_parse_options_reads_settings_like_postgres_switches(options: str,
                                                             expected: dict[str, str]) -> None:
    assert parse_options(options) == expected
