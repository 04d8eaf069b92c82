"""Payload primitives: every overrun is a ProtocolViolation, and no byte is lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.wire import Reader, cstr, i16, i32, message, u16, u32


def test_integers_are_big_endian_with_the_documented_signedness() -> None:
    r = Reader(b"\xff\xfe" + b"\xff\xfe" + b"\xff\xff\xff\xfe" + b"\xff\xff\xff\xfe" + b"\x07")
    assert r.int16() == -2
    assert r.uint16() == 65534
    assert r.int32() == -2
    assert r.uint32() == 2**32 - 2
    assert r.byte() == 7
    r.end()


def test_writers_are_the_inverse_of_the_readers() -> None:
    data = i16(-2) + u16(65534) + i32(-2) + u32(2**32 - 2)
    assert data == b"\xff\xfe\xff\xfe\xff\xff\xff\xfe\xff\xff\xff\xfe"


def test_message_length_counts_itself_but_not_the_type() -> None:
    assert message(b"Q", b"ab") == b"Q\x00\x00\x00\x06ab"
    assert message(b"S") == b"S\x00\x00\x00\x04"


def test_cstring_keeps_undecodable_bytes() -> None:
    r = Reader(b"caf\xe9\x00rest")
    text = r.cstring()
    assert cstr(text) == b"caf\xe9\x00"
    assert r.rest() == b"rest"
    assert r.remaining() == 0


def test_nullable_bytes_reads_null_and_values() -> None:
    r = Reader(b"\xff\xff\xff\xff\x00\x00\x00\x02ab\x00\x00\x00\x00")
    assert r.nullable_bytes() is None
    assert r.nullable_bytes() == b"ab"
    assert r.nullable_bytes() == b""
    r.end()


@pytest.mark.parametrize("read", [
    lambda r: r.int16(), lambda r: r.uint16(), lambda r: r.int32(), lambda r: r.uint32(),
    lambda r: r.bytes_(4), lambda r: r.bytes_(-1), lambda r: r.cstring(),
    lambda r: r.nullable_bytes(),
])
def test_reading_past_the_payload_is_a_protocol_violation(read: Callable[[Reader], object]
                                                          ) -> None:
    with pytest.raises(ProtocolViolation):
        read(Reader(b"\xff"))


def test_nullable_length_below_minus_one_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation):
        Reader(b"\xff\xff\xff\xfe").nullable_bytes()


def test_unread_bytes_at_the_end_are_a_protocol_violation() -> None:
    r = Reader(b"a\x00b")
    r.cstring()
    assert r.remaining() == 1
    with pytest.raises(ProtocolViolation, match="longer than its fields"):
        r.end()
