"""A fault-injecting TCP proxy for tests: put it between pgcat-py and a PostgreSQL server.

It forwards bytes both ways and, on command, breaks connections the way networks and
crashing servers do: `cut_server_stream_after(n)` closes a connection once n bytes have come
from the server (so mid-message, unlike a PostgreSQL that terminates a backend cleanly),
`close_all()` drops every open connection at once, `refuse(True)` turns new connections
away, `stall(True)` stops forwarding while keeping connections open (a hung server).
Traffic stays on 127.0.0.1; every thread is a daemon and `stop()` ends them all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

CHUNK = 65536


class _Link:
    """One client connection and its server connection."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.server_bytes = 0  # bytes forwarded server -> client
        self.cut_at: int | None = None  # close once server_bytes reaches this
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.server):
            # shutdown wakes the other pump thread blocked in recv (close alone would not,
            # and the socket would stay open while it waits).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._cut_after: int | None = None
        self._refusing = False
        self._stalled = False
        self._stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # --- controls -------------------------------------------------------------------
    def cut_server_stream_after(self, n: int | None) -> None:
        """Break every connection, open or new, once ``n`` more bytes have come from its
        server (None: never)."""
        self._cut_after = n
        with self._lock:
            for link in self._links:
                link.cut_at = None if n is None else link.server_bytes + n

    def stall(self, on: bool) -> None:
        """Hold every byte (both ways) until stall(False): a server that stopped answering."""
        self._stalled = on

    def refuse(self, on: bool) -> None:
        """Close new connections at once (a server that is down)."""
        self._refusing = on

    def close_all(self) -> None:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return sum(not link.closed for link in self._links)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.close_all()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- forwarding -----------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                _Link(client, socket.socket()).close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            link.cut_at = self._cut_after
            with self._lock:
                self._links = {lk for lk in self._links if not lk.closed} | {link}
            threading.Thread(target=self._pump, args=(link, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(link, False), daemon=True).start()

    def _pump(self, link: _Link, from_server: bool) -> None:
        src, dst = (link.server, link.client) if from_server else (link.client, link.server)
        try:
            while not link.closed:
                data = src.recv(CHUNK)
                if not data:
                    break
                while self._stalled and not link.closed:
                    time.sleep(0.01)
                if from_server and link.cut_at is not None:
                    room = link.cut_at - link.server_bytes
                    if room <= len(data):
                        dst.sendall(data[:max(room, 0)])
                        break
                    link.server_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        link.close()
