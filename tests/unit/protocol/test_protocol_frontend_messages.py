"""Frontend messages: exact bytes for known messages, and the malformed payloads decode refuses."""

from __future__ import annotations

import pytest

from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.errors import PROTOCOL_VIOLATION, ProtocolViolation
from pgcat_py.protocol.framing import split_messages


def roundtrip(msg: fe.FrontendMessage) -> fe.FrontendMessage:
    [(msg_type, payload)], _ = split_messages(msg.encode())
    return fe.decode_frontend(msg_type, payload)


def test_query_bytes_match_the_protocol_docs() -> None:
    assert fe.Query("select 1").encode() == b"Q\x00\x00\x00\x0dselect 1\x00"


def test_bodiless_messages_are_a_bare_header() -> None:
    assert fe.Sync().encode() == b"S\x00\x00\x00\x04"
    assert fe.Flush().encode() == b"H\x00\x00\x00\x04"
    assert fe.Terminate().encode() == b"X\x00\x00\x00\x04"
    assert fe.CopyDone().encode() == b"c\x00\x00\x00\x04"


def test_parse_bytes_carry_name_query_and_oids() -> None:
    encoded = fe.Parse("s1", "select $1", (23,)).encode()
    assert encoded == b"P\x00\x00\x00\x17s1\x00select $1\x00\x00\x01\x00\x00\x00\x17"


def test_bind_null_parameter_is_length_minus_one() -> None:
    encoded = fe.Bind("", "s1", (), (None, b"7"), (1,)).encode()
    assert encoded == (b"B\x00\x00\x00\x19\x00s1\x00\x00\x00\x00\x02\xff\xff\xff\xff"
                       b"\x00\x00\x00\x017\x00\x01\x00\x01")


def test_bind_with_more_than_32767_parameters_round_trips() -> None:
    # Counts are read unsigned by PostgreSQL (pq_getmsgint): libpq allows 65535 parameters.
    params: tuple[bytes | None, ...] = tuple(str(i).encode() for i in range(40000))
    bind = fe.Bind("", "", (0,), params, ())
    assert roundtrip(bind) == bind


def test_parse_with_65535_parameter_types_round_trips() -> None:
    parse = fe.Parse("", "select", (25,) * 65535)
    assert roundtrip(parse) == parse


@pytest.mark.parametrize(("formats", "index", "expected"), [
    ((), 3, 0),          # no codes: all text
    ((1,), 3, 1),        # one code: applies to every parameter
    ((0, 1, 0), 1, 1),   # one per parameter
])
def test_bind_param_format_follows_binds_rules(formats: tuple[int, ...], index: int,
                                               expected: int) -> None:
    params = (b"x",) * (len(formats) if len(formats) > 1 else 4)
    assert fe.Bind("", "", formats, params).param_format(index) == expected


def test_bind_with_a_format_per_parameter_but_not_for_each_is_refused_like_postgres() -> None:
    # Decodable, but exec_bind_message answers 08P01 ERROR: not an IndexError in the router.
    bind = fe.Bind("", "", (0, 1), (b"1", b"2", b"3"))
    assert roundtrip(bind) == bind
    with pytest.raises(ProtocolViolation, match="2 parameter formats but 3 parameters") as caught:
        bind.param_format(2)
    assert caught.value.sqlstate == PROTOCOL_VIOLATION
    assert not caught.value.is_fatal


@pytest.mark.parametrize(("msg_type", "payload"), [
    (b"Q", b"select 1"),                          # unterminated string
    (b"Q", b"select 1\x00\x00"),                  # trailing byte
    (b"P", b"s1\x00select\x00\x00\x01"),          # count says one OID, none follows
    (b"B", b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00"),  # parameter length -2
    (b"B", b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05ab\x00\x00"),  # value runs past the end
    (b"D", b"X\x00"),                             # neither statement nor portal
    (b"C", b"s\x00"),                             # subtypes are upper case
    (b"D", b""),
    (b"E", b"\x00\x00\x00\x00"),                  # max_rows cut short
    (b"S", b"\x00"),                              # Sync has no body
    (b"F", b"\x00\x00\x00\x17\x00\x00\x00\x00"),  # result format missing
    (b"Z", b""),                                  # not a frontend type
    (b"\x00", b""),
])
def test_malformed_frontend_payload_is_a_protocol_violation(msg_type: bytes,
                                                            payload: bytes) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        fe.decode_frontend(msg_type[0], payload)
    assert caught.value.sqlstate == PROTOCOL_VIOLATION
    assert caught.value.is_fatal


def test_copy_data_and_password_keep_their_bytes_undecoded() -> None:
    assert fe.decode_frontend(ord("d"), b"\x00\xff") == fe.CopyData(b"\x00\xff")
    assert fe.decode_frontend(ord("p"), b"secret\x00") == fe.PasswordMessage(b"secret\x00")


def test_non_utf8_sql_survives_a_round_trip() -> None:
    # client_encoding may be LATIN1: bytes the proxy cannot read must still go through intact.
    msg = fe.decode_frontend(ord("Q"), b"select '\xe9'\x00")
    assert isinstance(msg, fe.Query)
    assert msg.encode() == b"Q\x00\x00\x00\x0fselect '\xe9'\x00"
