"""The soak's clients: threads that keep a mix of work going through the proxy until stopped.

Kinds of work (each a thread with its own connection, reconnecting after an error and every
RECONNECT_EVERY units, so client connections churn too):
- read: a point SELECT in autocommit (a replica's, with read/write splitting);
- write: an UPDATE and an INSERT in autocommit (the primary's);
- transaction: BEGIN, INSERT, SELECT, then COMMIT (one in five ROLLBACK);
- prepared: psycopg with prepare=True, a read and a write on named prepared statements;
- asyncpg: asyncpg's own prepared statements and a transaction block, on its own event loop;
- cancel: every few seconds `SELECT pg_sleep(3)` cancelled after CANCEL_AFTER_S; a cancel that
  did not land is counted (`cancel_missed`) but is no error (the query may still have been
  waiting for a pooled server when the cancel came);
- storm: every few seconds STORM_CONNECTIONS short connections (connect, SELECT 1, close).
Errors go to an ErrorLog (soak_errors.py), which decides whether each was expected.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
from soak_errors import ErrorLog

Connection = psycopg.Connection[tuple[Any, ...]]
ROWS = 1000  # rows of the soak table
RECONNECT_EVERY = 300  # units of work per connection before a fresh one
PAUSE_S = 0.01  # between units, so the soak leaves CPU to the proxy and PostgreSQL
CANCEL_AFTER_S = 0.5
STORM_CONNECTIONS = 40
STORM_THREADS = 4
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS soak (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS soak_log (id bigserial PRIMARY KEY, worker int NOT NULL,
                                     at timestamptz NOT NULL DEFAULT now());
INSERT INTO soak (id) SELECT g FROM generate_series(1, {ROWS}) AS g ON CONFLICT DO NOTHING;
"""


@dataclass(frozen=True)
class LoadSettings:
    dsn: str  # libpq key=value DSN of the proxy
    readers: int = 3
    writers: int = 2
    transactions: int = 2
    prepared: int = 1
    asyncpg_clients: int = 1
    cancel_every_s: float = 5.0
    storm_every_s: float = 20.0


class Load:
    """Every worker thread; `done` counts units of work that succeeded, by kind."""

    def __init__(self, settings: LoadSettings, errors: ErrorLog) -> None:
        self.settings = settings
        self.errors = errors
        self.done: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        s = self.settings
        plan: list[tuple[str, Callable[[int], None]]] = []
        plan += [("read", self._looping(read_step, "read"))] * s.readers
        plan += [("write", self._looping(write_step, "write"))] * s.writers
        plan += [("transaction", self._looping(transaction_step, "transaction"))] * s.transactions
        plan += [("prepared", self._looping(prepared_step, "prepared"))] * s.prepared
        plan += [("asyncpg", self._asyncpg_worker)] * s.asyncpg_clients
        plan += [("cancel", self._cancel_worker), ("storm", self._storm_worker)]
        for index, (kind, target) in enumerate(plan):
            thread = threading.Thread(target=target, args=(index,), name=f"soak-{kind}-{index}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def count(self, kind: str, units: int = 1) -> None:
        with self._lock:
            self.done[kind] += units

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.done)

    # --- psycopg workers ------------------------------------------------------------------
    def _looping(self, step: Callable[[Connection, int], None], kind: str
                 ) -> Callable[[int], None]:
        def run(worker: int) -> None:
            conn: Connection | None = None
            units = 0
            while not self._stop.is_set():
                try:
                    if conn is None or units >= RECONNECT_EVERY:
                        _close(conn)
                        conn, units = self._connect(kind == "prepared"), 0
                    step(conn, worker)
                    units += 1
                    self.count(kind)
                except Exception as exc:  # every failure is recorded, none stops the soak
                    self.errors.record(kind, exc)
                    _close(conn)
                    conn = None
                self._stop.wait(PAUSE_S)
            _close(conn)
        return run

    def _connect(self, prepared: bool = False) -> Connection:
        # prepare_threshold None: nothing prepared unless a step asks (prepare=True)
        conn: Connection = psycopg.connect(self.settings.dsn, autocommit=True,
                                           prepare_threshold=0 if prepared else None)
        return conn

    def _cancel_worker(self, worker: int) -> None:
        while not self._stop.wait(self.settings.cancel_every_s):
            try:
                with self._connect() as conn:
                    timer = threading.Timer(CANCEL_AFTER_S, conn.cancel_safe)
                    timer.start()
                    try:
                        conn.execute("SELECT pg_sleep(3)")
                        self.count("cancel_missed")
                    except psycopg.errors.QueryCanceled:
                        self.count("cancel")
                    finally:
                        timer.cancel()
            except Exception as exc:
                self.errors.record("cancel", exc)

    def _storm_worker(self, worker: int) -> None:
        with ThreadPoolExecutor(STORM_THREADS, thread_name_prefix="soak-storm") as pool:
            per_thread = [STORM_CONNECTIONS // STORM_THREADS] * STORM_THREADS
            while not self._stop.wait(self.settings.storm_every_s):
                list(pool.map(self._short_connections, per_thread))

    def _short_connections(self, count: int) -> None:
        for _ in range(count):
            try:
                with self._connect() as conn:
                    conn.execute("SELECT 1")
                self.count("storm")
            except Exception as exc:
                self.errors.record("storm", exc)

    # --- asyncpg --------------------------------------------------------------------------
    def _asyncpg_worker(self, worker: int) -> None:
        asyncio.run(self._asyncpg_loop(worker))

    async def _asyncpg_loop(self, worker: int) -> None:
        conn: asyncpg.Connection | None = None
        units = 0
        while not self._stop.is_set():
            try:
                if conn is None or units >= RECONNECT_EVERY:
                    await _aclose(conn)
                    conn, units = await asyncpg.connect(_asyncpg_dsn(self.settings.dsn)), 0
                await asyncpg_step(conn, worker)
                units += 1
                self.count("asyncpg")
            except Exception as exc:
                self.errors.record("asyncpg", exc)
                await _aclose(conn)
                conn = None
            await asyncio.sleep(PAUSE_S)
        await _aclose(conn)


# --- the steps ----------------------------------------------------------------------------
def _row() -> int:
    return random.randint(1, ROWS)


def read_step(conn: Connection, worker: int) -> None:
    conn.execute("SELECT v FROM soak WHERE id = %s", (_row(),)).fetchone()


def write_step(conn: Connection, worker: int) -> None:
    conn.execute("UPDATE soak SET v = v + 1 WHERE id = %s", (_row(),))
    conn.execute("INSERT INTO soak_log (worker) VALUES (%s)", (worker,))


def transaction_step(conn: Connection, worker: int) -> None:
    with conn.transaction(force_rollback=random.random() < 0.2):
        conn.execute("INSERT INTO soak_log (worker) VALUES (%s)", (worker,))
        conn.execute("SELECT count(*) FROM soak WHERE id <= %s", (_row(),)).fetchone()


def prepared_step(conn: Connection, worker: int) -> None:
    conn.execute("SELECT v FROM soak WHERE id = %s", (_row(),), prepare=True).fetchone()
    conn.execute("UPDATE soak SET v = v + 1 WHERE id = %s", (_row(),), prepare=True)


async def asyncpg_step(conn: asyncpg.Connection, worker: int) -> None:
    await conn.fetchval("SELECT v FROM soak WHERE id = $1", _row())
    async with conn.transaction():
        await conn.execute("INSERT INTO soak_log (worker) VALUES ($1)", worker)


def _close(conn: Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


async def _aclose(conn: asyncpg.Connection | None) -> None:
    if conn is not None:
        conn.terminate()  # no graceful close: the connection may be the broken one


def _asyncpg_dsn(libpq: str) -> str:
    """asyncpg wants a URL; the soak's DSN is libpq key=value pairs without spaces in values."""
    parts = dict(item.split("=", 1) for item in libpq.split())
    return (f"postgresql://{parts['user']}:{parts['password']}@{parts['host']}:{parts['port']}"
            f"/{parts['dbname']}?sslmode=disable")
