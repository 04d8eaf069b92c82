"""Replay a client byte stream against the proxy and judge what comes back.

A stream (recorded, or mutated from a recording) is sent over a fresh TCP connection in one
of four ways: ``flights`` (each flight, then wait for its answer, as a real client does),
``burst`` (the login stepwise, then everything else in one write), ``chunks`` (the login
stepwise, then the rest cut at random points, each piece its own write) or ``raw`` (every
byte in one write, login included). Then the connection ends: ``eof`` (a half-close, after
which the proxy must close within the timeout: the hang oracle) or ``reset`` (an RST).

md5 logins survive a replay: a recorded md5 PasswordMessage (whose salt was that run's) is
recomputed for the salt the proxy sends now, when the stream's user has a known password.
SCRAM cannot be replayed (the server nonce differs every time): such a session fails its
login, which still exercises the SASL path.

What comes back is checked against rules any PostgreSQL server keeps (`Outcome.problems`):
only whole, well-framed messages of known backend types, nothing after a FATAL error, no
"internal error in the pooler" (XX000, the proxy's answer to a bug of its own; PostgreSQL
answers some garbage with XX000 too, e.g. an unknown type OID), the connection closed after
a Terminate and after the client's EOF, within the timeout.
"""

from __future__ import annotations

import contextlib
import random
import re
import select
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pgcat_py.protocol import backend as be
from pgcat_py.protocol.auth import md5_response
from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import split_messages
from pgcat_py.protocol.frontend import PasswordMessage
from pgcat_py.protocol.wire import cstr

from .stream import MESSAGE, STARTUP, Unit, flights, login_units, split_units, startup_params

MODES = ("flights", "burst", "chunks", "raw")
ENDS = ("eof", "reset")
FLIGHT_WAIT_S = 0.25   # how long a flight's answer is awaited before the next one goes
CLOSE_TIMEOUT_S = 5.0  # after EOF or Terminate the proxy must close within this
SLEEP_ALLOWANCE_S = 0.5  # more per pg_sleep in the stream (the corpus sleeps 0.4 s)
BACKEND_TYPES = frozenset(b"RSKZETDCIN123ntsGHWdcAVv")
_MD5_TOKEN = re.compile(rb"p\x00\x00\x00\x28md5[0-9a-f]{32}\x00")
_AUTH_CONTINUE = frozenset({be.AUTH_CLEARTEXT_PASSWORD, be.AUTH_MD5_PASSWORD, be.AUTH_SASL,
                            be.AUTH_SASL_CONTINUE})
_ANSWERED_BY_READY = frozenset(b"QSFcf")
# Sent in place of the real types in a summary: they vary from run to run.
_VARYING = frozenset(b"SKNA")


@dataclass
class Outcome:
    """What one replay sent, got back and broke."""

    sent: bytes
    received: bytearray = field(default_factory=bytearray)
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    closed_by_proxy: bool = False
    close_wait_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def types(self) -> str:
        """The message types received, without those whose presence varies by run."""
        return "".join(chr(t) for t, _ in self.messages if t not in _VARYING)

    def errors(self) -> list[tuple[str, str, str]]:
        """(severity, SQLSTATE, message) of every ErrorResponse received."""
        out = []
        for msg_type, payload in self.messages:
            if msg_type == ord("E"):
                error = be.decode_backend(msg_type, payload)
                assert isinstance(error, be.NoticeOrError)
                out.append((error.severity, error.sqlstate, error.fields.get("M", "")))
        return out


class _Connection:
    """The replaying socket and the parsing of what comes back."""

    def __init__(self, host: str, port: int, outcome: Outcome, leading_answers: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=CLOSE_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.outcome = outcome
        self._buf = bytearray()
        self._answers_to_skip = leading_answers  # one byte per SSL/GSS request, first
        self._fatal_seen = False
        self.current_stop: _Stop | None = None  # what ends the answer being awaited

    def send(self, data: bytes) -> bool:
        """False once the proxy has closed (a write to a closed peer)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def read_until(self, done: int, deadline: float) -> None:
        """Read until ``done`` messages arrived, or until the deadline or the close."""
        while len(self.outcome.messages) < done and not self.outcome.closed_by_proxy:
            if not self._fill(deadline):
                return

    def wait(self, stop: _Stop, deadline: float) -> None:
        """Read until ``stop`` says the answer is complete, the deadline or the close."""
        seen = len(self.outcome.messages)
        while not self.outcome.closed_by_proxy:
            for msg in self.outcome.messages[seen:]:
                if stop(msg):
                    return
            seen = len(self.outcome.messages)
            if stop.on_bytes and stop.skipped:
                return
            if not self._fill(deadline):
                return

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        readable, _, _ = select.select([self.sock], [], [], remaining)
        if not readable:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            self._closed()
            return False
        self.outcome.received += chunk
        self._parse(chunk)
        return True

    def _parse(self, chunk: bytes) -> None:
        if self._answers_to_skip:
            take = min(self._answers_to_skip, len(chunk))
            answers, chunk = chunk[:take], chunk[take:]
            self._answers_to_skip -= take
            if take and self.current_stop is not None:
                self.current_stop.skipped = True
            if answers.strip(b"N"):
                self._problem(f"answer to an encryption request is {answers!r}, not N")
        self._buf += chunk
        try:
            messages, used = split_messages(self._buf)
        except ProtocolViolation as exc:
            self._problem(f"proxy sent a bad message header: {exc}")
            self._buf.clear()
            return
        del self._buf[:used]
        for msg in messages:
            self._judge(msg)
            self.outcome.messages.append(msg)

    def _judge(self, msg: tuple[int, bytes]) -> None:
        msg_type, payload = msg
        if self._fatal_seen:
            self._problem(f"message {chr(msg_type)!r} after a FATAL error")
        if msg_type not in BACKEND_TYPES:
            self._problem(f"unknown backend message type {msg_type}")
            return
        if msg_type == ord("E"):
            try:
                error = be.decode_backend(msg_type, payload)
            except ProtocolViolation as exc:
                self._problem(f"undecodable ErrorResponse: {exc}")
                return
            assert isinstance(error, be.NoticeOrError)
            if error.severity in ("FATAL", "PANIC"):
                self._fatal_seen = True
            text = error.fields.get("M", "")
            if error.sqlstate == "XX000" and "pooler" in text:  # not PostgreSQL's own
                self._problem(f"internal error: {text}")
        elif msg_type == ord("Z") and payload not in (b"I", b"T", b"E"):
            self._problem(f"ReadyForQuery with status {payload!r}")

    def _closed(self) -> None:
        self.outcome.closed_by_proxy = True
        if self._buf:
            self._problem(f"connection closed after part of a message: {bytes(self._buf[:20])!r}")

    def _problem(self, text: str) -> None:
        self.outcome.problems.append(text)

    def finish(self, end: str, last_unit: Unit | None, close_timeout: float) -> None:
        """End the connection as ``end`` says; record how long the proxy took to close."""
        start = time.monotonic()
        if end == "reset":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            return
        if last_unit is not None and last_unit.kind == MESSAGE and last_unit.type == ord("X"):
            self.read_until(1 << 30, start + close_timeout)
            if not self.outcome.closed_by_proxy:
                self._problem(f"still open {close_timeout} s after a Terminate")
        if not self.outcome.closed_by_proxy:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            self.read_until(1 << 30, time.monotonic() + close_timeout)
            if not self.outcome.closed_by_proxy:
                self._problem(f"still open {close_timeout} s after the client's EOF")
        self.outcome.close_wait_s = time.monotonic() - start
        self.sock.close()


class _Stop:
    """When the answer to a flight is complete, judged by the flight's last unit."""

    def __init__(self, last: Unit) -> None:
        self.on_bytes = last.is_encryption_request
        self.skipped = False
        if last.kind == STARTUP or (last.kind == MESSAGE and last.type == ord("p")):
            self.kind = "auth"
        elif last.kind == MESSAGE and last.type in _ANSWERED_BY_READY:
            self.kind = "ready"
        elif last.kind == MESSAGE and last.type == ord("X"):
            self.kind = "close"
        else:
            self.kind = "none"

    def __call__(self, msg: tuple[int, bytes]) -> bool:
        msg_type, payload = msg
        if msg_type == ord("E") or msg_type == ord("Z"):
            return True
        if self.kind == "auth" and msg_type == ord("R") and len(payload) >= 4:
            return int.from_bytes(payload[:4], "big") in _AUTH_CONTINUE
        return self.kind == "ready" and msg_type in (ord("G"), ord("W"))


@dataclass
class Replayer:
    """Replays streams against ``host:port``; ``passwords`` lets md5 logins be redone."""

    host: str
    port: int
    passwords: Mapping[str, str] = field(default_factory=dict)
    flight_wait_s: float = FLIGHT_WAIT_S
    close_timeout_s: float = CLOSE_TIMEOUT_S

    def replay(self, stream: bytes, mode: str = "flights", end: str = "eof",
               cut_seed: int = 0) -> Outcome:
        units = split_units(stream)
        leading = 0
        for unit in units:
            if not unit.is_encryption_request:
                break
            leading += 1
        outcome = Outcome(sent=stream)
        conn = _Connection(self.host, self.port, outcome, leading)
        try:
            sent = self._send(conn, units, mode, cut_seed)
            outcome.sent = sent
            # Sleeps the session asks for (repeated by a mutation, maybe) are not hangs.
            timeout = self.close_timeout_s + SLEEP_ALLOWANCE_S * sent.count(b"pg_sleep")
            conn.finish(end, units[-1] if units else None, timeout)
        finally:
            conn.sock.close()
        return outcome

    def _send(self, conn: _Connection, units: Sequence[Unit], mode: str, cut_seed: int
              ) -> bytes:
        """Send ``units`` as ``mode`` says; the bytes that really went out (md5 redone)."""
        if mode == "raw":
            data = b"".join(u.data for u in units)
            conn.send(data)
            return data
        stepwise = len(units) if mode == "flights" else login_units(units)
        out: list[bytes] = []
        user = startup_params(units).get("user", "")
        for flight in flights(units[:stepwise]):
            data = b"".join(self._redo_md5(u, user, conn) for u in flight)
            out.append(data)
            if not conn.send(data):
                return b"".join(out)
            stop = _Stop(flight[-1])
            conn.current_stop = stop
            if stop.kind != "none":
                conn.wait(stop, time.monotonic() + self.flight_wait_s)
        rest = b"".join(u.data for u in units[stepwise:])
        out.append(rest)
        if mode == "chunks" and len(rest) > 1:
            rng = random.Random(cut_seed)
            cuts = sorted(rng.sample(range(1, len(rest)), min(len(rest) - 1, rng.randint(1, 24))))
            for a, b in zip([0, *cuts], [*cuts, len(rest)], strict=True):
                if not conn.send(rest[a:b]):
                    break
                time.sleep(0.001)
        elif rest:
            conn.send(rest)
        return b"".join(out)

    def _redo_md5(self, unit: Unit, user: str, conn: _Connection) -> bytes:
        """A recorded md5 answer, recomputed for the salt of this connection."""
        if not _MD5_TOKEN.fullmatch(unit.data) or user not in self.passwords:
            return unit.data
        for msg_type, payload in reversed(conn.outcome.messages):
            if msg_type == ord("R") and payload[:4] == be.AUTH_MD5_PASSWORD.to_bytes(4, "big"):
                salt = payload[4:8]
                token = md5_response(user, self.passwords[user], salt)
                return PasswordMessage(cstr(token)).encode()
        return unit.data
