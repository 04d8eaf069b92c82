"""What a server connection knows of the named statements the proxy prepared on it.

The frontend's statement mapping (frontend/statements.py) decides what to send; the server
connection keeps which of the pool's shared statements it has, least recently used first,
and the replies owed for each Parse and Close sent, so it can drop the ones the client never
asked for. This module is that shared vocabulary.
"""

from __future__ import annotations

import itertools
import struct
from collections import OrderedDict
from dataclasses import dataclass

MAX_REGISTERED = 100_000  # distinct statements a pool names before it starts over
DEFAULT_CACHE_SIZE = 500  # statements per server connection when the pool says 0
# What to do with the reply to a Parse or Close, in the order they were sent; a SYNC_POINT
# stands for a ReadyForQuery (Sync or Query).
KEEP_PARSE, DROP_PARSE, KEEP_CLOSE, DROP_CLOSE, SYNC_POINT = range(5)

Expectation = tuple[int, bytes]  # (KEEP_PARSE ..., the server statement name or b"")
_LENGTH = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Statement:
    """One query text + parameter types, and its server-side name."""

    name: bytes  # NUL-terminated, e.g. b"pgcatpy_7\0"
    parse: bytes  # the whole Parse message under that name, ready to send


class StatementRegistry:
    """Server-side names of a pool's statements, shared by all its clients."""

    def __init__(self) -> None:
        self._names: dict[bytes, Statement] = {}  # query + types -> statement
        self._numbers = itertools.count(1)

    def statement(self, body: bytes) -> Statement:
        """The statement of a Parse whose payload after the name is ``body``."""
        found = self._names.get(body)
        if found is None:
            if len(self._names) >= MAX_REGISTERED:
                self._names.clear()  # bounded memory; clients keep the ones they hold
            name = f"pgcatpy_{next(self._numbers)}\0".encode()
            payload = name + body
            found = Statement(name, b"P" + _LENGTH.pack(len(payload) + 4) + payload)
            self._names[body] = found
        return found


class ServerStatements:
    """The statements prepared on one server connection, least recently used first."""

    __slots__ = ("capacity", "names")

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity or DEFAULT_CACHE_SIZE
        self.names: OrderedDict[bytes, None] = OrderedDict()

    def clear(self) -> None:
        self.names.clear()
