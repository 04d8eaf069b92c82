"""Cut a PostgreSQL byte stream into messages by their 5-byte header, without decoding payloads.

Every regular message is ``type (1 byte) + length (int32, counts itself) + payload``. The relay
forwards whole chunks as they arrive (one write per chunk) and only needs to *see* a handful of
message types; these scanners walk the headers of a chunk, carry a partial header or a partial
interesting message over to the next chunk, and report what matters. They never copy a payload
the proxy does not act on (DataRows are skipped, not sliced).

Limits follow PostgreSQL's backend (src/backend/tcop/postgres.c, SocketBackend): most
frontend messages may be at most PQ_SMALL_MESSAGE_LIMIT bytes, a few (Query, Parse, Bind,
FunctionCall, CopyData) up to PQ_LARGE_MESSAGE_LIMIT. As in pq_getmessage (pqcomm.c), the
limit applies to the declared length, which counts its own four bytes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Final

from .casefold import i64, mentions_state_words
from .errors import ProtocolViolation

HEADER_SIZE: Final = 5
_UNPACK_HEADER: Final[Callable[[bytes | bytearray | memoryview, int], tuple[int, int]]] = (
    struct.Struct("!BI").unpack_from)
_COMPILED: Final = not __file__.endswith(".py")  # this module was compiled by mypyc


def unpack_header(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(type, length) of the header at ``data[pos:]``. Compiled, a bytes chunk (what the
    relay's scanners walk) is read byte by byte in C, five times cheaper than struct's
    argument parsing and tuple; pure Python, struct is the faster."""
    if _COMPILED and isinstance(data, bytes):
        at: i64 = pos  # machine integers: no tagged-int shifts and checks
        if at < 0 or at + HEADER_SIZE > len(data):
            raise IndexError("message header out of range")
        b1: i64 = data[at + 1]
        b2: i64 = data[at + 2]
        b3: i64 = data[at + 3]
        b4: i64 = data[at + 4]
        return data[at], (b1 << 24) | (b2 << 16) | (b3 << 8) | b4
    return _UNPACK_HEADER(data, pos)

# src/include/libpq/pqcomm.h and postgres.c
PQ_SMALL_MESSAGE_LIMIT: Final = 10000
PQ_LARGE_MESSAGE_LIMIT: Final = 0x3FFFFFFF - 1  # MaxAllocSize - 1
# Authentication tokens (PasswordMessage, SASL): PG_MAX_AUTH_TOKEN_LENGTH in auth.c
PG_MAX_AUTH_TOKEN_LENGTH: Final = 65535

# Frontend message types (protocol-message-formats.html), as ints for cheap lookups.
QUERY: Final = ord("Q")
PARSE: Final = ord("P")
BIND: Final = ord("B")
DESCRIBE: Final = ord("D")
EXECUTE: Final = ord("E")
SYNC: Final = ord("S")
FLUSH: Final = ord("H")
CLOSE: Final = ord("C")
FUNCTION_CALL: Final = ord("F")
TERMINATE: Final = ord("X")
COPY_DATA: Final = ord("d")
COPY_DONE: Final = ord("c")
COPY_FAIL: Final = ord("f")
PASSWORD: Final = ord("p")

# Backend message types.
READY_FOR_QUERY: Final = ord("Z")
ERROR_RESPONSE: Final = ord("E")
NOTICE_RESPONSE: Final = ord("N")
PARAMETER_STATUS: Final = ord("S")
COMMAND_COMPLETE: Final = ord("C")
DATA_ROW: Final = ord("D")
COPY_IN_RESPONSE: Final = ord("G")
COPY_OUT_RESPONSE: Final = ord("H")
COPY_BOTH_RESPONSE: Final = ord("W")
BACKEND_KEY_DATA: Final = ord("K")
AUTHENTICATION: Final = ord("R")
IDLE: Final = ord("I")  # ReadyForQuery status outside a transaction block


def _frontend_limits() -> list[int]:
    """Per-type maximum message length; 0 means "not a valid frontend type"."""
    limits = [0] * 256
    for t in b"CDEHScfX":
        limits[t] = PQ_SMALL_MESSAGE_LIMIT
    for t in b"QPBFd":
        limits[t] = PQ_LARGE_MESSAGE_LIMIT
    return limits


FRONTEND_LIMITS: Final = _frontend_limits()

# What the frontend scanner reports for each type: a sync point (the server will answer it
# with one ReadyForQuery), the start of an unsynced extended-protocol batch, or neither.
_KIND_OTHER: Final = 0
_KIND_SYNC: Final = 1
_KIND_BATCH: Final = 2
_KIND_TERMINATE: Final = 3
_FRONTEND_KIND: Final = [_KIND_OTHER] * 256
for _t in b"QSF":
    _FRONTEND_KIND[_t] = _KIND_SYNC
for _t in b"PBDECH":
    _FRONTEND_KIND[_t] = _KIND_BATCH
_FRONTEND_KIND[TERMINATE] = _KIND_TERMINATE


# SET, SHOW (pgcat's custom commands, and SETs to remember), RESET and DEALLOCATE, by their
# first and third letters: SELECT, ROLLBACK, RELEASE and DELETE have an L there.
_COMMAND_FIRST: Final = frozenset(b"SsRrDd")
_SET_FIRST: Final = frozenset(b"SsRr")  # SET, RESET: the first and third letters
_SET_THIRD: Final = frozenset(b"TtSs")
_COMMAND_THIRD: Final = frozenset(b"TtOoSsAa")


def check_frontend_header(msg_type: int, length: int) -> None:
    """Raise ProtocolViolation for an unknown type or a length PostgreSQL would refuse."""
    limit = FRONTEND_LIMITS[msg_type]
    if limit == 0:
        raise ProtocolViolation(f"invalid frontend message type {msg_type}")
    if length < 4 or length > limit:
        raise ProtocolViolation(f"invalid message length {length} for message type {msg_type}")


def check_partial_header(head: bytes) -> None:
    """Raise ProtocolViolation when the first bytes of a header (type, part of the length)
    already rule out every valid message."""
    limit = FRONTEND_LIMITS[head[0]]
    if limit == 0:
        raise ProtocolViolation(f"invalid frontend message type {head[0]}")
    if int.from_bytes(head[1:].ljust(4, b"\0"), "big") > limit:
        raise ProtocolViolation(f"invalid message length for message type {head[0]}")


def split_messages(data: bytes | bytearray | memoryview, start: int = 0
                   ) -> tuple[list[tuple[int, bytes]], int]:
    """Complete messages in ``data[start:]`` as ``(type, payload)`` and the offset after them.

    The control-plane decoder: handshakes, health checks, admin. Trailing partial bytes are
    left for the caller to keep. A declared length below 4 raises ProtocolViolation.
    """
    out: list[tuple[int, bytes]] = []
    pos, n = start, len(data)
    while pos + HEADER_SIZE <= n:
        msg_type, length = unpack_header(data, pos)
        if length < 4:
            raise ProtocolViolation(f"invalid message length {length}")
        end = pos + 1 + length
        if end > n:
            break
        out.append((msg_type, bytes(data[pos + HEADER_SIZE:end])))
        pos = end
    return out, pos


def first_message(data: bytes | bytearray) -> tuple[int, int] | None:
    """``(type, end offset)`` of the first complete message in ``data``, or None.

    Validates the header as a frontend message, so garbage is rejected as soon as its
    header arrives, before its declared body is awaited.
    """
    if len(data) < HEADER_SIZE:
        return None
    msg_type, length = unpack_header(data, 0)
    check_frontend_header(msg_type, length)
    end = 1 + length
    return (msg_type, end) if end <= len(data) else None


# Bytes of a C string read one by one before bytes.index takes over: statement and portal
# names are short, and a method call's argument parsing costs what about 60 bytes do in C.
_SHORT_CSTRING: Final = 64


def cstring_end(data: bytes | bytearray, start: int, end: int) -> int:
    """Offset of the NUL ending the C string that starts at ``start``, before ``end``;
    ValueError if there is none (as bytes.index)."""
    if _COMPILED and isinstance(data, bytes):
        stop = min(end, start + _SHORT_CSTRING)
        while start < stop:
            if data[start] == 0:
                return start
            start += 1
    return data.index(0, start, end)


def decode_text(data: bytes | bytearray, start: int, stop: int) -> str:
    """``data[start:stop]`` decoded as UTF-8 (UnicodeDecodeError if it is not)."""
    if isinstance(data, bytes):
        return data[start:stop].decode()  # compiled: slice and decode of bytes are C calls
    return data[start:stop].decode()


class FrontendScanner:
    """Walks client->server chunks on the relay path.

    ``feed`` returns how many sync points (Query, Sync, FunctionCall: each answered by one
    ReadyForQuery) the chunk completes, and where a Terminate starts (-1 if none). Afterwards
    ``in_batch`` says whether extended-protocol messages have been sent since the last sync
    point: a server must not be released while it holds such an unsynced batch.
    """

    __slots__ = ("_head", "_skip", "command", "creates_temp", "entry_head", "entry_skip",
                 "in_batch", "named_parse", "session_lock", "set_parse", "unnamed_parse",
                 "voidable", "voiding")

    def __init__(self) -> None:
        self._skip = 0          # payload bytes of the current message still to come
        self._head = b""        # a header split across chunks
        self.in_batch = False
        # Queries and FunctionCalls sent behind extended-protocol messages with no Sync in
        # between: if one of those messages fails, PostgreSQL skips them up to the next
        # Sync, and their ReadyForQuery never comes. Cleared by the owner when the server
        # has answered everything. ``voiding``: no Sync has come since the last of them.
        self.voidable = 0
        self.voiding = False
        # A Parse of a named statement went by: the server session now holds a prepared
        # statement. Conservative: a Parse whose name byte is not in the chunk counts.
        self.named_parse = False
        # SQL text naming a session-level advisory lock function went by: the lock outlives
        # the transaction (its CommandComplete is only "SELECT 1"), so the server session
        # must stay with this client and be discarded after it. Cleared by the owner.
        self.session_lock = False
        # SQL text that may create a temporary relation went by (CREATE TEMP TABLE / VIEW /
        # SEQUENCE, CREATE TEMP TABLE ... AS, SELECT ... INTO TEMP): session state, whatever
        # tag completes it ("SELECT 3" for the last two), however many statements later the
        # transaction ends. Cleared by the owner at the transaction's end.
        self.creates_temp = False
        # Offset in the last chunk of a Query that may be one of pgcat's custom commands
        # (SET ... / SHOW ...: the proxy must answer those itself), or -1. Set by ``feed``.
        self.command = -1
        # Offset in the last chunk of a whole Parse of the unnamed statement that no Bind
        # followed in that chunk (pgx's describe_exec: the Bind comes in the next
        # transaction, maybe on another server), or -1. Cleared by the owner.
        self.unnamed_parse = -1
        # Offset in the last chunk of a whole Parse of the unnamed statement whose text may
        # be a SET or RESET (pgjdbc sends them so), or -1. Cleared by the owner.
        self.set_parse = -1
        # Where the last chunk stood at its start: bytes of a header carried over, and
        # bytes of a message body still to come (see first_message_offset).
        self.entry_head = b""
        self.entry_skip = 0

    def at_rest(self) -> bool:
        """Every field as a new scanner has it: this one may be dropped and made again."""
        return (self._skip == 0 and not self._head and not self.in_batch and not self.voidable
                and not self.voiding and not self.named_parse and not self.session_lock
                and not self.creates_temp and self.command == -1 and self.unnamed_parse == -1
                and self.set_parse == -1 and not self.entry_head and self.entry_skip == 0)

    def feed(self, data: bytes) -> tuple[int, int]:
        """Scan one chunk; returns ``(sync_points, terminate_offset)``."""
        base = 0
        self.entry_skip = self._skip
        self.entry_head = self._head
        if self._head:
            data = self._head + data
            base = len(self._head)
            self._head = b""
        pos, n, syncs, sql = self._skip, len(data), 0, False
        while pos < n:
            if pos + HEADER_SIZE > n:
                # The relay forwards this part now: refuse what is already invalid.
                check_partial_header(data[pos:])
                self._head = data[pos:]
                self._skip = 0
                if data[pos] == PARSE:  # its name is not here yet: maybe a named one
                    self.named_parse = True
                break
            msg_type, length = unpack_header(data, pos)
            check_frontend_header(msg_type, length)
            kind = _FRONTEND_KIND[msg_type]
            if kind == _KIND_SYNC:
                syncs += 1
                if msg_type == SYNC:
                    self.voiding = False
                elif self.in_batch or self.voiding:
                    self.voiding = True
                    self.voidable += 1
                self.in_batch = False
                if msg_type == QUERY:
                    sql = True
                    if (pos + 8 <= n and pos >= base and data[pos + 5] in _COMMAND_FIRST
                            and data[pos + 7] in _COMMAND_THIRD):
                        self.command = pos - base
            elif kind == _KIND_BATCH:
                self.in_batch = True
                if msg_type == PARSE:
                    sql = True
                    if pos + HEADER_SIZE >= n or data[pos + HEADER_SIZE]:
                        self.named_parse = True
                    elif pos >= base and pos + 1 + length <= n:
                        self.unnamed_parse = pos - base
                        if (pos + 9 <= n and data[pos + 6] in _SET_FIRST
                                and data[pos + 8] in _SET_THIRD):
                            self.set_parse = pos - base  # SET / RESET by Parse
                elif msg_type == BIND:
                    self.unnamed_parse = -1
            elif kind == _KIND_TERMINATE:
                # Everything before the Terminate is complete. If its own header began in
                # the previous chunk, part of it already went out: not at a boundary then.
                self._skip = 0
                self._head = b"" if pos >= base else b"X"
                return syncs, max(pos - base, 0)
            pos += 1 + length
        else:
            self._skip = pos - n
        if sql:  # only chunks that carry SQL text are searched (never bulk COPY data)
            self._note_session_state(data)
        return syncs, -1

    def _note_session_state(self, data: bytes) -> None:
        """Flag SQL that leaves state in the server session: a session advisory lock, a
        temporary relation. Lowered once (SQL names are case-insensitive), searched with
        find, not `in`: `bytes in bytes` first tries the needle as an int, raising (and
        formatting) a TypeError it then clears, which cost more than the search itself.
        Compiled, a pass of machine integers first rules out the chunks that name neither
        word (protocol/casefold.py)."""
        if _COMPILED and not mentions_state_words(data):
            return
        lowered = data.lower()
        if not self.session_lock and mentions_session_lock(lowered):
            self.session_lock = True
        if not self.creates_temp and lowered.find(b"temp") >= 0:
            self.creates_temp = _TEMP_CREATION.search(lowered) is not None

    @property
    def at_boundary(self) -> bool:
        """True when no message is half-received."""
        return self._skip == 0 and not self._head

    def first_message_offset(self, chunk: bytes) -> int:
        """Where the first message that starts in the last chunk fed (``chunk``) begins:
        the bytes before it finish a message that began earlier."""
        head = self.entry_head
        if head:
            _, length = unpack_header(head + chunk[:HEADER_SIZE - len(head)], 0)
            return min(len(chunk), 1 + int(length) - len(head))
        return min(len(chunk), self.entry_skip)


# Statements that make a temporary relation, in lower case: CREATE [OR REPLACE] [GLOBAL |
# LOCAL] TEMP[ORARY] ... and SELECT ... INTO [GLOBAL | LOCAL] TEMP[ORARY] ... (not "attempts",
# "template" or "temp_x": the word alone). No word boundary before CREATE or INTO: a message
# header's length byte may be a letter or digit right before it. A comment between the
# words hides it.
_TEMP_CREATION: Final = re.compile(
    rb"(?:create\s+(?:or\s+replace\s+)?|into\s+)(?:(?:global|local)\s+)?temp(?:orary)?\b")


def mentions_session_lock(lowered: bytes) -> bool:
    """Does this SQL text (in lower case) call a session-level advisory lock function
    (pg_advisory_lock, pg_try_advisory_lock_shared, ...)? Not the transaction-level ones
    (pg_advisory_xact_lock: they end with the transaction) nor the unlocks (asyncpg's pool
    runs pg_advisory_unlock_all() on every release). A name split across two reads is
    missed (the SQL would have to straddle a TCP read boundary: only very long statements
    do)."""
    return lowered.find(b"advisory_lock") >= 0


# CommandComplete tags that leave state in the server session (pgcat's cleanup flags,
# widened): what a check-in must undo, what pins a client to its server in transaction mode
# and what releases such a pin. Bits of BackendScanner.session_tags.
TAG_SET: Final = 1          # SET / RESET: RESET ALL
TAG_PREPARE: Final = 2      # PREPARE: DEALLOCATE ALL (and a pin)
TAG_DISCARD: Final = 4      # state only DISCARD ALL undoes (set with the two below)
TAG_DEALLOCATED: Final = 8  # DEALLOCATE ALL / DISCARD ALL: every prepared statement is gone
TAG_CREATED: Final = 16     # a table was created: session state only if it was a temporary one
TAG_LISTEN: Final = 32      # LISTEN (a pin)
TAG_CURSOR: Final = 64      # DECLARE CURSOR (a pin: it may be WITH HOLD)
TAG_UNLISTEN: Final = 128   # UNLISTEN (UNLISTEN * releases the LISTEN pin)
TAG_CLOSE_ALL: Final = 256  # CLOSE ALL (releases the cursor pin)
TAG_DISCARD_TEMP: Final = 512   # DISCARD TEMP (releases the temporary-table pin)
TAG_DISCARD_ALL: Final = 1024   # DISCARD ALL (releases every pin)
# The tags that leave something for a check-in to undo (the others only inform pins).
DIRTY_TAGS: Final = TAG_SET | TAG_PREPARE | TAG_DISCARD | TAG_CREATED
SESSION_TAGS: Final = {b"SET": TAG_SET, b"RESET": TAG_SET, b"PREPARE": TAG_PREPARE,
                b"DEALLOCATE ALL": TAG_DEALLOCATED,
                b"DISCARD ALL": TAG_DEALLOCATED | TAG_DISCARD_ALL,
                b"LISTEN": TAG_LISTEN | TAG_DISCARD, b"UNLISTEN": TAG_UNLISTEN,
                b"DECLARE CURSOR": TAG_CURSOR | TAG_DISCARD, b"CLOSE CURSOR ALL": TAG_CLOSE_ALL,
                b"DISCARD TEMP": TAG_DISCARD_TEMP,
                b"CREATE TABLE": TAG_CREATED}

_RFQ: Final = 1
_COMPLETE: Final = 2
_COPY: Final = 3
_OTHER: Final = 4
_BACKEND_KIND: Final = [0] * 256
_BACKEND_KIND[READY_FOR_QUERY] = _RFQ
_BACKEND_KIND[COMMAND_COMPLETE] = _COMPLETE
for _t in b"GHW":
    _BACKEND_KIND[_t] = _COPY
for _t in b"ESK":
    _BACKEND_KIND[_t] = _OTHER


class BackendScanner:
    """Walks server->client chunks on the relay path and keeps what the proxy acts on.

    ``feed`` returns how many ReadyForQuery messages the chunk completes and leaves in
    attributes what the proxy needs: the last transaction ``status`` ('I', 'T', 'E'),
    whether a COPY is under way, the session-dirtying CommandComplete tags seen
    (``session_tags``, cleared by the owner) and how many commands completed. The rarer
    messages the proxy decodes (ErrorResponse, ParameterStatus, BackendKeyData) are kept
    whole in ``others``. Everything else (DataRow, RowDescription, ...) is skipped by its
    length; no object is made for it. Messages straddling chunks are handled, and
    ``partial`` says how many bytes of an incomplete last message have been fed so far
    (over all chunks), so the relay can hold them back until the message is whole.
    """

    __slots__ = ("_carry", "_skip", "commands", "in_copy", "others", "partial",
                 "session_tags", "status")

    def __init__(self) -> None:
        self._skip = 0
        self._carry = b""       # a partial header, or a partial message we must see whole
        self.partial = 0
        self.status = IDLE
        self.in_copy = False
        self.session_tags = 0
        self.commands = 0
        self.others: list[tuple[int, bytes]] = []

    def feed(self, data: bytes) -> int:
        """Scan one chunk; returns the number of ReadyForQuery messages it completes."""
        if self._carry:
            data = self._carry + data
            self._carry = b""
        kinds = _BACKEND_KIND
        ready = 0
        pos, n = self._skip, len(data)
        # Where the message being walked started; -1: in an earlier chunk (a skipped body).
        start = -1 if pos else 0
        while pos < n:
            start = pos
            if pos + HEADER_SIZE > n:
                self._carry = data[pos:]
                self._skip = 0
                self.partial = n - pos
                return ready
            msg_type, length = unpack_header(data, pos)
            if length < 4:
                raise ProtocolViolation(f"server sent invalid message length {length}")
            end = pos + 1 + length
            kind = kinds[msg_type]
            if kind:
                if end > n:
                    self._carry = data[pos:]
                    self._skip = 0
                    self.partial = n - pos
                    return ready
                if kind == _RFQ:
                    if length != 5:  # the status byte below would be another message's
                        raise ProtocolViolation(f"server sent ReadyForQuery of length {length}")
                    ready += 1
                    self.status = data[pos + HEADER_SIZE]
                    self.in_copy = False
                elif kind == _COMPLETE:
                    self.commands += 1
                    # A tag ending in a row count (SELECT 1, INSERT 0 1) is none of them:
                    # no slice to make and hash for the common case. An empty or missing
                    # tag is none either (and compiled, its slice would run backwards).
                    if length > 5 and not 0x30 <= data[end - 2] <= 0x39:
                        self.session_tags |= SESSION_TAGS.get(data[pos + HEADER_SIZE:end - 1], 0)
                elif kind == _COPY:
                    self.in_copy = True
                else:
                    self.others.append((msg_type, data[pos + HEADER_SIZE:end]))
            pos = end
        self._skip = pos - n
        if pos == n:
            self.partial = 0
        elif start >= 0:
            self.partial = n - start
        else:  # a body that began in an earlier chunk and still goes on
            self.partial += n
        return ready

    @property
    def at_boundary(self) -> bool:
        """True when no message is half-received."""
        return self._skip == 0 and not self._carry
