"""Backend messages: the bytes the proxy sends as a server, and what it accepts from servers."""

from __future__ import annotations

import pytest

from pgcat_py.protocol import backend as be
from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import split_messages


def decode(data: bytes) -> be.BackendMessage:
    [(msg_type, payload)], end = split_messages(data)
    assert end == len(data)
    return be.decode_backend(msg_type, payload)


def test_ready_for_query_and_auth_ok_constants_are_the_wire_bytes() -> None:
    assert be.READY_IDLE == b"Z\x00\x00\x00\x05I"
    assert be.AUTH_OK_MESSAGE == b"R\x00\x00\x00\x08\x00\x00\x00\x00"


def test_md5_request_carries_the_salt_after_the_code() -> None:
    msg = be.Authentication(be.AUTH_MD5_PASSWORD, b"\x01\x02\x03\x04")
    assert msg.encode() == b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"
    assert decode(msg.encode()) == msg


def test_sasl_mechanisms_are_read_from_the_nul_separated_list() -> None:
    msg = be.Authentication(be.AUTH_SASL, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")
    assert msg.sasl_mechanisms() == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]


def test_sasl_mechanisms_from_a_garbled_server_do_not_crash() -> None:
    # A server's bytes must not raise UnicodeDecodeError; nothing garbled matches anyway.
    mechanisms = be.Authentication(be.AUTH_SASL, b"\xff\xfe\0SCRAM-SHA-256\0\0").sasl_mechanisms()
    assert mechanisms[-1] == "SCRAM-SHA-256"
    assert len(mechanisms) == 2


def test_error_response_has_the_fields_postgres_sends() -> None:
    data = be.error_response("boom", "08P01", "FATAL", detail="more")
    msg = decode(data)
    assert isinstance(msg, be.NoticeOrError)
    assert msg.is_error
    assert list(msg.fields) == ["S", "V", "C", "M", "D"]
    assert (msg.severity, msg.sqlstate, msg.text) == ("FATAL", "08P01", "boom")
    assert msg.fields["D"] == "more"
    assert data.endswith(b"Mboom\x00Dmore\x00\x00")


def test_error_response_without_detail_has_no_d_field() -> None:
    msg = decode(be.error_response("boom", "42601"))
    assert isinstance(msg, be.NoticeOrError)
    assert "D" not in msg.fields
    assert msg.severity == "ERROR"


def test_notice_response_is_an_n_message_with_notice_severity() -> None:
    data = be.notice_response("hello")
    assert data[:1] == b"N"
    msg = decode(data)
    assert isinstance(msg, be.NoticeOrError)
    assert not msg.is_error
    assert (msg.severity, msg.sqlstate, msg.text) == ("NOTICE", "00000", "hello")


def test_severity_falls_back_to_the_localized_field() -> None:
    # Servers before 9.6 send only S (localized), no V.
    assert be.NoticeOrError({"S": "FEHLER"}).severity == "FEHLER"
    assert be.NoticeOrError({}).sqlstate == ""


def test_row_description_bytes_follow_the_field_layout() -> None:
    msg = be.RowDescription((be.Field("id", type_oid=23, type_size=4),))
    assert msg.encode() == (b"T\x00\x00\x00\x1b\x00\x01id\x00\x00\x00\x00\x00\x00\x00"
                            b"\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00")
    assert decode(msg.encode()) == msg


def test_data_row_null_is_length_minus_one() -> None:
    msg = be.DataRow((b"1", None, b""))
    assert msg.encode() == (b"D\x00\x00\x00\x13\x00\x03\x00\x00\x00\x011"
                            b"\xff\xff\xff\xff\x00\x00\x00\x00")
    assert decode(msg.encode()) == msg


def test_parameter_description_with_more_than_32767_parameters_round_trips() -> None:
    msg = be.ParameterDescription((23,) * 40000)
    assert decode(msg.encode()) == msg


@pytest.mark.parametrize("kind", list(be.BARE_TYPES))
def test_bare_messages_have_no_body(kind: str) -> None:
    assert decode(be.Bare(kind).encode()) == be.Bare(kind)
    with pytest.raises(ProtocolViolation):
        be.decode_backend(ord(kind), b"\x00")


@pytest.mark.parametrize(("msg_type", "payload"), [
    (b"R", b"\x00\x00\x00"),                  # code cut short
    (b"K", b"\x00\x00\x00\x01\x00\x00\x00"),  # secret key cut short
    (b"K", b"\x00" * 9),                      # one byte too many
    (b"S", b"name\x00value"),                 # value not terminated
    (b"Z", b""),
    (b"Z", b"II"),
    (b"C", b"SELECT 1"),
    (b"E", b"SERROR\x00"),                    # field list not terminated
    (b"T", b"\x00\x01id\x00"),                # field attributes missing
    (b"D", b"\x00\x01\x00\x00\x00\x05ab"),    # value runs past the end
    (b"D", b"\x00\x01\xff\xff\xff\xfe"),      # length -2
    (b"G", b"\x00\x00\x01"),                  # one column format announced, none sent
    (b"v", b"\x00\x00\x00\x00\x00\x00\x00\x01"),  # one option announced, none sent
    (b"V", b"\x00\x00\x00\x03ab"),
    (b"Q", b""),                              # not a backend type
    (b"\x00", b""),
])
def test_malformed_backend_payload_is_a_protocol_violation(msg_type: bytes,
                                                           payload: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        be.decode_backend(msg_type[0], payload)


def test_copy_response_kinds_round_trip() -> None:
    for kind in "GHW":
        msg = be.CopyResponse(kind, 1, (1, 0))
        assert decode(msg.encode()) == msg


def test_negotiate_protocol_version_lists_unrecognized_options() -> None:
    msg = be.NegotiateProtocolVersion(0, ("_pq_.foo",))
    assert msg.encode() == b"v\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x01_pq_.foo\x00"
    assert decode(msg.encode()) == msg
