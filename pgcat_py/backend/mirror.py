"""Query mirroring (pgcat's `mirrors`): every byte a client sends to a server connection is
also sent, fire-and-forget, to a connection of its own to each mirror server.

A mirror never slows or fails the client: bytes wait in a bounded queue (dropped, counted
and logged when it is full, as pgcat drops them), a dead or slow mirror only loses its copy,
and the mirror's answers are read and thrown away. Each real server connection has its own
mirror connections, so a mirror sees each client's statements in order. Like pgcat's, it is
best effort: the proxy's own queries (parameter sync, reset) are not mirrored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import ServerConnection, ServerTarget

log = logging.getLogger(__name__)
QUEUE_CHUNKS = 1000  # chunks a mirror may fall behind before its copies are dropped
RECONNECT_DELAY = 5.0  # seconds between attempts to reach a mirror that failed
LOG_DROPS_EVERY = 1000


class _Discard(asyncio.Protocol):
    """The mirror's answers: read (so it never blocks on a full socket) and dropped."""

    def __init__(self) -> None:
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class Mirror:
    """One mirror of one server connection."""

    def __init__(self, target: ServerTarget, connect_timeout: float) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.dropped = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_CHUNKS)
        self._task: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % LOG_DROPS_EVERY == 1:
                log.warning("mirror %s is behind: %d chunks dropped so far", self.target.name,
                            self.dropped)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        from .server import open_server

        while True:
            try:
                conn = await open_server(self.target, self.connect_timeout)
            except Exception as exc:  # whatever it is, a mirror's failure is only logged
                log.warning("mirror %s unreachable: %s", self.target.name, exc)
                self._drain()
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            await self._feed(conn)

    async def _feed(self, conn: ServerConnection) -> None:
        sink = _Discard()
        conn.transport.set_protocol(sink)
        try:
            while not sink.lost.done():
                getter = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait({getter, sink.lost},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                conn.transport.write(getter.result())
        finally:
            with contextlib.suppress(Exception):
                conn.transport.close()
        log.warning("mirror %s connection lost", self.target.name)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1
