"""A fault-injecting TCP proxy for tests: put it between pgcat-py and a PostgreSQL server.

It forwards bytes both ways and, on command, hurts connections ("links") the way networks
and crashing servers do:

- ``delay`` each chunk (per direction, with seeded jitter; chunks stay in order and the
  delay is latency, not a throughput cap) and ``bandwidth`` caps (bytes/s per link and
  direction);
- ``stall`` stops reading (one direction or both: TCP backpressure reaches the sender, as
  with a hung peer); ``half_open`` reads and discards one direction while the sockets stay
  open (a peer that vanished without a FIN or a RST);
- ``refuse`` new connections; ``close_all`` (FIN) or ``drop_all`` (RST, SO_LINGER 0) every
  open one;
- ``break_when`` (faultrules.Rule): break the link whose pgcat-py sends some bytes, before
  they reach the server, or in the middle of the n-th server message of some types after
  them (mid-DataRow, mid-CopyData, mid-login), or after n bytes; at most ``times`` links;
  ``cut_server_stream_after(n)`` breaks every link after n more bytes from its server;
- ``chaos``: seeded random breaks (faultrules.Chaos); ``schedule``: actions at set times.

Links live in one asyncio loop on a daemon thread (faultlinks.py); the controls are safe to
call from any other thread. ``fired`` lists what broke which link. Traffic stays on
127.0.0.1; ``stop()`` ends it all, and fails if a task of the proxy itself crashed.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

from .faultlinks import CHUNK, Knobs, Link, reset
from .faultrules import Chaos, Direction, How, LinkFaults, Rule

Side = Literal["to_server", "to_client", "both"]
T = TypeVar("T")
CONNECT_TIMEOUT_S = 5.0


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to 127.0.0.1:``target_port``."""

    def __init__(self, target_port: int, seed: int = 0) -> None:
        self.target_port = target_port
        self.knobs = Knobs(random.Random(seed))
        self.links: dict[int, Link] = {}  # open links by number (the loop thread's)
        self.links_opened = 0
        self.fired: list[tuple[int, str]] = []  # (link number, what broke it)
        self.failures: list[BaseException] = []  # crashes of the fault proxy's own tasks
        self._refusing: How | None = None
        self._chaos: Chaos | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(self._listen())
        self.port: int = self._server.sockets[0].getsockname()[1]

    # --- controls (any thread) ---------------------------------------------------------
    def delay(self, to_server: float = 0.0, to_client: float = 0.0, jitter: float = 0.0
              ) -> None:
        """Hold each chunk this many seconds (plus up to ``jitter``, seeded) before sending."""
        self.knobs.delay = {"to_server": to_server, "to_client": to_client}
        self.knobs.jitter = jitter

    def bandwidth(self, to_server: float | None = None, to_client: float | None = None
                  ) -> None:
        """Cap each link's throughput, bytes per second per direction (None: no cap)."""
        self.knobs.rate = {"to_server": to_server, "to_client": to_client}

    def stall(self, on: bool, direction: Side = "both") -> None:
        """Stop reading (both ways by default) until stall(False): a peer that hangs."""
        sides = _sides(direction)
        stalled = self.knobs.stalled
        self.knobs.stalled = stalled | sides if on else stalled - sides

    def half_open(self, direction: Side | None) -> None:
        """Discard what goes ``direction`` (None: forward again), keeping the sockets."""
        self.knobs.half_open = frozenset() if direction is None else _sides(direction)

    def refuse(self, on: bool, how: How = "fin") -> None:
        """Close new connections at once (a server that is down)."""
        self._refusing = how if on else None

    def close_all(self) -> None:
        """Close every open link with a FIN (a server that exited)."""
        self._call(self._close_links("fin", "close_all"))

    def drop_all(self) -> None:
        """Reset every open link (RST: a crashed host, a firewall dropping the flow)."""
        self._call(self._close_links("rst", "drop_all"))

    def break_when(self, *, sent: bytes | None = None, reply: bytes | None = None,
                   nth: int = 1, after: int | None = None, how: How = "fin",
                   times: int | None = 1) -> Rule:
        """Break a link at a protocol point, at most ``times`` links (None: every one).

        ``sent`` alone: when pgcat-py sends bytes containing it, before they go on.
        ``reply``: in the middle of the ``nth`` server message whose type is in ``reply``
        (after ``sent`` went by, or from now on every link). ``after``: once that many
        more bytes came from the server (after ``sent``, or from now). The rule's
        ``fired`` counts the links it broke.
        """
        rule = Rule(sent, reply, nth, after, how, times)
        self.knobs.rules = (*self.knobs.rules, rule)
        return rule

    def cut_server_stream_after(self, n: int | None) -> None:
        """Break every link, open or new, once ``n`` more bytes have come from its server
        (so mid-message); None: never."""
        self.knobs.rules = tuple(r for r in self.knobs.rules if not _is_cut_every_link(r))
        if n is not None:
            self.break_when(after=n, times=None)

    def chaos(self, chaos: Chaos | None) -> None:
        """Give each new link a seeded random fate (faultrules.Chaos); None: no more."""
        self._chaos = chaos

    def clear(self) -> None:
        """Every fault off; open links go on as healthy ones."""
        self.knobs.rules = ()
        self.delay()
        self.bandwidth()
        self.knobs.stalled = self.knobs.half_open = frozenset()
        self._refusing = self._chaos = None

    def schedule(self, steps: Sequence[tuple[float, Callable[[], object]]]) -> threading.Thread:
        """Run each ``(seconds from now, action)`` at its time on a thread (join it to wait)."""
        started = time.monotonic()

        def run() -> None:
            for at, action in sorted(steps, key=lambda step: step[0]):
                time.sleep(max(0.0, started + at - time.monotonic()))
                action()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    @property
    def connections(self) -> int:
        """Links open now."""
        return self._call(self._count())

    def server_side_ports(self) -> set[int]:
        """Local ports of the open links' server connections (pg_stat_activity.client_port)."""
        return self._call(self._ports())

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        assert not self.failures, f"fault proxy tasks failed: {self.failures!r}"

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- the loop thread ---------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=CHUNK)

    async def _count(self) -> int:
        return len(self.links)

    async def _ports(self) -> set[int]:
        return {link.server_port for link in self.links.values()}

    async def _close_links(self, how: How, reason: str | None) -> None:
        for link in list(self.links.values()):
            link.close(how, reason)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [task for link in self.links.values() for task in link.tasks]
        await self._close_links("fin", None)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        if self._refusing is not None:
            if self._refusing == "rst":
                reset(writer)
            else:
                writer.close()
            return
        try:
            server = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", self.target_port, limit=CHUNK), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            writer.close()
            return
        self.links_opened += 1
        number = self.links_opened
        fate = self._chaos.fate(number) if self._chaos is not None else None
        link = Link(number, LinkFaults(number, fate), self.knobs, (reader, writer), server,
                    self._ended)
        self.links[number] = link
        for task in link.tasks:
            task.add_done_callback(self._note_failure)

    def _ended(self, link: Link, reason: str | None) -> None:
        self.links.pop(link.number, None)
        if reason is not None:
            self.fired.append((link.number, reason))

    def _note_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.failures.append(exc)


def _sides(direction: Side) -> frozenset[Direction]:
    if direction == "both":
        return frozenset({"to_server", "to_client"})
    return frozenset({direction})


def _is_cut_every_link(rule: Rule) -> bool:
    return rule.after is not None and rule.times is None and rule.sent is None
