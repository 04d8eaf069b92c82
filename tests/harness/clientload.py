"""Client load for fault tests: a few psycopg clients running a mix of work in threads.

Each `Load` thread keeps one connection and runs, in turn, a small SELECT, a SELECT of a
few hundred rows (several chunks), an INSERT + SELECT transaction and a COPY TO STDOUT,
until stopped. Every error is kept with the SQL state and text the client saw, and a client
whose connection was closed connects again, so a fault costs the work in flight and
nothing more. `desynced` lists the errors that say a client got part of a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

Connection = psycopg.Connection[tuple[object, ...]]
# What libpq says when the bytes it got are not whole, well-formed messages.
DESYNC_MARKERS = ("lost synchronization", "do not agree with length", "unexpected message",
                  "insufficient data", "invalid message", "unexpected response")


WORK = ("select", "rows", "transaction", "copy_out")  # what each step of the mix does


@dataclass(frozen=True)
class ClientError:
    client: int
    work: str  # one of WORK, or "connect"
    sqlstate: str | None
    text: str

    @property
    def is_desync(self) -> bool:
        return any(marker in self.text for marker in DESYNC_MARKERS)


class Load:
    """``clients`` threads working through ``connect()`` until stop()."""

    def __init__(self, connect: Callable[[], Connection], clients: int = 3,
                 table: str | None = None) -> None:
        self.connect = connect
        self.table = table  # for the INSERT of the transaction (None: a SELECT instead)
        self.errors: list[ClientError] = []
        self.done = 0  # units of work that succeeded
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(clients)]
        for thread in self._threads:
            thread.start()

    def wait_for_work(self, units: int, timeout: float = 10.0) -> None:
        """Until at least ``units`` more units of work succeeded."""
        target = self.done + units
        deadline = time.monotonic() + timeout
        while self.done < target:
            assert time.monotonic() < deadline, f"load stalled: {self.errors[-3:]}"
            time.sleep(0.01)

    def stop(self) -> list[ClientError]:
        """Stop the clients; the errors they saw."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)
            assert not thread.is_alive(), "a load client hangs"
        return self.errors

    def _run(self, client: int) -> None:
        conn: Connection | None = None
        step = 0
        while not self._stop.is_set():
            work = "connect"
            try:
                if conn is None or conn.closed:
                    conn = self.connect()
                work = WORK[step % len(WORK)]
                self._work(conn, client, step)
                with self._lock:
                    self.done += 1
            except psycopg.Error as exc:
                with self._lock:
                    self.errors.append(ClientError(client, work, exc.sqlstate, str(exc)))
                if conn is not None and not conn.closed and conn.info.transaction_status \
                        != psycopg.pq.TransactionStatus.IDLE:
                    conn.close()  # a transaction in an unknown state: start over
            step += 1
        if conn is not None:
            conn.close()

    def _work(self, conn: Connection, client: int, step: int) -> None:
        kind = step % len(WORK)
        if kind == 0:
            assert conn.execute("SELECT %s::int", [step]).fetchone() == (step,)
        elif kind == 1:
            rows = conn.execute("SELECT repeat('b', 200) FROM generate_series(1, 300)").fetchall()
            assert len(rows) == 300
        elif kind == 2:
            with conn.transaction():
                if self.table is not None:
                    conn.execute(f"INSERT INTO {self.table} (who, n) VALUES (%s, %s)",
                                 [f"load-{client}", step])
                assert conn.execute("SELECT 1").fetchone() == (1,)
        else:
            with conn.cursor().copy("COPY (SELECT g FROM generate_series(1, 200) g) TO STDOUT"
                                    ) as copy:
                assert sum(1 for _ in copy.rows()) == 200
