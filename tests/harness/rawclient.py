"""A raw-socket PostgreSQL client for tests that send what no driver would.

Drivers refuse to send a startup packet without a user or a message declaring 1 GiB, so the
bad-input tests speak the protocol by hand: bytes go out as given (built with
`pgcat_py.protocol`), and what comes back is cut into messages with `split_messages` and read
until a given message type or until the peer closes. Every read is bounded by the socket
timeout, so a proxy that hangs fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
from collections import deque
from types import TracebackType

from pgcat_py.protocol import backend as be
from pgcat_py.protocol.auth import ScramClientExchange, md5_response
from pgcat_py.protocol.framing import split_messages
from pgcat_py.protocol.frontend import PasswordMessage, Query
from pgcat_py.protocol.startup import StartupMessage
from pgcat_py.protocol.wire import cstr

DEFAULT_TIMEOUT_S = 5.0
Message = tuple[int, bytes]  # (type byte, payload)


class RawClient:
    """One TCP connection; the caller decides every byte that goes out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._pending: deque[Message] = deque()
        self.closed_by_peer = False

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = DEFAULT_TIMEOUT_S) -> RawClient:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    # --- reading --------------------------------------------------------------------
    def _fill(self) -> bool:
        """Read one chunk into the buffer; False once the peer has closed (or reset)."""
        if self.closed_by_peer:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed_by_peer = True
            return False
        self._buf += chunk
        return True

    @property
    def leftover(self) -> bytes:
        """Bytes received that do not make a whole message (part of one, at EOF)."""
        return bytes(self._buf)

    def read_bytes(self, n: int) -> bytes:
        """Exactly ``n`` raw bytes (the one-byte answer to SSLRequest); fewer at EOF."""
        while len(self._buf) < n and self._fill():
            pass
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_message(self) -> Message | None:
        """The next whole message, or None when the peer closed first."""
        while not self._pending:
            messages, used = split_messages(self._buf)
            del self._buf[:used]
            self._pending.extend(messages)
            if not messages and not self._fill():
                return None
        return self._pending.popleft()

    def read_until(self, types: bytes) -> list[Message]:
        """Messages up to and including the first whose type is in ``types``, or up to EOF."""
        out: list[Message] = []
        while (msg := self.read_message()) is not None:
            out.append(msg)
            if msg[0] in types:
                break
        return out

    def read_until_closed(self) -> list[Message]:
        """Every message until the peer closes; raises TimeoutError if it never does."""
        out: list[Message] = []
        while (msg := self.read_message()) is not None:
            out.append(msg)
        return out

    # --- conversations --------------------------------------------------------------
    def startup(
        self,
        user: str | None,
        password: str | None = None,
        database: str | None = None,
        **params: str,
    ) -> list[Message]:
        """Send a StartupMessage (no user if ``user`` is None), then ``authenticate``."""
        startup: dict[str, str] = {} if user is None else {"user": user}
        if database is not None:
            startup["database"] = database
        self.send(StartupMessage({**startup, **params}).encode())
        return self.authenticate(user or "", password or "")

    def authenticate(self, user: str, password: str) -> list[Message]:
        """Answer password requests (md5, cleartext, SCRAM) after the StartupMessage.

        Returns everything up to ReadyForQuery, or up to and including the first
        ErrorResponse (then usually followed by the close).
        """
        out: list[Message] = []
        scram = ScramClientExchange(user, password)
        while (msg := self.read_message()) is not None:
            out.append(msg)
            if msg[0] in b"ZE":
                break
            if msg[0] == ord("R"):
                request = be.decode_backend(*msg)
                assert isinstance(request, be.Authentication)
                self._answer_auth(request, user, password, scram)
        return out

    def _answer_auth(
        self, request: be.Authentication, user: str, password: str, scram: ScramClientExchange
    ) -> None:
        """The PasswordMessage / SASL response an authentication request asks for."""
        if request.code == be.AUTH_MD5_PASSWORD:
            answer = cstr(md5_response(user, password, request.data))
        elif request.code == be.AUTH_CLEARTEXT_PASSWORD:
            answer = cstr(password)
        elif request.code == be.AUTH_SASL:
            answer = scram.initial_response()
        elif request.code == be.AUTH_SASL_CONTINUE:
            answer = scram.continue_(request.data)
        elif request.code == be.AUTH_SASL_FINAL:
            scram.final(request.data)
            return
        else:
            assert request.code == be.AUTH_OK, f"unsupported authentication request {request}"
            return
        self.send(PasswordMessage(answer).encode())

    def login(self, user: str, password: str, database: str | None = None) -> list[Message]:
        """startup() that must succeed: ends with ReadyForQuery 'I'."""
        messages = self.startup(user, password, database)
        assert messages and messages[-1] == (ord("Z"), b"I"), describe(messages)
        return messages

    def query(self, sql: str) -> list[Message]:
        """Send a simple Query; everything up to ReadyForQuery (or EOF)."""
        self.send(Query(sql).encode())
        return self.read_until(b"Z")


def error_of(messages: list[Message]) -> be.NoticeOrError | None:
    """The first ErrorResponse among ``messages``, decoded."""
    for msg_type, payload in messages:
        if msg_type == ord("E"):
            decoded = be.decode_backend(msg_type, payload)
            assert isinstance(decoded, be.NoticeOrError)
            return decoded
    return None


def rows_of(messages: list[Message]) -> list[tuple[str | None, ...]]:
    """The DataRows among ``messages``, as text."""
    rows = []
    for msg_type, payload in messages:
        if msg_type == ord("D"):
            row = be.decode_backend(msg_type, payload)
            assert isinstance(row, be.DataRow)
            rows.append(tuple(None if v is None else v.decode() for v in row.values))
    return rows


def describe(messages: list[Message]) -> str:
    """A short readable form of a message list, for assertion messages."""
    return " ".join(f"{chr(t)}{payload[:60]!r}" for t, payload in messages)
