"""Prometheus metrics of the running App, read at scrape time (reference/pgcat.md §8).

A custom collector walks the App's pools when scraped, so the relay pays nothing for
metrics: it keeps the plain counters the admin console reads anyway (pool/counters.py,
ServerPool.xact_buckets) and no instrumentation call sits on the hot path. The families,
names, labels and units are pgcat's, so its Grafana dashboard works unchanged:
pgcat_stats_* and pgcat_servers_* and pgcat_databases_* per server address (labels
database, host, index, pool, role, shard, username), pgcat_pools_* per (pool, user).
Ours besides: pgcat_routes_total, pgcat_prepared_cache_*, pgcat_bans and the
pgcat_xact_time_seconds histogram. The HTTP side is exporter.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from .admin import views
from .backend.server import XACT_TIME_BOUNDS
from .pool.counters import Averages, Totals
from .pool.server_pool import ServerPool

if TYPE_CHECKING:
    from .app import App
    from .backend.server import ServerConnection

ADDRESS_LABELS = ("database", "host", "index", "pool", "role", "shard", "username")
MS = 1_000  # pgcat exports query (and xact) time in milliseconds
US = 1_000_000  # and wait time in microseconds; our Totals hold seconds


@dataclass(frozen=True, slots=True)
class Address:
    """One server address of one (pool, user), read once per scrape."""

    labels: tuple[str, ...]  # ADDRESS_LABELS' values
    pool_name: str
    user: str
    pool: ServerPool
    paused: bool
    banned: bool
    totals: Totals


def addresses(app: App, now: float) -> list[Address]:
    found: list[Address] = []
    for (pool_name, user), entry in app.pools.items():
        for shard, servers in enumerate(entry.cluster.shards):
            for index, pool in enumerate(servers):
                t = pool.target
                labels = (t.database, t.host, str(index), pool_name, pool.role, str(shard),
                          user)
                found.append(Address(labels, pool_name, user, pool, entry.cluster.paused,
                                     pool.is_banned(now), pool.counters()))
    return found


# pgcat types these "counter" without a _total suffix (pgcat_stats_total_query_count).
# prometheus-client cannot print that: a CounterMetricFamily's TYPE line and samples get
# "_total" appended, which renames every series the dashboard queries. So they go out
# untyped under pgcat's exact names: rate() and increase() work on untyped series alike,
# and "untyped" claims nothing false (a gauge would say the value may go down).
Stat = Callable[[Totals, Averages], float]
STATS: tuple[tuple[str, str, bool, Stat], ...] = (
    # (name, help, is a counter, value)
    ("total_query_count", "Queries run", True, lambda t, a: t.query_count),
    ("total_query_time", "Time spent in queries, ms", True, lambda t, a: t.query_time * MS),
    ("total_received", "Bytes received from the server", True, lambda t, a: t.bytes_received),
    ("total_sent", "Bytes sent to the server", True, lambda t, a: t.bytes_sent),
    ("total_xact_count", "Transactions run", True, lambda t, a: t.xact_count),
    ("total_xact_time", "Time spent in transactions, ms", True, lambda t, a: t.xact_time * MS),
    ("total_wait_time", "Time clients waited for a connection, µs", True,
     lambda t, a: t.wait_time * US),
    ("avg_query_count", "Queries per second over the last 15 s", False,
     lambda t, a: a.query_count),
    ("avg_query_time", "Mean query time over the last 15 s, ms", False,
     lambda t, a: a.query_time / MS),  # Averages hold µs
    ("avg_recv", "Bytes received per second over the last 15 s", False, lambda t, a: a.recv),
    ("avg_sent", "Bytes sent per second over the last 15 s", False, lambda t, a: a.sent),
    ("avg_errors", "Errors per second over the last 15 s", False, lambda t, a: a.errors),
    ("avg_xact_count", "Transactions per second over the last 15 s", False,
     lambda t, a: a.xact_count),
    ("avg_xact_time", "Mean transaction time over the last 15 s, ms", False,
     lambda t, a: a.xact_time / MS),
    ("avg_wait_time", "Mean wait for a connection over the last 15 s, µs", False,
     lambda t, a: a.wait_time),
)

Server = Callable[[Address], float]
SERVERS: tuple[tuple[str, str, bool, Server], ...] = (
    # pgcat sums these over the live connections only; ours are the address's totals,
    # closed connections included, so they never go down.
    ("bytes_received", "Bytes received from the server", True,
     lambda a: a.totals.bytes_received),
    ("bytes_sent", "Bytes sent to the server", True, lambda a: a.totals.bytes_sent),
    ("transaction_count", "Transactions run", True, lambda a: a.totals.xact_count),
    ("query_count", "Queries run", True, lambda a: a.totals.query_count),
    ("error_count", "Server errors (failed connects, checks, lost connections)", True,
     lambda a: a.totals.errors),
    ("idle_count", "Idle server connections", False, lambda a: a.pool.sv_idle),
    ("active_count", "Server connections in use by a client", False,
     lambda a: a.pool.sv_active),
    ("login_count", "Server connections logging in", False, lambda a: a.pool.opening),
    ("tested_count", "Server connections in a health check", False,
     lambda a: a.pool.checking),
    ("is_banned", "1 if the server is banned", False, lambda a: a.banned),
    ("is_paused", "1 if its pool is paused", False, lambda a: a.paused),
)

# SHOW POOLS columns exported as pgcat_pools_<column> (all gauges).
POOL_COLUMNS = ("cl_idle", "cl_active", "cl_waiting", "sv_idle", "sv_active", "sv_login",
                "sv_tested", "maxwait", "maxwait_us")

Prepared = Callable[[ServerPool], int]
PREPARED: tuple[tuple[str, str, Prepared], ...] = (
    ("hits", "Bind/Describe of a statement already prepared on the connection",
     lambda p: sum(s.statements.hits for s in _live(p))),
    ("misses", "Statements prepared on the connection first",
     lambda p: sum(s.statements.misses for s in _live(p))),
    ("evictions", "Statements closed to make room",
     lambda p: sum(s.statements.evictions for s in _live(p))),
)


def _live(pool: ServerPool) -> list[ServerConnection]:
    return [*pool.idle, *pool.active]


def _number(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"a SHOW POOLS count that is not a number: {value!r}")
    return float(value)


def _family(name: str, help_text: str, labels: Iterable[str],
            counter: bool) -> GaugeMetricFamily | UnknownMetricFamily:
    if counter:
        return UnknownMetricFamily(name, help_text, labels=list(labels))
    return GaugeMetricFamily(name, help_text, labels=list(labels))


class AppCollector(Collector):
    """Reads the App when scraped; runs on the event loop (see exporter.py)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        found = addresses(self.app, now)
        yield from self._stats(found)
        yield from self._pools()
        yield from self._servers([a for a in found if a.pool.size > 0])
        yield from self._databases(found)
        yield from self._ours(found)

    def _stats(self, found: list[Address]) -> Iterator[Metric]:
        for name, help_text, counter, value in STATS:
            family = _family(f"pgcat_stats_{name}", help_text, ADDRESS_LABELS, counter)
            for a in found:
                family.add_metric(a.labels, value(a.totals, a.pool.averages))
            yield family

    def _pools(self) -> Iterator[Metric]:
        columns, rows = views.pools(self.app)
        at = {name: i for i, (name, _oid) in enumerate(columns)}
        for name in POOL_COLUMNS:
            family = GaugeMetricFamily(f"pgcat_pools_{name}", f"SHOW POOLS {name}",
                                       labels=["pool", "user"])
            for row in rows:
                family.add_metric([str(row[0]), str(row[1])], _number(row[at[name]]))
            yield family

    def _servers(self, found: list[Address]) -> Iterator[Metric]:
        for name, help_text, counter, value in SERVERS:
            family = _family(f"pgcat_servers_{name}", help_text, ADDRESS_LABELS, counter)
            for a in found:
                family.add_metric(a.labels, value(a))
            yield family

    def _databases(self, found: list[Address]) -> Iterator[Metric]:
        size = GaugeMetricFamily("pgcat_databases_pool_size", "Maximum server connections",
                                 labels=ADDRESS_LABELS)
        current = GaugeMetricFamily("pgcat_databases_current_connections",
                                    "Server connections now", labels=ADDRESS_LABELS)
        for a in found:
            size.add_metric(a.labels, a.pool.settings.pool_size)
            current.add_metric(a.labels, a.pool.size)
        yield size
        yield current

    def _ours(self, found: list[Address]) -> Iterator[Metric]:
        routes = CounterMetricFamily("pgcat_routes", "Routing decisions (SHOW ROUTES)",
                                     labels=["pool", "user", "shard", "role", "reason"])
        for (pool, user, shard, role, reason), count in sorted(self.app.route_counts().items()):
            routes.add_metric([pool, user, str(shard), role, reason], count)
        yield routes
        for name, help_text, value in PREPARED:
            family = GaugeMetricFamily(f"pgcat_prepared_cache_{name}",
                                       f"{help_text}, summed over the live connections",
                                       labels=ADDRESS_LABELS)
            for a in found:
                family.add_metric(a.labels, value(a.pool))
            yield family
        bans = GaugeMetricFamily("pgcat_bans", "Server addresses banned now",
                                 labels=["pool", "user"])
        banned: dict[tuple[str, str], int] = {key: 0 for key in self.app.pools}
        for a in found:
            banned[(a.pool_name, a.user)] += a.banned
        for (pool, user), count in banned.items():
            bans.add_metric([pool, user], count)
        yield bans
        yield self._xact_histogram(found)

    def _xact_histogram(self, found: list[Address]) -> Metric:
        histogram = HistogramMetricFamily(
            "pgcat_xact_time_seconds", "Transaction time, first byte sent to the answer",
            labels=ADDRESS_LABELS)
        for a in found:
            histogram.add_metric(a.labels, cumulative(a.pool.xact_buckets),
                                 sum_value=a.totals.xact_time)
        return histogram


def cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (XACT_TIME_BOUNDS, then one above the last) as Prometheus's
    cumulative (le, count) pairs ending with +Inf."""
    bounds = [repr(float(b)) for b in XACT_TIME_BOUNDS] + ["+Inf"]
    pairs: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        pairs.append((bound, total))
    return pairs
