"""The control channel between worker processes: one Unix socket per worker in the
supervisor's runtime directory, one JSON request line and one JSON answer line per
connection. Used off the hot path only: a CancelRequest for a client of another worker,
a ban seen by one worker, an admin command that changes things, and the SHOW views and
metrics that the admin console and the exporter add up over all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from .layout import Worker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

ASK_TIMEOUT = 5.0  # seconds a peer has to answer (admin commands may take longer)
MAX_LINE = 256 * 1024 * 1024  # an answer holds SHOW CLIENTS of every client of a worker
Request = dict[str, Any]


class Peers:
    """This worker's end of the channel: answers requests with ``handler`` and asks the
    other workers."""

    def __init__(self, worker: Worker, handler: Callable[[Request], Awaitable[Request]]) -> None:
        self.worker = worker
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def others(self) -> list[int]:
        return [i for i in range(self.worker.count) if i != self.worker.index]

    async def start(self) -> None:
        path = self.worker.socket_path(self.worker.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a worker that died in this slot
        self._server = await asyncio.start_unix_server(self._serve, path, limit=MAX_LINE)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            answer = await self._handler(request)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except Exception:  # a bad request costs its connection, never the worker
            log.exception("control request failed")
        finally:
            writer.close()

    async def ask(self, index: int, request: Request, timeout: float | None = ASK_TIMEOUT
                  ) -> Request | None:
        """Worker ``index``'s answer, or None when it cannot be reached in time."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(
                    self.worker.socket_path(index), limit=MAX_LINE)
                try:
                    writer.write(json.dumps(request).encode() + b"\n")
                    line = await reader.readline()
                finally:
                    writer.close()
            answer: Request = json.loads(line)
            return answer
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("worker %d did not answer %s: %s", index, request.get("op"),
                        exc or type(exc).__name__)
            return None

    async def ask_all(self, request: Request, timeout: float | None = ASK_TIMEOUT
                      ) -> list[Request]:
        """The other workers' answers (those that gave one), asked concurrently."""
        answers = await asyncio.gather(*(self.ask(i, request, timeout) for i in self.others))
        return [a for a in answers if a is not None]

    def tell(self, index: int, request: Request) -> None:
        """Send without waiting for the answer."""
        self._spawn(self.ask(index, request))

    def tell_all(self, request: Request) -> None:
        self._spawn(self.ask_all(request))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
