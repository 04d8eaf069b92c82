"""Named prepared statements in transaction mode: the client's names, the server's names.

In transaction mode a client's transactions land on different server connections, so a
statement it prepared on one is missing on the next. Each client statement name is mapped to
a server-side name shared by every client of the pool that prepares the same query text and
parameter types (``pgcatpy_<n>``). A server connection prepares it lazily, right before the
first Bind or Describe that needs it there, and keeps it (least recently used first out,
prepared_statements_cache_size per connection) for whichever client comes next.

This is the relay's slow path (DESIGN §4): a chunk from a client that uses named statements
is cut into whole messages and rewritten here. Every Parse and Close sent to the server,
the client's own and the ones injected here, is noted in order on the server connection, so
that it drops exactly the ParseComplete and CloseComplete replies the client never asked
for (ServerConnection.expect); nothing is guessed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from ..backend.prepared import (
    DROP_CLOSE,
    DROP_PARSE,
    KEEP_CLOSE,
    KEEP_PARSE,
    SYNC_POINT,
    Expectation,
    ServerStatements,
    Statement,
    StatementRegistry,
)
from ..protocol.framing import (
    BIND,
    CLOSE,
    DESCRIBE,
    FUNCTION_CALL,
    PARSE,
    QUERY,
    SYNC,
    unpack_header,
)

# A Close of a name no client statement uses: the server answers CloseComplete, and the
# statement shared on that connection stays for the next client (closing a statement that
# does not exist is not an error in PostgreSQL).
UNUSED_NAME: Final = b"pgcatpy_closed\0"
_LENGTH: Final = struct.Struct("!I")

@dataclass(slots=True)
class ClientStatements:
    """A client's named statements, and its last unnamed Parse (replayed when a Bind of
    the unnamed statement starts a transaction on another server: pgx's describe_exec)."""

    unnamed_parse: bytes = b""
    _named: dict[bytes, Statement] | None = field(default=None, repr=False)

    @property
    def named(self) -> dict[bytes, Statement]:
        """Client name (NUL included) -> statement. Made on first use: most clients never
        name a statement, and an empty dict per idle client is 64 bytes."""
        named = self._named
        if named is None:
            named = self._named = {}
        return named


def rewrite(data: bytes, client: ClientStatements, registry: StatementRegistry,
            server: ServerStatements, unnamed_ready: bool
            ) -> tuple[bytes, list[Expectation], bool]:
    """Rewrite whole client messages for one server connection.

    Returns the bytes to send, the replies to expect (in order), and whether the unnamed
    statement is now known on this server for this client.
    """
    out: list[bytes] = []
    notes: list[Expectation] = []
    pos, n = 0, len(data)
    while pos < n:
        msg_type, length = unpack_header(data, pos)
        end = pos + 1 + length
        if msg_type == PARSE:
            if _parse(data, pos, end, client, registry, server, out, notes):
                unnamed_ready = True
        elif msg_type == BIND:
            unnamed_ready = _bind(data, pos, end, client, server, unnamed_ready, out, notes)
        elif msg_type in (DESCRIBE, CLOSE):
            if length < 6 or data[end - 1] != 0 or data[pos + 5] not in (0x50, 0x53):
                raise ValueError("malformed Describe or Close")  # 'P' or 'S', name, NUL
            if data[pos + 5] == 0x53:  # 'S': a statement
                _statement_ref(data, pos, end, client, server, out, notes)
            else:
                out.append(data[pos:end])
        else:
            if msg_type in (SYNC, QUERY, FUNCTION_CALL):
                notes.append((SYNC_POINT, b""))
            out.append(data[pos:end])
        pos = end
    return b"".join(out), notes, unnamed_ready


def _parse(data: bytes, pos: int, end: int, client: ClientStatements,
           registry: StatementRegistry, server: ServerStatements, out: list[bytes],
           notes: list[Expectation]) -> bool:
    """True when this was a Parse of the unnamed statement."""
    name_end = data.index(0, pos + 5, end) + 1
    data.index(0, name_end, end)  # the query text is terminated too (else ValueError)
    name = data[pos + 5:name_end]
    if name == b"\0":  # the unnamed statement: sent as it is, remembered for a replay
        client.unnamed_parse = data[pos:end]
        out.append(client.unnamed_parse)
        notes.append((KEEP_PARSE, b""))
        return True
    if name in client.named:  # PostgreSQL's 42P05, from the server itself
        _duplicate_parse(name, server, out, notes)
        return False
    statement = registry.statement(data[name_end:end])
    client.named[name] = statement
    # Parse as the client asked, after a Close: the name may be prepared here already (by
    # another client), and a second Parse of a live name is an error.
    out.append(_close(statement.name))
    notes.append((DROP_CLOSE, statement.name))
    out.append(statement.parse)
    notes.append((KEEP_PARSE, statement.name))
    _remember(server, statement.name, out, notes)
    return False


def _duplicate_parse(name: bytes, server: ServerStatements, out: list[bytes],
                     notes: list[Expectation]) -> None:
    """A Parse reusing a live client name: the server prepares a statement under that very
    name twice, so that it answers the second with its own 42P05 "prepared statement ...
    already exists" and skips to Sync exactly as it would have. The name stays prepared on
    that server connection (a Close now would be skipped too), noted there like the pool's own
    statements, so that it is closed when it ages out."""
    parse = _message(b"P", name + b"SELECT 1\0\0\0")
    out.append(parse)
    notes.append((DROP_PARSE, b""))
    out.append(parse)
    notes.append((KEEP_PARSE, b""))
    _remember(server, name, out, notes)


def _bind(data: bytes, pos: int, end: int, client: ClientStatements,
          server: ServerStatements, unnamed_ready: bool, out: list[bytes],
          notes: list[Expectation]) -> bool:
    portal_end = data.index(0, pos + 5, end) + 1
    name_end = data.index(0, portal_end, end) + 1
    name = data[portal_end:name_end]
    if name == b"\0":
        if not unnamed_ready and client.unnamed_parse:
            out.append(client.unnamed_parse)
            notes.append((DROP_PARSE, b""))
        out.append(data[pos:end])
        return True
    statement = client.named.get(name)
    if statement is None:  # never prepared: PostgreSQL's own error (26000) follows
        out.append(data[pos:end])
        return unnamed_ready
    _ensure(statement, server, out, notes)
    body = data[pos + 5:portal_end] + statement.name + data[name_end:end]
    out.append(b"B" + _LENGTH.pack(len(body) + 4) + body)
    return unnamed_ready


def _statement_ref(data: bytes, pos: int, end: int, client: ClientStatements,
                   server: ServerStatements, out: list[bytes], notes: list[Expectation]) -> None:
    """Describe or Close of a named statement."""
    msg_type = data[pos]
    name = data[pos + 6:end]
    statement = client.named.get(name) if name != b"\0" else None
    if statement is None:
        if msg_type == CLOSE:
            notes.append((KEEP_CLOSE, b""))
        out.append(data[pos:end])
        return
    if msg_type == CLOSE:
        del client.named[name]
        out.append(_close(UNUSED_NAME))
        notes.append((KEEP_CLOSE, b""))
        return
    _ensure(statement, server, out, notes)
    out.append(_describe(statement.name))


def _ensure(statement: Statement, server: ServerStatements, out: list[bytes],
            notes: list[Expectation]) -> None:
    """Prepare ``statement`` on this server first unless it is there."""
    names = server.names
    if statement.name in names:
        names.move_to_end(statement.name)
        server.hits += 1
        return
    server.misses += 1
    # Close first: after a reset we cannot be sure it is gone (Close of a missing name is
    # no error), and a Parse of a live name would be one.
    out.append(_close(statement.name))
    notes.append((DROP_CLOSE, statement.name))
    out.append(statement.parse)
    notes.append((DROP_PARSE, statement.name))
    _remember(server, statement.name, out, notes)


def _remember(server: ServerStatements, name: bytes, out: list[bytes],
              notes: list[Expectation]) -> None:
    names = server.names
    names[name] = None
    names.move_to_end(name)
    while len(names) > server.capacity:  # least recently used out, closed on the server
        evicted, _ = names.popitem(last=False)
        server.evictions += 1
        out.append(_close(evicted))
        notes.append((DROP_CLOSE, evicted))


def _message(msg_type: bytes, body: bytes) -> bytes:
    return msg_type + _LENGTH.pack(4 + len(body)) + body


def _close(name: bytes) -> bytes:
    return _message(b"C", b"S" + name)


def _describe(name: bytes) -> bytes:
    return _message(b"D", b"S" + name)
