"""Parked clients: an idle client's socket without an event-loop transport.

A logged-in client between transactions holds no server, but its uvloop transport alone
costs about 1.2 KB of memory (benchmarks/README.md, "Memory per idle client"), more than
PgBouncer's whole client. Most clients of a big application sit idle most of the time, so a
client found idle by two sweeps in a row (app.py runs one every half second to second) is
parked: its socket is kept as a bare file descriptor in one epoll set of the worker's, the
transport is closed around it (the connection itself stays open: the dup'd descriptor holds
it), and the session gets a ParkedTransport of a few bytes in its place. What the client
sends next, or its hang-up, wakes the epoll set, which the event loop watches as one reader.
The lot reads what came: a hang-up or a lone Terminate closes the client there, without a
transport made for it; anything else gets the socket a new transport, and the same session
carries on with those bytes first, every state kept (prepared statements, SET values, the
custom-command choices). Linux only (epoll); elsewhere nobody is parked.

What a parked client may still be told needs no transport: ``write`` sends a short message
(a FATAL at shutdown) straight to the socket, which an idle client's empty send buffer
takes; ``close`` closes it. TLS clients are never parked: their encryption state lives in
the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import select
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from ..protocol.framing import FrontendScanner
from ..protocol.frontend import TERMINATE_MESSAGE
from .states import State

if TYPE_CHECKING:
    from .session import ClientSession

log = logging.getLogger(__name__)

# Parked per sweep at most: each costs a few syscalls, and one sweep must not stall the loop.
MAX_PARKED_PER_SWEEP: Final = 1000
# Parked in one sweep, from which freed memory is worth handing back to the system.
TRIM_AFTER: Final = 64
TRIM_DELAY_S: Final = 0.1
SUPPORTED: Final = hasattr(select, "epoll")
_WAKE_EVENTS: Final = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLRDHUP", 0)
FIRST_READ: Final = 64 * 1024  # read at wake-up; the transport reads the rest
# A parked client's input buffer and (when its own was at rest) scanner: one for all (56 and
# 120 bytes each otherwise). Neither is ever used: no transport delivers data to a parked
# client. unparked gives the client its own again.
NO_INPUT: Final = bytearray()
AT_REST: Final = FrontendScanner()


class _Detached(asyncio.Protocol):
    """What a parked client's old transport reports its closing to: nobody."""


_DETACHED: Final = _Detached()


class ParkedTransport:
    """Stands in for a parked client's transport; knows its socket by descriptor only."""

    __slots__ = ("fd", "session", "waking")

    def __init__(self, fd: int, session: ClientSession) -> None:
        self.fd = fd
        self.session = session
        # Set at wake-up, while a new transport is made for the socket: the bytes read from
        # it then, which the session gets first (unparked).
        self.waking: bytes | None = None

    def write(self, data: bytes) -> None:
        # A parked client's send buffer is empty: a short message fits without waiting.
        with contextlib.suppress(OSError):
            os.write(self.fd, data)

    def close(self) -> None:
        if self.waking is not None or self.fd < 0:
            return  # waking: the new transport is closed as soon as it is made
        self.session.ctx.parking.forget(self.fd)
        os.close(self.fd)
        self.fd = -1  # never close a number the kernel may have given to another socket
        asyncio.get_running_loop().call_soon(self.session.connection_lost, None)

    abort = close

    def pause_reading(self) -> None:
        """Nothing is read from a parked socket."""

    def resume_reading(self) -> None:
        """Reading resumes with the new transport."""

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name != "peername" or self.fd < 0:
            return default
        sock = socket.socket(fileno=self.fd)
        try:
            return sock.getpeername()
        except OSError:
            return default
        finally:
            sock.detach()


class ParkingLot:
    """A worker's parked clients: one epoll set, watched by the event loop as one reader."""

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        # By descriptor: descriptors are small numbers, and a list slot costs 8 bytes where
        # a dict entry costs 30.
        self._parked: list[ParkedTransport | None] = []
        self._count = 0
        self._idle_before: dict[ClientSession, int] = {}  # idle at the last sweep: query_count

    def __len__(self) -> int:
        return self._count

    def sweep(self, sessions: Iterable[ClientSession]) -> None:
        """Park the clients that were idle at the last sweep and did nothing since."""
        if not SUPPORTED:
            return
        idle_now: dict[ClientSession, int] = {}
        budget = MAX_PARKED_PER_SWEEP
        for session in sessions:
            if not is_parkable(session):
                continue
            if budget and self._idle_before.get(session) == session.query_count:
                # Out of descriptors, say (a park holds two until the loop closes the old
                # one): the others wait for the next sweep.
                budget = budget - 1 if self.park(session) else 0
            else:
                idle_now[session] = session.query_count
        self._idle_before = idle_now
        if budget <= MAX_PARKED_PER_SWEEP - TRIM_AFTER:
            # The transports are freed once the loop has closed them, an iteration or two on.
            asyncio.get_running_loop().call_later(TRIM_DELAY_S, release_free_memory)

    def park(self, session: ClientSession) -> bool:
        """Swap the session's transport for a ParkedTransport; False if the socket could
        not be kept (the client stays as it was)."""
        transport = session.transport
        fd = -1
        try:
            epoll = self._epoll_set()
            fd = os.dup(transport.get_extra_info("socket").fileno())
            epoll.register(fd, _WAKE_EVENTS)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            log.warning("client %s: not parked: %s", session.process_id, exc)
            return False
        parked = self._parked
        if fd >= len(parked):
            parked.extend([None] * (fd + 1 - len(parked)))
        parked[fd] = ParkedTransport(fd, session)
        self._count += 1
        transport.set_protocol(_DETACHED)
        transport.abort()  # closes uvloop's descriptor; the connection lives on in fd
        session.transport = parked[fd]  # type: ignore[assignment]
        session._rbuf = NO_INPUT
        if session.scanner.at_rest():
            session.scanner = AT_REST
        return True

    def forget(self, fd: int) -> ParkedTransport | None:
        """Take ``fd``'s client out of the lot (it wakes up or closes)."""
        parked = self._parked[fd] if fd < len(self._parked) else None
        if parked is not None:
            self._parked[fd] = None
            self._count -= 1
            if self._epoll is not None:
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
        return parked

    def close(self) -> None:
        """Close every parked client's socket (the worker is stopping)."""
        for parked in self._parked:
            if parked is not None:
                parked.close()
        if self._epoll is not None:
            asyncio.get_running_loop().remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None

    def _epoll_set(self) -> select.epoll:
        if self._epoll is None:
            self._epoll = select.epoll()
            asyncio.get_running_loop().add_reader(self._epoll.fileno(), self._wake)
        return self._epoll

    def _wake(self) -> None:
        """Clients with something to say: read it here, so that one that only leaves (a
        Terminate, a hang-up) is closed without a transport made for it."""
        assert self._epoll is not None
        for fd, _events in self._epoll.poll(0):
            try:
                first = os.read(fd, FIRST_READ)
            except BlockingIOError:
                continue  # nothing after all: still parked
            except OSError:
                first = b""  # a reset
            parked = self.forget(fd)
            if parked is None:
                continue
            if not first or first == TERMINATE_MESSAGE:
                parked.close()
            else:
                parked.waking = first
                asyncio.get_running_loop().create_task(_unpark(parked))


async def _unpark(parked: ParkedTransport) -> None:
    """Give the socket a new transport; the session's connection_made calls unparked."""
    session = parked.session
    sock = socket.socket(fileno=parked.fd)
    try:
        await asyncio.get_running_loop().connect_accepted_socket(lambda: session, sock)
    except Exception as exc:  # the client is gone (a reset while it was parked)
        sock.close()
        session.connection_lost(exc)


def unparked(session: ClientSession, transport: asyncio.BaseTransport) -> None:
    """The session's new transport, at wake-up (ClientSession.connection_made), and the
    bytes read at wake-up, before any the transport reads."""
    parked = session.transport
    first = parked.waking if isinstance(parked, ParkedTransport) else None
    session.transport = transport  # type: ignore[assignment]
    session._rbuf = bytearray()
    if session.scanner is AT_REST:
        session.scanner = FrontendScanner()
    if session.is_closed:  # closed while its socket was getting this transport
        transport.close()
        return
    if first:
        session.data_received(first)
    if session._reading_paused and not session.is_closed:
        # uvloop ignores pause_reading until it has started reading, which it does right
        # after connection_made: a pause taken on those bytes is taken again then.
        asyncio.get_running_loop().call_soon(_pause_again, session, transport)


def _pause_again(session: ClientSession, transport: asyncio.BaseTransport) -> None:
    if session._reading_paused and session.transport is transport and not session.is_closed:
        transport.pause_reading()


def release_free_memory() -> None:
    """glibc's malloc_trim: the transports just closed were allocated with malloc (uvloop's
    objects are bigger than pymalloc's 512 bytes), and glibc keeps freed pages in the
    middle of its heap until asked. 5 ms for a heap of 100 MB; nothing elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # musl and macOS have none
    except OSError:
        return None


def is_parkable(session: ClientSession) -> bool:
    """Idle with nothing of its own in flight: no server, no input, no output, no TLS."""
    if session.state is not State.IDLE or session.server is not None or session.is_closed:
        return False
    if session._rbuf or session.held is not None or session._attempt is not None \
            or session._reading_paused or session._closing:
        return False
    transport = session.transport
    if isinstance(transport, ParkedTransport) or transport.get_write_buffer_size():
        return False
    return transport.get_extra_info("ssl_object") is None \
        and transport.get_extra_info("socket") is not None
