"""What a server connection knows of the named statements the proxy prepared on it.

The frontend's statement mapping (frontend/statements.py) decides what to send; the server
connection keeps which of the pool's shared statements it has, least recently used first,
and the replies owed for each Parse and Close sent, so it can drop the ones the client never
asked for. This module is that shared vocabulary.
"""

from __future__ import annotations

import itertools
import struct
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

from ..protocol.framing import ERROR_RESPONSE, READY_FOR_QUERY, unpack_header

MAX_REGISTERED: Final = 100_000  # distinct statements a pool names before it starts over
DEFAULT_CACHE_SIZE: Final = 500  # statements per server connection when the pool says 0
# What to do with the reply to a Parse or Close, in the order they were sent; a SYNC_POINT
# stands for a ReadyForQuery (Sync or Query), DROP_READY for one of a Sync of ours.
KEEP_PARSE: Final = 0
DROP_PARSE: Final = 1
KEEP_CLOSE: Final = 2
DROP_CLOSE: Final = 3
SYNC_POINT: Final = 4
DROP_READY: Final = 5

Expectation = tuple[int, bytes]  # (KEEP_PARSE ..., the server statement name or b"")
_LENGTH: Final = struct.Struct("!I")
PARSE_COMPLETE: Final = ord("1")
CLOSE_COMPLETE: Final = ord("3")
# One numbering for every registry of the process: a reload that rebuilds a pool gives it a
# new registry, and its clients keep statements named by the old one; had the new one
# started at 1 again, pgcatpy_3 of an old client would be bound on a server where the new
# registry's pgcatpy_3 (another query or other parameter types) is prepared (22P03, or
# another query's rows). Found by benchmarks/soak.py.
_NUMBERS: Final = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Statement:
    """One query text + parameter types, and its server-side name."""

    name: bytes  # NUL-terminated, e.g. b"pgcatpy_7\0"
    parse: bytes  # the whole Parse message under that name, ready to send


class StatementRegistry:
    """Server-side names of a pool's statements, shared by all its clients."""

    def __init__(self) -> None:
        self._names: dict[bytes, Statement] = {}  # query + types -> statement
        self._by_name: dict[bytes, Statement] = {}  # server name -> statement

    def named(self, name: bytes) -> Statement | None:
        """The statement a server knows as ``name`` (NUL included)."""
        return self._by_name.get(name)

    def statement(self, body: bytes) -> Statement:
        """The statement of a Parse whose payload after the name is ``body``."""
        found = self._names.get(body)
        if found is None:
            if len(self._names) >= MAX_REGISTERED:
                self._names.clear()  # bounded memory; clients keep the ones they hold
                self._by_name.clear()
            name = f"pgcatpy_{next(_NUMBERS)}\0".encode()
            payload = name + body
            found = Statement(name, b"P" + _LENGTH.pack(len(payload) + 4) + payload)
            self._names[body] = found
            self._by_name[name] = found
        return found


class ServerStatements:
    """The statements prepared on one server connection, least recently used first."""

    __slots__ = ("capacity", "evictions", "hits", "misses", "names")

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity or DEFAULT_CACHE_SIZE
        self.names: OrderedDict[bytes, None] = OrderedDict()
        self.hits = self.misses = self.evictions = 0  # SHOW SERVERS prepare_cache_*

    def set_capacity(self, capacity: int) -> None:
        """prepared_statements_cache_size; 0 means our default."""
        self.capacity = capacity or DEFAULT_CACHE_SIZE

    def clear(self) -> None:
        self.names.clear()


class ExpectedReplies:
    """The replies a server connection owes for the Parse and Close messages sent to it,
    in order, with SYNC_POINTs for the ReadyForQuery messages between them: which to pass
    on, which to drop (the client never asked for them). Empty in the steady state."""

    __slots__ = ("_queue", "_statements")

    def __init__(self, statements: ServerStatements) -> None:
        self._queue: deque[Expectation] = deque()
        self._statements = statements

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, notes: list[Expectation], pending: int) -> None:
        """``notes`` for messages about to be sent; ``pending`` ReadyForQuery messages are
        still owed for earlier ones, and come first."""
        if not notes:
            return
        if not self._queue and pending > 0:
            self._queue.extend([(SYNC_POINT, b"")] * pending)
        self._queue.extend(notes)

    def push_front(self, notes: list[Expectation]) -> None:
        """Replies owed before all those noted so far (a batch sent again, first)."""
        self._queue.extendleft(reversed(notes))

    def filter(self, data: bytes, pos: int, end: int) -> bytes:
        """Whole messages ``data[pos:end]`` without the replies noted to be dropped."""
        queue = self._queue
        kept: list[bytes] = []
        keep_from = pos
        while pos < end and queue:
            msg_type, length = unpack_header(data, pos)
            after = pos + 1 + length
            if msg_type in (PARSE_COMPLETE, CLOSE_COMPLETE):
                kind = queue[0][0]
                if kind == (KEEP_PARSE if msg_type == PARSE_COMPLETE else KEEP_CLOSE):
                    queue.popleft()
                elif kind == (DROP_PARSE if msg_type == PARSE_COMPLETE else DROP_CLOSE):
                    queue.popleft()
                    kept.append(data[keep_from:pos])
                    keep_from = after
            elif msg_type == ERROR_RESPONSE:
                self._void(stop_at_sync=True)  # the server skips the rest of the batch
            elif msg_type == READY_FOR_QUERY and self._void(False) == DROP_READY:
                kept.append(data[keep_from:pos])  # the answer to a Sync of ours
                keep_from = after
            pos = after
        kept.append(data[keep_from:end])
        return b"".join(kept)

    def _void(self, stop_at_sync: bool) -> int:
        """Forget the replies the server will not send: those up to the next sync point
        (after an ErrorResponse), or through it (at ReadyForQuery). A Parse that never ran
        prepared nothing; a Close that never ran closed nothing. Returns the kind of that
        sync point (-1 if none is noted)."""
        queue, names = self._queue, self._statements.names
        while queue:
            kind, name = queue[0]
            if kind in (SYNC_POINT, DROP_READY):
                if not stop_at_sync:
                    queue.popleft()
                return kind
            queue.popleft()
            if name and kind in (KEEP_PARSE, DROP_PARSE):
                names.pop(name, None)
            elif name and kind == DROP_CLOSE:
                names[name] = None
                names.move_to_end(name, last=False)  # still there: first to go next time
        return -1
