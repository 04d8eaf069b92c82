"""An idle client's chunk stands for its buffer while the buffer holds just that chunk
(ClientSession._whole): read and handed on as it is, never once a byte of it is consumed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from pgcat_py.frontend.idle import _query_text
from pgcat_py.frontend.session import ClientSession
from pgcat_py.protocol.frontend import Query


def _session() -> ClientSession:
    return ClientSession(cast(Any, SimpleNamespace(worker=SimpleNamespace(count=1, index=0))))


def test_the_whole_chunk_is_handed_on_without_a_copy() -> None:
    session, chunk = _session(), Query("SELECT 1").encode()
    session._rbuf += chunk
    session._whole = chunk
    assert _query_text(session, len(chunk)) == "SELECT 1"
    taken = session.take_buffered()
    assert taken is chunk and not session._rbuf and session._whole is None


def test_after_a_consume_the_buffer_is_what_is_handed_on() -> None:
    session = _session()
    first, second = Query("SET SHARD TO '1'").encode(), Query("SELECT 2").encode()
    session._rbuf += first + second
    session._whole = first + second
    session.consume(len(first))  # a custom command answered here
    assert session._whole is None
    assert _query_text(session, len(second)) == "SELECT 2"
    assert session.take_buffered() == second and not session._rbuf


def test_text_that_is_not_utf8_has_no_query_text() -> None:
    session, chunk = _session(), b"Q\0\0\0\x07\xff\xfe\0"
    session._rbuf += chunk
    assert _query_text(session, len(chunk)) is None
    session._whole = chunk
    assert _query_text(session, len(chunk)) is None
