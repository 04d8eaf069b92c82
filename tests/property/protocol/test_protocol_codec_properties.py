"""Codec properties: encode then decode is identity, any chunking decodes to the same messages,
and no byte string makes a decoder raise anything but ProtocolViolation.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pgcat_py.protocol import backend as be
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import split_messages
from pgcat_py.protocol.wire import message
from tests.property.protocol.strategies import (
    backend_messages,
    cut_points,
    frontend_messages,
    split_at,
)

# Types whose last field is "the rest of the payload": every prefix and every extension of
# a valid payload is itself valid, so truncation and over-length cannot be detected.
REST_TYPES = frozenset(b"dpR")
# Decoders that accept payloads they would not produce: ReadyForQuery takes any status byte
# and Error/Notice take any field code and repeated codes (the relay reads these itself).
LENIENT_BACKEND_TYPES = frozenset(b"ZEN")


def one_message(data: bytes) -> tuple[int, bytes]:
    messages, end = split_messages(data)
    assert end == len(data)
    assert len(messages) == 1
    return messages[0]


def stream_decode(chunks: list[bytes]) -> list[tuple[int, bytes]]:
    """What a reader keeping its leftover bytes between reads gets from these chunks."""
    buffer, out = b"", []
    for chunk in chunks:
        buffer += chunk
        messages, end = split_messages(buffer)
        out += messages
        buffer = buffer[end:]
    assert buffer == b""
    return out


@settings(max_examples=120)
@given(frontend_messages)
def test_frontend_encode_then_decode_is_identity(msg: fe.FrontendMessage) -> None:
    msg_type, payload = one_message(msg.encode())
    assert fe.decode_frontend(msg_type, payload) == msg


@settings(max_examples=120)
@given(backend_messages)
def test_backend_encode_then_decode_is_identity(msg: be.BackendMessage) -> None:
    msg_type, payload = one_message(msg.encode())
    assert be.decode_backend(msg_type, payload) == msg


@settings(max_examples=100)
@given(st.lists(frontend_messages, max_size=8), st.data())
def test_any_chunking_of_a_frontend_stream_decodes_to_the_same_messages(
        messages: list[fe.FrontendMessage], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    chunks = split_at(stream, data.draw(cut_points(len(stream))))
    decoded = [fe.decode_frontend(t, p) for t, p in stream_decode(chunks)]
    assert decoded == messages


@settings(max_examples=100)
@given(st.lists(backend_messages, max_size=8), st.data())
def test_any_chunking_of_a_backend_stream_decodes_to_the_same_messages(
        messages: list[be.BackendMessage], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    chunks = split_at(stream, data.draw(cut_points(len(stream))))
    decoded = [be.decode_backend(t, p) for t, p in stream_decode(chunks)]
    assert decoded == messages


@settings(max_examples=120)
@given(frontend_messages, st.data())
def test_truncated_frontend_payload_is_a_protocol_violation(
        msg: fe.FrontendMessage, data: st.DataObject) -> None:
    msg_type, payload = one_message(msg.encode())
    assume(msg_type not in REST_TYPES and payload)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(ProtocolViolation):
        fe.decode_frontend(msg_type, payload[:cut])


@settings(max_examples=120)
@given(backend_messages, st.data())
def test_truncated_backend_payload_is_a_protocol_violation(
        msg: be.BackendMessage, data: st.DataObject) -> None:
    msg_type, payload = one_message(msg.encode())
    assume(msg_type not in REST_TYPES and payload)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(ProtocolViolation):
        be.decode_backend(msg_type, payload[:cut])


@settings(max_examples=120)
@given(frontend_messages, st.binary(min_size=1, max_size=8))
def test_overlong_frontend_payload_is_a_protocol_violation(
        msg: fe.FrontendMessage, extra: bytes) -> None:
    msg_type, payload = one_message(msg.encode())
    assume(msg_type not in REST_TYPES)
    with pytest.raises(ProtocolViolation):
        fe.decode_frontend(msg_type, payload + extra)


@settings(max_examples=120)
@given(backend_messages, st.binary(min_size=1, max_size=8))
def test_overlong_backend_payload_is_a_protocol_violation(
        msg: be.BackendMessage, extra: bytes) -> None:
    msg_type, payload = one_message(msg.encode())
    assume(msg_type not in REST_TYPES)
    with pytest.raises(ProtocolViolation):
        be.decode_backend(msg_type, payload + extra)


def mutated_payloads(messages: st.SearchStrategy[fe.FrontendMessage] |
                     st.SearchStrategy[be.BackendMessage]) -> st.SearchStrategy[bytes]:
    """Valid payloads with a few bytes overwritten: mostly well-formed, subtly wrong."""
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        payload = bytearray(one_message(draw(messages).encode())[1])
        for _ in range(draw(st.integers(0, 3)) if payload else 0):
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.sampled_from(
                [0x00, 0x01, 0x7F, 0x80, 0xFF]))
        return bytes(payload)
    return mutate()


AnyMessage = fe.FrontendMessage | be.BackendMessage


def decode_or_violation(decode: Callable[[int, bytes], AnyMessage], msg_type: int,
                        payload: bytes) -> AnyMessage | None:
    try:
        return decode(msg_type, payload)
    except ProtocolViolation:
        return None


@settings(max_examples=250)
@given(st.integers(0, 255), st.binary(max_size=40) | mutated_payloads(frontend_messages))
@example(ord("P"), b"\0\0\xff\xff")            # a negative-looking parameter count
@example(ord("B"), b"\0\0\xff\xff\0\0\0\0")
def test_any_frontend_payload_decodes_canonically_or_is_a_protocol_violation(
        msg_type: int, payload: bytes) -> None:
    msg = decode_or_violation(fe.decode_frontend, msg_type, payload)
    if msg is not None:
        # Whatever is accepted re-encodes to the very bytes it came from: nothing the
        # client sent is dropped or reinterpreted when the proxy forwards a decoded message.
        assert msg.encode() == message(bytes([msg_type]), payload)


@settings(max_examples=250)
@given(st.integers(0, 255), st.binary(max_size=40) | mutated_payloads(backend_messages))
@example(ord("T"), b"\xff\xff")
@example(ord("t"), b"\xff\xff")
def test_any_backend_payload_decodes_canonically_or_is_a_protocol_violation(
        msg_type: int, payload: bytes) -> None:
    msg = decode_or_violation(be.decode_backend, msg_type, payload)
    if msg is not None and msg_type not in LENIENT_BACKEND_TYPES:
        assert msg.encode() == message(bytes([msg_type]), payload)
