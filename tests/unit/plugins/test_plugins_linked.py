"""plugins/linked.py: what can be refused whole, and the refusal the server raises."""

from __future__ import annotations

from pgcat_py.plugins.linked import _ends_at_sync, raise_query
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.errors import ProxyError
from pgcat_py.protocol.framing import split_messages


def encode(*messages: fe.FrontendMessage) -> bytes:
    return b"".join(m.encode() for m in messages)


def types(*messages: fe.FrontendMessage) -> list[int]:
    return [t for t, _ in split_messages(encode(*messages))[0]]


def test_a_lone_query_or_one_synced_batch_is_a_unit() -> None:
    assert _ends_at_sync(types(fe.Query("SELECT 1")))
    assert _ends_at_sync(types(fe.Parse("", "SELECT 1"), fe.Bind("", ""), fe.Execute(""),
                               fe.Sync()))


def test_pipelines_and_unsynced_batches_are_not() -> None:
    assert not _ends_at_sync(types(fe.Query("SELECT 1"), fe.Query("SELECT 2")))
    assert not _ends_at_sync(types(fe.Parse("", "SELECT 1"), fe.Sync(), fe.Parse("", "x"),
                                   fe.Sync()))
    assert not _ends_at_sync(types(fe.Parse("", "SELECT 1"), fe.Flush()))


def test_the_raised_refusal_is_one_query_with_the_message_quoted() -> None:
    data = raise_query(ProxyError("permission for table \"it's\" denied $$", sqlstate="42501"))
    messages, used = split_messages(data)
    assert used == len(data) and [t for t, _ in messages] == [ord("Q")]
    sql = messages[0][1][:-1].decode()
    assert "ERRCODE = '42501'" in sql
    assert "MESSAGE = 'permission for table \"it''s\" denied '" in sql
