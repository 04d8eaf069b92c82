"""Framing: cutting a stream into messages, and the header checks PostgreSQL's backend makes.

The limits follow pq_getmessage (src/backend/libpq/pqcomm.c): the declared length, which
counts itself, must be at least 4 and at most the per-type limit SocketBackend chooses.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import (
    PQ_LARGE_MESSAGE_LIMIT,
    PQ_SMALL_MESSAGE_LIMIT,
    check_frontend_header,
    cstring_end,
    decode_text,
    first_message,
    split_messages,
)
from pgcat_py.protocol.frontend import Query, Sync


def header(msg_type: bytes, length: int) -> bytes:
    return msg_type + struct.pack("!I", length)


QUERY = Query("select 1").encode()
SYNC = Sync().encode()


def test_split_messages_returns_every_whole_message() -> None:
    messages, end = split_messages(QUERY + SYNC)
    assert messages == [(ord("Q"), b"select 1\x00"), (ord("S"), b"")]
    assert end == len(QUERY) + len(SYNC)


@pytest.mark.parametrize("cut", range(1, len(QUERY)))
def test_split_messages_leaves_a_partial_message_for_later(cut: int) -> None:
    messages, end = split_messages(SYNC + QUERY[:cut])
    assert messages == [(ord("S"), b"")]
    assert end == len(SYNC)


def test_split_messages_starts_at_the_given_offset() -> None:
    messages, end = split_messages(b"junk" + SYNC, start=4)
    assert messages == [(ord("S"), b"")]
    assert end == 4 + len(SYNC)


def test_split_messages_accepts_bytearray_and_memoryview() -> None:
    for data in (bytearray(QUERY), memoryview(QUERY)):
        messages, _ = split_messages(data)
        assert messages == [(ord("Q"), b"select 1\x00")]
        assert type(messages[0][1]) is bytes


@pytest.mark.parametrize("length", [0, 3])
def test_split_messages_refuses_a_length_below_four(length: int) -> None:
    with pytest.raises(ProtocolViolation):
        split_messages(header(b"S", length))


def test_first_message_waits_for_a_whole_header() -> None:
    for cut in range(5):
        assert first_message(SYNC[:cut]) is None


def test_first_message_waits_for_the_body() -> None:
    assert first_message(QUERY[:-1]) is None
    assert first_message(QUERY + SYNC) == (ord("Q"), len(QUERY))


def test_first_message_rejects_garbage_before_its_declared_body_arrives() -> None:
    # A zero type byte with a huge length: refused from the header alone, nothing awaited.
    with pytest.raises(ProtocolViolation):
        first_message(header(b"\x00", 0x7FFFFFFF))


@pytest.mark.parametrize("msg_type", [b"\x00", b"Z", b"p", b"R", b"T", b"x"])
def test_unknown_or_wrong_direction_type_is_refused(msg_type: bytes) -> None:
    # 'p' (PasswordMessage) is only valid during authentication, not on the relayed stream.
    with pytest.raises(ProtocolViolation, match="invalid frontend message type"):
        check_frontend_header(msg_type[0], 4)


@pytest.mark.parametrize("msg_type", "QPBFdfCDEHScX")
def test_length_three_is_refused_for_every_type(msg_type: str) -> None:
    with pytest.raises(ProtocolViolation, match="invalid message length"):
        check_frontend_header(ord(msg_type), 3)


@pytest.mark.parametrize("msg_type", "CDEHScXf")
def test_small_message_limit_counts_the_length_word(msg_type: str) -> None:
    # pq_getmessage compares the length *including itself* against the limit.
    check_frontend_header(ord(msg_type), PQ_SMALL_MESSAGE_LIMIT)
    with pytest.raises(ProtocolViolation):
        check_frontend_header(ord(msg_type), PQ_SMALL_MESSAGE_LIMIT + 1)


def test_sync_with_length_10005_is_refused() -> None:
    with pytest.raises(ProtocolViolation):
        first_message(header(b"S", 10005))


@pytest.mark.parametrize("msg_type", "QPBFd")
def test_large_message_types_are_allowed_up_to_the_large_limit(msg_type: str) -> None:
    check_frontend_header(ord(msg_type), PQ_LARGE_MESSAGE_LIMIT)
    with pytest.raises(ProtocolViolation):
        check_frontend_header(ord(msg_type), PQ_LARGE_MESSAGE_LIMIT + 1)


def test_a_declared_one_gib_query_is_over_the_large_limit() -> None:
    assert PQ_LARGE_MESSAGE_LIMIT == 0x3FFFFFFE  # MaxAllocSize - 1
    with pytest.raises(ProtocolViolation):
        first_message(header(b"Q", 1 << 30))


def test_a_large_query_header_is_accepted_and_its_body_awaited() -> None:
    assert first_message(header(b"Q", 1 << 20)) is None


def test_copy_fail_is_a_small_message() -> None:
    # CopyGetData and SocketBackend read CopyFail with PQ_SMALL_MESSAGE_LIMIT.
    with pytest.raises(ProtocolViolation):
        first_message(header(b"f", 20000))


def cstring_cases() -> list[tuple[bytes, int, int]]:
    """(data, start, end): NULs near and far (past the bytes read one by one), none, and an
    end that hides the NUL."""
    long = b"x" * 200 + b"\0tail"
    return [(b"\0", 0, 1), (b"name\0text\0", 0, 10), (b"name\0text\0", 5, 10),
            (long, 0, len(long)), (long, 150, len(long)), (b"abc\0", 0, 3), (b"abc", 0, 3),
            (long, 0, 100), (b"ab\0cd\0", 3, 6)]


@pytest.mark.parametrize(("data", "start", "end"), cstring_cases())
def test_cstring_end_is_bytes_index_of_the_nul(data: bytes, start: int, end: int) -> None:
    for buf in (data, bytearray(data)):
        try:
            expected = data.index(0, start, end)
        except ValueError:
            with pytest.raises(ValueError):
                cstring_end(buf, start, end)
        else:
            assert cstring_end(buf, start, end) == expected


@given(st.binary(max_size=300), st.integers(0, 300), st.integers(0, 300))
def test_cstring_end_agrees_with_bytes_index(data: bytes, start: int, end: int) -> None:
    try:
        expected: int | None = data.index(0, start, end)
    except ValueError:
        expected = None
    for buf in (data, bytearray(data)):
        try:
            found: int | None = cstring_end(buf, start, end)
        except ValueError:
            found = None
        assert found == expected


def test_decode_text_reads_utf8_from_bytes_and_bytearray() -> None:
    data = b"\0caf\xc3\xa9\0"
    assert decode_text(data, 1, 6) == decode_text(bytearray(data), 1, 6) == "caf\u00e9"
    with pytest.raises(UnicodeDecodeError):
        decode_text(b"\xff\xfe", 0, 2)
