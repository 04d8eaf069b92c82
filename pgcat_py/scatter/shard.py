"""One shard's part of a cross-shard query: its server, the statement, its rows.

The server is checked out through Cluster.checkout, the path the relay takes (bans,
load balancing, replica fallback, read_your_writes), brought in line with the client's
settings, and given back at ReadyForQuery; a server left mid-answer is discarded.
The shard always gets the extended protocol (Parse, Bind, Describe, Execute, Sync), so a
simple Query and a client's Bind look the same to it; result rows are read one message at
a time, and a server whose unread bytes pile up stops being read (TCP backpressure) until
the merge needs its next row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..backend.params import sync_statements
from ..backend.server import ServerConnection
from ..pool.cluster import Cluster
from ..pool.server_pool import ServerPool
from ..protocol import backend as be
from ..protocol import frontend as fe
from ..protocol.errors import ProxyError, ServerError
from ..protocol.framing import (
    COMMAND_COMPLETE,
    DATA_ROW,
    ERROR_RESPONSE,
    READY_FOR_QUERY,
)

MAX_UNREAD = 256 * 1024  # bytes buffered from one shard before it is paused
Row = list[bytes | None]
_INT16, _INT32 = 2, 4


class _Checkout:
    """A CheckoutClient resolving a future; a server that arrives too late goes back."""

    def __init__(self) -> None:
        self.future: asyncio.Future[tuple[ServerPool, ServerConnection]] = \
            asyncio.get_running_loop().create_future()

    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None:
        if self.future.done():
            pool.release(server)
        else:
            self.future.set_result((pool, server))

    def checkout_failed(self, exc: ProxyError) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


async def checkout(cluster: Cluster, shard: int, role: str, fresh_since: float
                   ) -> tuple[ServerPool, ServerConnection]:
    waiter = _Checkout()
    attempt = cluster.checkout(waiter, shard, role, fresh_since)
    try:
        return await waiter.future
    except asyncio.CancelledError:
        if attempt is not None:
            attempt.cancel()
        raise


def row_values(payload: bytes) -> Row:
    """The column values of a DataRow payload (None for NULL)."""
    count = int.from_bytes(payload[:_INT16], "big")
    pos, values = _INT16, list[bytes | None]()
    for _ in range(count):
        length = int.from_bytes(payload[pos:pos + _INT32], "big", signed=True)
        pos += _INT32
        if length < 0:
            values.append(None)
        else:
            values.append(payload[pos:pos + length])
            pos += length
    return values


@dataclass(slots=True)
class ShardStream:
    """A shard's server while it answers; see the module docstring."""

    pool: ServerPool
    server: ServerConnection
    error: be.NoticeOrError | None = None
    at_ready: bool = True  # idle, or its ReadyForQuery read: the server is reusable
    replies: list[tuple[int, bytes]] = field(default_factory=list)

    async def sync(self, params: dict[str, str], key: tuple[tuple[str, str], ...]) -> None:
        server = self.server
        if server.synced_key != key:
            if sync_statements(params, server.applied, server.defaults):
                errors = await server.sync_parameters(params)
                if errors:
                    raise ProxyError(errors[0].text, sqlstate=errors[0].sqlstate)
            server.synced_key = key

    def send(self, messages: list[bytes]) -> None:
        self.at_ready = False
        self.server.write(b"".join(messages))

    async def read_until(self, stop: frozenset[int]) -> int:
        """Read (keeping the replies) until a message of a ``stop`` type, an error or the
        ReadyForQuery; returns the type of the last message read."""
        while True:
            msg_type, payload = await self._read()
            if msg_type == ERROR_RESPONSE:
                await self._failed(payload)
                return ERROR_RESPONSE
            if msg_type == READY_FOR_QUERY:
                self.at_ready = True
                return READY_FOR_QUERY
            if msg_type in (ord("N"), ord("S"), ord("A")):  # notice, parameter, notify
                continue
            self.replies.append((msg_type, payload))
            if msg_type in stop:
                return msg_type

    async def next_row(self) -> bytes | None:
        """The next DataRow payload, or None at the end of the rows (read to ReadyForQuery)."""
        while True:
            msg_type, payload = await self._read()
            if msg_type == DATA_ROW:
                return payload
            if msg_type == ERROR_RESPONSE:
                await self._failed(payload)
                raise self.client_error()
            if msg_type == COMMAND_COMPLETE:
                await self.finish()
                if self.error is not None:
                    raise self.client_error()
                return None
            if msg_type == READY_FOR_QUERY:
                self.at_ready = True
                return None

    async def finish(self) -> None:
        """Read to the ReadyForQuery (the rest of the answer is not needed)."""
        while not self.at_ready:
            msg_type, payload = await self._read()
            if msg_type == READY_FOR_QUERY:
                self.at_ready = True
            elif msg_type == ERROR_RESPONSE and self.error is None:
                self.error = _error(payload)

    def client_error(self) -> ProxyError:
        error = self.error
        assert error is not None
        return ServerError(error.text, sqlstate=error.sqlstate or None,
                           detail=error.fields.get("D"))

    async def _failed(self, payload: bytes) -> None:
        self.error = _error(payload)
        await self.finish()

    async def _read(self) -> tuple[int, bytes]:
        server = self.server
        message = await server.read_message()
        if len(server._rbuf) > MAX_UNREAD:  # let TCP hold the rest until we need it
            server.pause_reading()
        return message

    def give_back(self) -> None:
        """Check the server in if it finished its answer, else close it."""
        if self.at_ready and not self.server.broken and not self.server.is_closed:
            self.pool.release(self.server)
        else:
            self.pool.discard(self.server)


def _error(payload: bytes) -> be.NoticeOrError:
    error = be.decode_backend(ERROR_RESPONSE, payload)
    assert isinstance(error, be.NoticeOrError)
    return error


def statement_messages(sql: str, param_types: tuple[int, ...], params: tuple[bytes | None, ...],
                       param_formats: tuple[int, ...], result_formats: tuple[int, ...],
                       describe_original: str | None) -> list[bytes]:
    """What one shard is sent: optionally Parse + Describe of the client's own statement
    (for the exact RowDescription and ParameterDescription PostgreSQL gives it), then the
    shard statement, run to completion."""
    messages: list[bytes] = []
    if describe_original is not None:
        messages += [fe.Parse("", describe_original, param_types).encode(),
                     fe.Describe("S", "").encode()]
    messages += [fe.Parse("", sql, param_types).encode(),
                 fe.Bind("", "", param_formats, params, result_formats).encode(),
                 fe.Describe("P", "").encode(), fe.Execute("", 0).encode(),
                 fe.Sync().encode()]
    return messages
