"""A pass-through TCP recorder: real clients talk to the proxy through it, and it keeps what
each client sent.

`TcpRecorder(host, port)` listens on 127.0.0.1:<ephemeral> and forwards every connection to
``host:port`` unchanged, both ways. For each connection it keeps the client->proxy bytes
(and the proxy->client bytes, for assertions) in a `Recording`, in the order the connections
were accepted. The protocol fuzzer's corpus (tests/fuzz/corpus) is made of such recordings
of psql, psycopg and asyncpg sessions. Threads are daemons; `stop()` ends them all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 65536


@dataclass
class Recording:
    """One client connection: what the client sent and what came back, as it flowed."""

    client_bytes: bytearray = field(default_factory=bytearray)
    server_bytes: bytearray = field(default_factory=bytearray)
    done: threading.Event = field(default_factory=threading.Event)  # both directions ended
    _open_directions: int = 2

    def direction_ended(self, lock: threading.Lock) -> None:
        with lock:
            self._open_directions -= 1
            if self._open_directions == 0:
                self.done.set()


class TcpRecorder:
    """Forwards 127.0.0.1:<port> to ``target``; `recordings` holds one entry per connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self.recordings: list[Recording] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def __enter__(self) -> TcpRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            recording = Recording()
            with self._lock:
                self.recordings.append(recording)
                self._sockets += [client, server]
            for src, dst, sink in ((client, server, recording.client_bytes),
                                   (server, client, recording.server_bytes)):
                threading.Thread(target=self._pump, args=(src, dst, sink, recording),
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, sink: bytearray,
              recording: Recording) -> None:
        """Copy src -> dst until EOF, keeping every byte; pass the EOF on as a half-close."""
        try:
            while chunk := src.recv(CHUNK):
                with self._lock:
                    sink += chunk
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        recording.direction_ended(self._lock)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recording]:
        """The first ``count`` recordings once each connection has ended both ways."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                recordings = list(self.recordings[:count])
            if len(recordings) == count and all(r.done.is_set() for r in recordings):
                return recordings
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(recordings)} of {count} recorded connections ended")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
