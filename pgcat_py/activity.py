"""DB-activity-based routing: pgcat's experimental read-your-writes heuristic, per pool.

pgcat (PR #864, reference/pgcat.md §2.9) keeps two caches for the whole process: a
database is *initializing* from its first query until `db_activity_init_delay` ms later
(reads go to the primary meanwhile: writes made before the proxy started, or before the
database went quiet, are unknown), and is forgotten after `db_activity_ttl` seconds without
a query (time to idle); every write records the tables it touches for
`table_mutation_cache_ms_ttl` ms, and a read of such a table goes to the primary, whose
copy is the fresh one. pgcat keys both caches by database name for the whole process, so
two pools on one database name share them; here each pool has its own tracker (shared by
the pool's users, who use the same servers), and a table is remembered per shard.

Only within one process: with `worker_threads`, a client is served by one worker and sees
its own writes; another client's writes are only seen by the same worker. The clock is
passed in (``now``, time.monotonic() seconds), so nothing here sleeps or reads the time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MS = 1e-3
# Tables remembered at most, per pool: a write storm over many tables evicts the oldest
# entries first (they are the ones closest to expiring anyway).
MAX_REMEMBERED_TABLES = 10_000
INITIALIZING = "db activity initializing"
RECENT_WRITE = "recently written table"


@dataclass(frozen=True, slots=True)
class ActivitySettings:
    """A pool's keys: db_activity_init_delay (ms), db_activity_ttl (s),
    table_mutation_cache_ms_ttl (ms); pgcat's defaults."""

    init_delay_ms: int = 100
    ttl_s: int = 900
    mutation_ttl_ms: int = 50


def table_name(table: str) -> str:
    """The last component of a table name as the parser gives it (``public.t`` -> ``t``):
    writes and reads name a table with or without its schema."""
    return table.rsplit(".", 1)[-1]


class DbActivity:
    """The activity of one pool's database and its recently written tables."""

    def __init__(self, settings: ActivitySettings) -> None:
        self.settings = settings
        self._init_delay = settings.init_delay_ms * MS
        self._ttl = float(settings.ttl_s)
        self._mutation_ttl = settings.mutation_ttl_ms * MS
        self._started: float | None = None  # when the pool became initializing
        self._last_query = 0.0
        # (shard, table) -> when the entry expires; ordered by last write, oldest first.
        self._written: dict[tuple[int, str], float] = {}

    def is_initializing(self, now: float) -> bool:
        """Counts a query: True while the pool is initializing (pgcat's TTI entry: a pool
        quiet for db_activity_ttl seconds starts initializing again)."""
        started = self._started
        if started is None or now - self._last_query >= self._ttl:
            started = self._started = now
        self._last_query = now
        return now - started < self._init_delay

    def primary_reason(self, now: float, shard: int, tables: Iterable[str]) -> str | None:
        """Why a read of ``tables`` on ``shard`` must go to the primary, None if it need
        not. Counts as a query of the pool."""
        if self.is_initializing(now):
            return INITIALIZING
        written = self._written
        if not written:
            return None
        for table in tables:
            name = table_name(table)
            expires = written.get((shard, name))
            if expires is not None and expires > now:
                return f"{RECENT_WRITE}: {name}"
        return None

    def note_write(self, now: float, shard: int, tables: Iterable[str]) -> None:
        """A write to ``tables`` on ``shard`` was routed (to the primary). Counts as a
        query of the pool."""
        self.is_initializing(now)
        written = self._written
        expires = now + self._mutation_ttl
        for table in tables:
            key = (shard, table_name(table))
            written.pop(key, None)  # re-inserted last: the dict stays ordered by expiry
            written[key] = expires
        self._forget_expired(now)

    def _forget_expired(self, now: float) -> None:
        written = self._written
        while written:
            key = next(iter(written))
            if written[key] > now and len(written) <= MAX_REMEMBERED_TABLES:
                return
            del written[key]

    def remembered(self, now: float) -> list[tuple[int, str]]:
        """The (shard, table) entries that have not expired (for tests and the console)."""
        return [key for key, expires in self._written.items() if expires > now]
