"""An asyncio Protocol with an awaitable message reader, for the control plane.

Client and server connections both start life on the control plane (startup, auth, reset
queries) where ``await read_message()`` keeps the code linear, and switch to the relay path,
where subclasses handle ``data_received`` themselves and never touch this buffer. Protocols
(not streams) because streams cost about a quarter of the relay's throughput here.

``start_tls`` upgrades either side after its SSLRequest exchange: the protocol object stays,
its ``transport`` becomes the TLS one, so the relay writes through whichever it has without
a check of its own.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from dataclasses import dataclass

from .protocol.errors import ProtocolViolation, ServerError
from .protocol.framing import HEADER_SIZE, unpack_header


@dataclass(frozen=True)
class SocketOptions:
    """TCP settings for client and server sockets (pgcat's [general] tcp_* keys)."""

    keepalives_idle: int = 5          # seconds of silence before the first probe
    keepalives_count: int = 5         # unanswered probes before the peer is dead
    keepalives_interval: int = 5      # seconds between probes
    user_timeout_ms: int = 10_000     # Linux TCP_USER_TIMEOUT: unacknowledged data limit


def tune_socket(transport: asyncio.BaseTransport, options: SocketOptions) -> None:
    """TCP_NODELAY (the relay writes whole chunks; Nagle would only add latency) and
    keepalives, so a peer that vanished without a FIN is noticed."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    # uvloop's PseudoSocket makes (and detaches) a socket object per setsockopt: one of
    # ours for all six, with family and type given so that it asks the kernel nothing.
    own = socket.socket(sock.family, sock.type, sock.proto, sock.fileno())
    try:
        for level, name, value in _tcp_settings(options):
            own.setsockopt(level, name, value)
    finally:
        own.detach()


@functools.cache
def _tcp_settings(options: SocketOptions) -> tuple[tuple[int, int, int], ...]:
    """The setsockopt arguments for ``options`` (Linux names; other systems skip them)."""
    settings = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
                (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", options.keepalives_idle),
                        ("TCP_KEEPCNT", options.keepalives_count),
                        ("TCP_KEEPINTVL", options.keepalives_interval),
                        ("TCP_USER_TIMEOUT", options.user_timeout_ms)):
        if hasattr(socket, name) and value > 0:
            settings.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return tuple(settings)


class ConnectionClosed(ServerError):
    """The peer closed the connection (or it broke) while we waited for it."""


class _Handshaking(asyncio.Protocol):
    """The TLS transport's protocol until its handshake is over.

    uvloop tells the app protocol of a connection lost mid-handshake for some causes (a bad
    ClientHello) and not for others (a reset, the handshake timeout), so the connection
    becomes the app protocol only after a handshake that worked, and
    MessageConnection.start_tls reports a failed one itself, exactly once.
    """

    def __init__(self) -> None:
        self.early: list[bytes] = []  # uvloop delivers data only after start_tls returns
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class MessageConnection(asyncio.Protocol):
    """Buffers incoming bytes and hands them out as whole messages on request.

    Slotted, as ClientSession is: an instance __dict__ costs an idle client ~1.6 KB.
    """

    __slots__ = ("_max_message", "_rbuf", "_reading_paused", "_waiter", "_whole", "is_closed",
                 "transport")
    transport: asyncio.Transport

    def __init__(self, max_message: int = 1 << 30) -> None:
        self._rbuf = bytearray()
        # The chunk the buffer holds alone, when the owner says so (an idle client's Query),
        # until a byte of it is consumed: handed on as it is, not copied back out.
        self._whole: bytes | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._max_message = max_message
        self.is_closed = False
        self._reading_paused = False

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, only duck-typed as one.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._rbuf += data
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: PostgreSQL peers never half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        self._wake()

    # --- control-plane reading --------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_for_data(self) -> None:
        if self.is_closed:
            raise ConnectionClosed("connection closed by peer")
        # The control plane needs more bytes: a pause taken while they piled up (a full
        # buffer) must not keep them out, or this waits forever.
        self.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_message(self, max_length: int | None = None) -> tuple[int, bytes]:
        """The next whole message as ``(type, payload)``; ConnectionClosed at EOF.

        A declared length (which counts itself, as in pq_getmessage) over ``max_length``,
        by default the connection's limit, is refused as soon as the header is in.
        """
        limit = self._max_message if max_length is None else max_length
        while True:
            buf = self._rbuf
            if len(buf) >= HEADER_SIZE:
                msg_type, length = unpack_header(buf, 0)
                if length < 4 or length > limit:
                    raise ProtocolViolation(f"invalid message length {length}")
                end = 1 + length
                if len(buf) >= end:
                    payload = bytes(buf[HEADER_SIZE:end])
                    del buf[:end]
                    return msg_type, payload
            await self._wait_for_data()

    async def start_tls(self, context: ssl.SSLContext, *, server_side: bool,
                        server_hostname: str | None = None) -> None:
        """Run the TLS handshake; from then on ``transport`` is the TLS transport.

        Call it with nothing unread (bytes that came before the handshake were not
        encrypted). A failed handshake closes the connection, reports it lost (soon, once)
        and raises ConnectionClosed saying why.
        """
        raw = self.transport
        self.resume_reading()
        standby = _Handshaking()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw, standby, context, server_side=server_side, server_hostname=server_hostname)
        except BaseException as exc:
            self._lost_in_handshake(raw, exc)
            if isinstance(exc, OSError):  # ssl.SSLError, a reset, the handshake timeout
                raise ConnectionClosed(f"TLS handshake failed: {exc or type(exc).__name__}"
                                       ) from None
            raise
        if tls is None or standby.lost:
            self._lost_in_handshake(raw, None)
            raise ConnectionClosed("connection closed during the TLS handshake")
        self.transport = tls
        tls.set_protocol(self)
        for data in standby.early:
            self.data_received(data)

    def _lost_in_handshake(self, raw: asyncio.Transport, exc: BaseException | None) -> None:
        # Part of a handshake went out: nothing more can be said on this connection.
        self.is_closed = True
        raw.abort()
        lost = exc if isinstance(exc, Exception) else None
        asyncio.get_running_loop().call_soon(self.connection_lost, lost)

    def consume(self, n: int) -> None:
        self._whole = None
        del self._rbuf[:n]

    @property
    def buffered(self) -> bytes | bytearray:
        """What is buffered and not yet read, not copied: the chunk itself while it stands
        for the buffer (compiled, bytes are read in C), else the buffer."""
        whole = self._whole
        return self._rbuf if whole is None else whole

    @property
    def has_unread(self) -> bool:
        """Bytes arrived on the control plane that nobody read yet."""
        return bool(self._rbuf)

    def take_buffered(self) -> bytes:
        """Everything buffered and not yet read, handed over to the relay path."""
        data = bytes(self._rbuf) if self._whole is None else self._whole
        self._whole = None
        self._rbuf.clear()
        return data

    # Flow control: transports are told only about real changes (cheap on the hot path).
    def pause_reading(self) -> None:
        if not self._reading_paused and not self.is_closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self.is_closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.is_closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            self.transport.close()
