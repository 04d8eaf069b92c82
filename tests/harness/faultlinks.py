"""One connection through the fault proxy (a "link"): pgcat-py's socket and the one to the
server, each direction pumped by a reader task and a writer task with a bounded queue
between them, so a delay is latency (chunks queued with their delivery time, in order)
and a stalled reader still backs up to the sender (TCP flow control).

What the pumps do to the bytes is read from a shared `Knobs` at every chunk, so the fault
proxy's controls apply to open links at once; where to break comes from the link's
faultrules.LinkFaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .faultrules import Cut, Direction, How, LinkFaults, Rule

CHUNK = 65536
QUEUE_CHUNKS = 16  # chunks in flight per direction: bounded, so backpressure still works
POLL_S = 0.005  # how often a stalled reader looks again
BANDWIDTH_SLICE_S = 0.02  # a capped direction writes this many seconds' worth at a time
_RESET = None  # queue item: the sender reset its connection (b"": it closed it)


@dataclass
class Knobs:
    """The fault proxy's settings, read by every link at every chunk."""

    rng: random.Random
    delay: dict[Direction, float] = field(
        default_factory=lambda: {"to_server": 0.0, "to_client": 0.0})
    jitter: float = 0.0  # up to this much more delay, drawn from rng
    rate: dict[Direction, float | None] = field(
        default_factory=lambda: {"to_server": None, "to_client": None})  # bytes/s
    stalled: frozenset[Direction] = frozenset()  # not read
    half_open: frozenset[Direction] = frozenset()  # read and discarded
    rules: tuple[Rule, ...] = ()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST instead of a FIN (SO_LINGER 0): what a crashed host's peer sees."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Pipe:
    """One direction of a link."""

    def __init__(self, direction: Direction, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(QUEUE_CHUNKS)
        self.deliver_at = 0.0  # of the last chunk queued: delivery times never go back
        self.free_at = 0.0  # bandwidth cap: when the next slice may go
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Link:
    """pgcat-py's connection (``client``) and the server's; ``on_end(link, how, reason)``
    is called once when it closes (reason None: a peer closed it, not a fault)."""

    def __init__(self, number: int, faults: LinkFaults, knobs: Knobs, client: Streams,
                 server: Streams, on_end: Callable[[Link, str | None], None]) -> None:
        self.number = number
        self.faults = faults
        self.knobs = knobs
        self.up = _Pipe("to_server", client[0], server[1])
        self.down = _Pipe("to_client", server[0], client[1])
        self.on_end = on_end
        self.closed = False
        self.tasks = [asyncio.create_task(coro) for coro in (
            self._read(self.up), self._read(self.down),
            self._write(self.up), self._write(self.down))]

    @property
    def server_port(self) -> int:
        """The local port of the server connection (pg_stat_activity.client_port)."""
        return int(self.up.writer.get_extra_info("sockname")[1])

    def close(self, how: How, reason: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.on_end(self, reason)
        for writer in (self.up.writer, self.down.writer):
            if how == "rst":
                reset(writer)
            else:
                writer.close()  # after what was written: a cut sends exactly its part
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    async def _unstalled(self, pipe: _Pipe) -> None:
        while pipe.direction in self.knobs.stalled:
            await asyncio.sleep(POLL_S)

    async def _read(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        knobs = self.knobs
        try:
            while True:
                await self._unstalled(pipe)
                data = await pipe.reader.read(CHUNK)
                await self._unstalled(pipe)  # what came in as it stalled is held too
                jitter = knobs.rng.uniform(0, knobs.jitter) if knobs.jitter else 0.0
                at = max(loop.time() + knobs.delay[pipe.direction] + jitter, pipe.deliver_at)
                pipe.deliver_at = at
                await pipe.queue.put((at, data))
                if not data:
                    return
        except OSError:  # a reset: pass it on as one
            await pipe.queue.put((0.0, _RESET))

    async def _write(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                at, data = await pipe.queue.get()
                if not data:
                    self.close("rst" if data is _RESET else "fin")
                    return
                if (wait := at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if pipe.direction in self.knobs.half_open:
                    continue
                cut = self._cut(pipe.direction, data)
                await self._send(pipe, data if cut is None else data[:cut.keep])
                if cut is not None:
                    await _flushed(pipe.writer)
                    self.close(cut.how, cut.reason)
                    return
        except OSError:
            self.close("rst")

    def _cut(self, direction: Direction, data: bytes) -> Cut | None:
        if direction == "to_server":
            return self.faults.to_server(data, self.knobs.rules)
        return self.faults.to_client(data, self.knobs.rules)

    async def _send(self, pipe: _Pipe, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        rate = self.knobs.rate[pipe.direction]
        step = max(1, len(data) if rate is None else int(rate * BANDWIDTH_SLICE_S))
        for pos in range(0, len(data), step):
            piece = data[pos:pos + step]
            if rate is not None:  # each slice starts when the ones before it fit the rate
                now = loop.time()
                starts_at = max(pipe.free_at, now)
                pipe.free_at = starts_at + len(piece) / rate
                await asyncio.sleep(starts_at - now)
            pipe.writer.write(piece)
            await pipe.writer.drain()


async def _flushed(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Wait until what was written left our buffer, so a RST cannot drop it here."""
    deadline = time.monotonic() + timeout
    while writer.transport.get_write_buffer_size() and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
