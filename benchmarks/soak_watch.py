"""What the soak measures: the proxy's memory and file descriptors, the server connections
PostgreSQL sees, and the admin console's SHOW POOLS.

- RSS and open fds from /proc/PID/status and /proc/PID/fd, summed over the proxy process and
  its descendants (the worker processes when worker_threads > 1);
- server connections: a thread counts the `app` client backends in pg_stat_activity on each
  server every WATCH_EVERY_S and keeps the highest count since the last sample. A count
  counts only when the next one confirms it: a backend may take a moment to exit after the
  proxy closed its connection, while its replacement logs in. Counts taken while a pool is
  being rebuilt by a reload (its old servers finish their transactions while the new pool
  opens its own) are kept apart, as `rebuild_peak`;
- SHOW POOLS through the admin console (sv_* and cl_* of the soak's pool).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgcat_py.localpg import Node

WATCH_EVERY_S = 0.5
APP_BACKENDS = "FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"
CLIENT_BACKENDS = f"SELECT count(*) {APP_BACKENDS}"
# What the backends are doing when there are more than the pool allows: kept for the report.
BACKEND_DETAILS = (f"SELECT client_port, state, now() - backend_start, now() - state_change, "
                   f"left(query, 60) {APP_BACKENDS} ORDER BY backend_start")
KEEP_EXCESS = 10


# --- the proxy's processes ----------------------------------------------------------------
def process_tree(root: int) -> list[int]:
    """`root` and its descendants, found through the parent pid in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def rss_kb(pids: list[int]) -> int:
    """Sum of VmRSS (kB) over `pids`; a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


def show_pools(admin_dsn: str, database: str) -> dict[str, int]:
    """The soak pool's SHOW POOLS counters (summed over its users)."""
    with psycopg.connect(admin_dsn, autocommit=True, prepare_threshold=None) as conn:
        cur = conn.execute("SHOW POOLS")
        names = [column.name for column in cur.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    wanted = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_login")
    mine = [row for row in rows if row["database"] == database]
    return {key: sum(int(row[key]) for row in mine) for key in wanted}


# --- server connections -------------------------------------------------------------------
@dataclass
class Peaks:
    """Highest confirmed counts since the last take(), per server (None: never reachable)."""

    servers: dict[str, int | None]
    rebuild: int = 0  # highest count on any server inside a rebuild window


@dataclass
class ServerWatch:
    nodes: list[Node]
    rebuilding: Any  # Callable[[float], bool]: is a pool being rebuilt at this moment?
    limit: int  # app backends a server should never exceed outside a rebuild
    failure: BaseException | None = None
    excess: list[str] = field(default_factory=list)  # what PostgreSQL showed over the limit
    _peaks: dict[str, int | None] = field(default_factory=dict)
    _rebuild_peak: int = 0
    _last: dict[str, int] = field(default_factory=dict)
    _now: dict[str, int | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ServerWatch:
        self._thread = threading.Thread(target=self._run, name="soak-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def current(self) -> dict[str, int | None]:
        """The latest count per server (None: the server did not answer)."""
        with self._lock:
            return dict(self._now)

    def take(self) -> Peaks:
        """The peaks since the last take(), and start over."""
        with self._lock:
            peaks = Peaks(dict(self._peaks), self._rebuild_peak)
            self._peaks = {node.name: None for node in self.nodes}
            self._rebuild_peak = 0
        return peaks

    def _run(self) -> None:
        connections: dict[str, psycopg.Connection[Any] | None] = {}
        self.take()
        try:
            while not self._stop.wait(WATCH_EVERY_S):
                for node in self.nodes:
                    count = _count(node, connections)
                    self._note(node.name, count, self.rebuilding(time.monotonic()))
                    if count is not None and count > self.limit and len(self.excess) < KEEP_EXCESS:
                        self.excess.append(_details(node, connections, count))
        except BaseException as exc:  # reported by the soak, not lost with the thread
            self.failure = exc
        finally:
            for conn in connections.values():
                if conn is not None:
                    conn.close()

    def _note(self, name: str, count: int | None, rebuilding: bool) -> None:
        with self._lock:
            self._now[name] = count
            if count is None:
                self._last.pop(name, None)
                return
            confirmed = min(count, self._last.get(name, count))
            self._last[name] = count
            if rebuilding:
                self._rebuild_peak = max(self._rebuild_peak, confirmed)
            else:
                self._peaks[name] = max(self._peaks.get(name) or 0, confirmed)


def _count(node: Node, connections: dict[str, psycopg.Connection[Any] | None]) -> int | None:
    """The node's app client backends; None while it is down (reconnects next time)."""
    try:
        conn = connections.get(node.name)
        if conn is None or conn.closed:
            conn = psycopg.connect(node.superuser_dsn("postgres"), autocommit=True,
                                   connect_timeout=2)
            connections[node.name] = conn
        row = conn.execute(CLIENT_BACKENDS).fetchone()
        return int(row[0]) if row is not None else 0
    except psycopg.Error:
        old = connections.pop(node.name, None)
        if old is not None:
            old.close()
        return None


def _details(node: Node, connections: dict[str, psycopg.Connection[Any] | None], count: int
             ) -> str:
    """One line per app backend of ``node``: port, state, age, time in state, query."""
    conn = connections.get(node.name)
    if conn is None:
        return f"{node.name}: {count} backends"
    try:
        rows = conn.execute(BACKEND_DETAILS).fetchall()
    except psycopg.Error as exc:
        return f"{node.name}: {count} backends ({exc})"
    return f"{time.strftime('%H:%M:%S')} {node.name}: " + " | ".join(
        " ".join(str(value) for value in row) for row in rows)
