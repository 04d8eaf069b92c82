"""The statement mapping's rewrite of client messages, without any server."""

from __future__ import annotations

import pytest

from pgcat_py.backend.prepared import (
    DROP_CLOSE,
    DROP_PARSE,
    KEEP_PARSE,
    SYNC_POINT,
    ServerStatements,
    StatementRegistry,
)
from pgcat_py.frontend.statements import ClientStatements, rewrite
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.framing import split_messages


def kinds(notes: list[tuple[int, bytes]]) -> list[int]:
    return [kind for kind, _ in notes]


def test_named_parse_is_renamed_and_closed_first() -> None:
    client, registry, server = ClientStatements(), StatementRegistry(), ServerStatements()
    out, notes, _ = rewrite(fe.Parse("s1", "SELECT 1").encode() + fe.Sync().encode(),
                            client, registry, server, False)
    messages, _ = split_messages(out)
    assert [chr(t) for t, _ in messages] == ["C", "P", "S"]
    # One numbering per process (prepared.py), so the number depends on earlier tests.
    name = client.named[b"s1\0"].name
    assert name.startswith(b"pgcatpy_") and messages[1][1].startswith(name)
    assert b"s1" not in messages[1][1]
    assert kinds(notes) == [DROP_CLOSE, KEEP_PARSE, SYNC_POINT]


def test_bind_on_a_server_without_the_statement_prepares_it_first() -> None:
    client, registry = ClientStatements(), StatementRegistry()
    rewrite(fe.Parse("s1", "SELECT 1").encode(), client, registry, ServerStatements(), False)
    other_server = ServerStatements()
    out, notes, _ = rewrite(fe.Bind("", "s1", (), ()).encode() + fe.Sync().encode(),
                            client, registry, other_server, False)
    assert [chr(t) for t, _ in split_messages(out)[0]] == ["C", "P", "B", "S"]
    assert kinds(notes) == [DROP_CLOSE, DROP_PARSE, SYNC_POINT]
    _, notes, _ = rewrite(fe.Bind("", "s1", (), ()).encode(), client, registry,
                          other_server, False)
    assert notes == []  # prepared there now


def test_function_call_is_a_sync_point() -> None:
    call = fe.FunctionCall(1, (), (), 0).encode()
    _, notes, _ = rewrite(call + fe.Parse("s1", "SELECT 1").encode() + fe.Sync().encode(),
                          ClientStatements(), StatementRegistry(), ServerStatements(), False)
    assert kinds(notes) == [SYNC_POINT, DROP_CLOSE, KEEP_PARSE, SYNC_POINT]


def test_eviction_closes_the_least_recently_used() -> None:
    client, registry, server = ClientStatements(), StatementRegistry(), ServerStatements(2)
    for i in range(3):
        _, notes, _ = rewrite(fe.Parse(f"s{i}", f"SELECT {i}").encode(), client, registry,
                              server, False)
    first, second, third = (client.named[f"s{i}".encode() + b"\0"].name for i in range(3))
    assert notes[-1] == (DROP_CLOSE, first)
    assert list(server.names) == [second, third]


@pytest.mark.parametrize("message", [b"D\0\0\0\x04", b"C\0\0\0\x05S",
                                     b"P\0\0\0\x06ab", b"B\0\0\0\x05x"])
def test_malformed_messages_raise_value_error(message: bytes) -> None:
    with pytest.raises(ValueError):
        rewrite(message, ClientStatements(), StatementRegistry(), ServerStatements(), False)


def test_a_rebuilt_pools_registry_never_reuses_a_name() -> None:
    """A reload gives a rebuilt pool a new registry while its clients keep the statements
    the old one named; the same name for another query would bind the wrong statement."""
    old, new = StatementRegistry(), StatementRegistry()
    kept = old.statement(b"SELECT $1\0\0\x01\0\0\0\x17")  # int4
    other = new.statement(b"SELECT $1\0\0\x01\0\0\0\x15")  # int2
    assert kept.name != other.name
    assert new.named(kept.name) is None
