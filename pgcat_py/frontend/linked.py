"""What the relay does with client chunks that need more than forwarding (DESIGN §4's slow
path): rewriting named statements through the client's mapping (frontend/statements.py),
keeping a Parse of the unnamed statement for a replay, keeping the SETs a server confirmed
(frontend/settings.py), and answering pgcat's custom commands once a server is held.
Functions of the session, kept apart so session.py stays the plain relay.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from ..backend.prepared import SYNC_POINT
from ..backend.stale_plan import retryable
from ..protocol import backend as be
from ..protocol.errors import ACTIVE_SQL_TRANSACTION, ProtocolViolation, ProxyError
from ..protocol.framing import IDLE
from .commands import custom_command, run_command
from .settings import apply_change, setting_change
from .statements import rewrite

if TYPE_CHECKING:
    from ..backend.server import ServerConnection
    from .session import ClientSession

# SQL DEALLOCATE of one statement (psycopg with libpq < 17 sends it for protocol statements
# past its cache size; Rails' statement pool does too).
_DEALLOCATE: Final = re.compile(
    rb'\s*DEALLOCATE\s+(?:PREPARE\s+)?("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)[\s;]*',
    re.IGNORECASE)
# A client's _fbuf when nothing is pending: one for all (56 bytes each otherwise). Never
# appended to: relay_rewritten appends only to a non-empty one, which is the client's own.
NO_PENDING: Final = bytearray()
_STATEMENT_MESSAGES: Final = frozenset(b"PBDC")  # they may name a statement: rewritten whole
_SYNC_MESSAGES: Final = frozenset(b"QFS")  # each answered by a ReadyForQuery (statements.rewrite)


def relay_rewritten(session: ClientSession, server: ServerConnection, data: bytes,
                    syncs: int, term: int) -> None:
    """Relay a chunk through the statement mapping (frontend/statements.py): whole
    messages are rewritten; an incomplete Parse/Bind/Describe/Close waits for its end,
    anything else incomplete is streamed as it comes."""
    scanner = session.scanner
    if not session._rewriting:  # the first named Parse: from here on, every chunk
        session._rewriting = True
        session._raw_rest = scanner.first_message_offset(data)
    scanner.named_parse = False
    chunk = data if term < 0 else data[:term]
    raw = min(session._raw_rest, len(chunk))
    session._raw_rest -= raw
    pending = session._fbuf
    if pending and term < 0 and len(pending) + len(chunk) < _needed(pending):
        pending += chunk  # the rest of a big statement message: collect, re-cut once whole
        return
    buf = bytes(pending) + chunk[raw:] if pending else chunk[raw:]
    whole, tail = _split_whole(buf)
    session._fbuf = NO_PENDING
    streamed = b""
    if tail:
        if tail[0] in _STATEMENT_MESSAGES or len(tail) < 5:
            session._fbuf = bytearray(tail)  # a name to rewrite may be in it: wait for it
        else:
            streamed, session._raw_rest = tail, 1 + int.from_bytes(tail[1:5]) - len(tail)
    cluster = session.cluster
    assert cluster is not None
    try:
        out, notes, session._unnamed_ready = rewrite(
            whole, session.prepared, cluster.statements, server.statements,
            session._unnamed_ready)
    except (IndexError, ValueError):  # a message whose fields do not fit its length
        session.fatal(ProtocolViolation("invalid message format"))
        return
    if streamed and streamed[0] in _SYNC_MESSAGES:
        # A Query cut by the read: the scanner counted its ReadyForQuery (syncs) from its
        # header, so its sync point is noted now, behind the messages before it; its rest
        # comes as raw bytes. Else the queue is one short, and a later ReadyForQuery voids
        # the Close and Parse of a batch still to run (their replies reach the client).
        notes.append((SYNC_POINT, b""))
    # Replies to track only where a Parse or Close went out, or some are still owed (then
    # the sync points too, to bound what an error voids): a batch of Binds and Executes of
    # prepared statements (the steady state) leaves the server's replies on the fast path.
    if server.expected or any(kind != SYNC_POINT for kind, _ in notes):
        server.expect(notes)
    if (syncs == 1 and server.pending == 0 and not raw and not streamed and term < 0
            and not session._fbuf and retryable(out)):
        server.retry = (out, cluster.statements)
    server.forward(chunk[:raw] + out + streamed, syncs)
    if term >= 0:
        session.after_terminate(server)

def remember_unnamed(session: ClientSession, data: bytes) -> None:
    """Keep a Parse of the unnamed statement that no Bind followed: if the Bind comes
    in the next transaction (pgx's describe_exec), it is replayed on that server."""
    offset, session.scanner.unnamed_parse = session.scanner.unnamed_parse, -1
    if session.transaction_mode:
        end = offset + 1 + int.from_bytes(data[offset + 1:offset + 5])
        session.prepared.unnamed_parse = data[offset:end]

def remember_set_parse(session: ClientSession, server: ServerConnection, data: bytes) -> None:
    """A Parse of the unnamed statement that may be a SET went by (the extended protocol's
    SET, as pgjdbc sends it): its text waits for the server's confirmation, like a Query's."""
    offset, session.scanner.set_parse = session.scanner.set_parse, -1
    if session.transaction_mode and server.status == IDLE:
        session._set_text = data[offset + 6:data.index(0, offset + 6)]


def remember_setting(session: ClientSession, query: bytes) -> None:
    """The server confirmed this SET / RESET outside a transaction block: keep it with
    the client, for whichever server it gets next (frontend/settings.py)."""
    change = setting_change(query.decode(errors="replace"))
    if change is not None:
        apply_change(session.own_params(), session.startup_params, change)
        session.params_changed()

def linked_command(session: ClientSession, server: ServerConnection, data: bytes) -> bool:
    """A custom command while a server is held (pgcat sends it to PostgreSQL, #492):
    SHOW ones are answered, SET ones refused with 25001, never sent on. Only a chunk
    that is that one Query with nothing in flight is answered here (else the answer
    could overtake the server's); True when answered."""
    offset, session.scanner.command = session.scanner.command, -1
    if offset or server.pending > 0 or len(data) != 1 + int.from_bytes(data[1:5]):
        return False
    command = custom_command(data, 5, len(data))
    if command is None and session._rewriting:
        reply = deallocate_reply(session, data, 5, len(data), bytes([server.status]))
        if reply is not None:
            session.write(reply)
            return True
    if command is None:  # a SET or SHOW: a SET outside a transaction block is kept
        if session.transaction_mode and server.status == IDLE:
            session._set_text = data[5:-1]
        return False
    status = bytes([server.status])
    if command.kind.value.startswith("SET"):
        session.error(ProxyError(
            f"{command.kind.value} cannot run while this client holds a server connection "
            "(inside a transaction, or in session mode): send it before BEGIN or before "
            "the first query", sqlstate=ACTIVE_SQL_TRANSACTION))
        session.write(be.ReadyForQuery(status.decode()).encode())
    else:
        session.write(run_command(command, session.own_overrides(), session.router, status))
    return True


def _needed(pending: bytearray) -> int:
    """How many bytes the incomplete message at the start of ``pending`` has in all (0
    while its header is not whole)."""
    return 1 + int.from_bytes(pending[1:5]) if len(pending) >= 5 else 0


def _split_whole(buf: bytes) -> tuple[bytes, bytes]:
    """``buf`` cut after its last whole message (headers were checked by the scanner)."""
    pos, n = 0, len(buf)
    while pos + 5 <= n:
        end = pos + 1 + int.from_bytes(buf[pos + 1:pos + 5])
        if end > n:
            break
        pos = end
    return buf[:pos], buf[pos:]


def deallocate_reply(session: ClientSession, buf: bytes | bytearray, start: int, end: int,
                     status: bytes) -> bytes | None:
    """``DEALLOCATE name`` of a statement the client prepared with the protocol: the server
    only knows it by its shared name, so the client's name is forgotten here and the
    command answered as PostgreSQL would. None for anything else (DEALLOCATE ALL too)."""
    match = _DEALLOCATE.fullmatch(buf, start, end - 1)  # the Query text, NUL excluded
    if match is None:
        return None
    word = bytes(match.group(1))
    if word.upper() == b"ALL":
        return None
    name = word[1:-1].replace(b'""', b'"') if word[:1] == b'"' else word.lower()
    if session.prepared.named.pop(name + b"\0", None) is None:
        return None
    return be.CommandComplete("DEALLOCATE").encode() + be.ReadyForQuery(status.decode()).encode()
