"""Relay scanner properties: whatever way a stream is cut into chunks, the scanners see the
same sync points, batches, Terminate and interesting server messages as a whole read would.
"""

from __future__ import annotations

from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgcat_py.protocol import backend as be
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import (
    FRONTEND_LIMITS,
    PQ_SMALL_MESSAGE_LIMIT,
    SESSION_TAGS,
    BackendScanner,
    FrontendScanner,
)
from tests.property.protocol.strategies import (
    backend_messages,
    cut_points,
    relayed_frontend_messages,
    split_at,
)

SYNC_TYPES = frozenset(b"QSF")
BATCH_TYPES = frozenset(b"PBDECH")

frontend_lists = st.lists(relayed_frontend_messages, max_size=10)


def starts_of(encoded: list[bytes]) -> list[int]:
    """Offset of each message in the concatenated stream, plus the stream's end."""
    return [0, *accumulate(len(e) for e in encoded)]


def batch_open_after(encoded: list[bytes]) -> bool:
    """True when an extended-protocol message follows the last sync point."""
    open_ = False
    for e in encoded:
        if e[0] in SYNC_TYPES:
            open_ = False
        elif e[0] in BATCH_TYPES:
            open_ = True
    return open_


def parse_name_may_be_cut(encoded: list[bytes], starts: list[int], cuts: list[int]) -> bool:
    """The documented conservative cases: a chunk ends inside or right after a Parse's
    header, so the scanner cannot see whether the statement name is empty before the
    header's first bytes have gone out."""
    cut_set = set(cuts)
    return any(e[0] == ord("P") and any(start + k in cut_set for k in range(1, 6))
               for e, start in zip(encoded, starts, strict=False))


@settings(max_examples=100)
@given(frontend_lists, st.data())
def test_frontend_scanner_sees_the_same_stream_under_any_chunking(
        messages: list[fe.FrontendMessage], data: st.DataObject) -> None:
    encoded = [m.encode() for m in messages]
    starts = starts_of(encoded)
    stream = b"".join(encoded)
    cuts = data.draw(cut_points(len(stream)))
    sync_spans = [(s, s + len(e)) for e, s in zip(encoded, starts, strict=False)
                  if e[0] in SYNC_TYPES]
    scanner = FrontendScanner()
    total, pos = 0, 0
    for chunk in split_at(stream, cuts):
        syncs, terminate_at = scanner.feed(chunk)
        pos += len(chunk)
        total += syncs
        assert terminate_at == -1
        # A sync point is counted once its header is in, at the latest when it is whole.
        assert sum(end <= pos for _, end in sync_spans) <= total
        assert total <= sum(start + 5 <= pos for start, _ in sync_spans)
        assert scanner.at_boundary == (pos in starts)
    assert total == len(sync_spans)
    assert scanner.in_batch == batch_open_after(encoded)
    named = any(isinstance(m, fe.Parse) and m.name for m in messages)
    assert scanner.named_parse == (named or parse_name_may_be_cut(encoded, starts, cuts))


@settings(max_examples=100)
@given(frontend_lists, st.binary(max_size=12), st.data())
def test_terminate_is_reported_where_it_starts_under_any_chunking(
        before: list[fe.FrontendMessage], after: bytes, data: st.DataObject) -> None:
    encoded = [m.encode() for m in before]
    terminate_at = sum(map(len, encoded))
    # Whatever follows a Terminate is never looked at, garbage included.
    stream = b"".join(encoded) + fe.Terminate().encode() + after
    scanner = FrontendScanner()
    total, chunk_start = 0, 0
    for chunk in split_at(stream, data.draw(cut_points(len(stream)))):
        syncs, offset = scanner.feed(chunk)
        total += syncs
        if offset != -1:
            break
        chunk_start += len(chunk)
    else:
        pytest.fail("Terminate was never reported")
    assert chunk_start < terminate_at + 5 <= chunk_start + len(chunk)
    assert offset == max(terminate_at - chunk_start, 0)
    assert scanner.at_boundary == (terminate_at >= chunk_start)
    assert total == sum(e[0] in SYNC_TYPES for e in encoded)
    assert scanner.in_batch == batch_open_after(encoded)


VALID_TYPES = [t for t in range(256) if FRONTEND_LIMITS[t]]
garbage_headers = st.one_of(
    st.builds(lambda t, n: bytes([t]) + n.to_bytes(4, "big"),
              st.integers(0, 255).filter(lambda t: FRONTEND_LIMITS[t] == 0),
              st.integers(4, 2**32 - 1)),
    st.builds(lambda t, n: bytes([t]) + n.to_bytes(4, "big"),
              st.sampled_from(VALID_TYPES), st.integers(0, 3) | st.integers(2**31, 2**32 - 1)),
    st.builds(lambda t, n: t + n.to_bytes(4, "big"),
              st.sampled_from([b"S", b"H", b"X", b"C", b"D", b"E", b"c", b"f"]),
              st.integers(PQ_SMALL_MESSAGE_LIMIT + 1, 2**31 - 1)),
)


@settings(max_examples=100)
@given(frontend_lists, garbage_headers, st.binary(max_size=8), st.data())
def test_garbage_after_valid_messages_is_a_protocol_violation_under_any_chunking(
        before: list[fe.FrontendMessage], garbage: bytes, after: bytes,
        data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in before) + garbage + after
    scanner = FrontendScanner()
    with pytest.raises(ProtocolViolation):
        for chunk in split_at(stream, data.draw(cut_points(len(stream)))):
            scanner.feed(chunk)


def scan_oracle(encoded: list[bytes]) -> tuple[int, int, bool, int, int, list[tuple[int, bytes]]]:
    """What BackendScanner must report for these whole messages, computed message by message."""
    ready, status, in_copy, commands, tags = 0, ord("I"), False, 0, 0
    others: list[tuple[int, bytes]] = []
    for e in encoded:
        kind, payload = e[0], e[5:]
        if kind == ord("Z"):
            ready, status, in_copy = ready + 1, payload[0], False
        elif kind == ord("C"):
            commands += 1
            tags |= SESSION_TAGS.get(payload[:-1], 0)
        elif kind in b"GHW":
            in_copy = True
        elif kind in b"ESK":
            others.append((kind, payload))
    return ready, status, in_copy, commands, tags, others


@settings(max_examples=100)
@given(st.lists(backend_messages, max_size=10), st.data())
def test_backend_scanner_reports_the_same_under_any_chunking(
        messages: list[be.BackendMessage], data: st.DataObject) -> None:
    encoded = [m.encode() for m in messages]
    starts = starts_of(encoded)
    stream = b"".join(encoded)
    scanner = BackendScanner()
    ready = 0
    pos = 0
    for chunk in split_at(stream, data.draw(cut_points(len(stream)))):
        ready += scanner.feed(chunk)
        pos += len(chunk)
        assert scanner.at_boundary == (pos in starts)
    got = (ready, scanner.status, scanner.in_copy, scanner.commands, scanner.session_tags,
           [(t, bytes(p)) for t, p in scanner.others])
    assert got == scan_oracle(encoded)
    assert ord("D") not in {t for t, _ in scanner.others}   # DataRows are never sliced
