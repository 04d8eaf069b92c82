"""What the admin console's SHOW commands answer, as columns and rows (PgBouncer's column
names, reference/pgcat.md §7), built from the running App; the Prometheus exporter reads
the same views. Times are microseconds, as in PgBouncer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import __version__
from ..config.diff import RESTART_KEYS
from ..config.general import General
from ..config.types import PASSWORD_KEYS
from ..frontend.pins import pin_names
from ..frontend.states import State
from .result import INT8_OID, TEXT_OID

if TYPE_CHECKING:
    from ..app import App
    from ..frontend.session import ClientSession
    from ..pool.cluster import Cluster
    from ..pool.server_pool import ServerPool

Columns = list[tuple[str, int]]
Rows = list[list[object]]
View = tuple[Columns, Rows]
US = 1_000_000


def _text(*names: str) -> Columns:
    return [(name, TEXT_OID) for name in names]


def _ints(*names: str) -> Columns:
    return [(name, INT8_OID) for name in names]


def addresses(app: App) -> Iterator[tuple[str, str, ServerPool]]:
    """(pool name, user, server pool) of every address of every running pool."""
    for (pool_name, user), entry in app.pools.items():
        for pool in entry.cluster.pools:
            yield pool_name, user, pool


def clients_of(app: App, cluster: Cluster) -> list[ClientSession]:
    return [s for s in app.sessions if s.cluster is cluster and s.state is not State.ADMIN]


def pools(app: App) -> View:
    now = time.monotonic()
    rows: Rows = []
    for (pool_name, user), entry in app.pools.items():
        clients = clients_of(app, entry.cluster)
        active = sum(1 for s in clients if s.state is State.LINKED)
        waiting = sum(1 for s in clients if s.state is State.CHECKOUT)
        servers = entry.cluster.pools
        wait = max((p.maxwait(now) for p in servers), default=0.0)
        rows.append([pool_name, user, entry.pool_mode, len(clients) - active - waiting, active,
                     waiting, 0, sum(p.sv_active for p in servers),
                     sum(p.sv_idle for p in servers), 0, sum(p.checking for p in servers),
                     sum(p.opening for p in servers), int(wait), int(wait % 1 * US),
                     int(entry.cluster.paused)])
    return (_text("database", "user", "pool_mode")
            + _ints("cl_idle", "cl_active", "cl_waiting", "cl_cancel_req", "sv_active",
                    "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us",
                    "paused"), rows)


def databases(app: App) -> View:
    now = time.monotonic()
    rows: Rows = []
    for (_pool_name, _user), entry in app.pools.items():
        for pool in entry.cluster.pools:
            t, s = pool.target, pool.settings
            rows.append([t.name, t.host, str(t.port), t.database, t.user, s.pool_size,
                         s.min_pool_size, s.reserve_pool_size, entry.pool_mode, s.pool_size,
                         pool.size, int(entry.cluster.paused), int(pool.is_banned(now)),
                         pool.role])
    return (_text("name", "host", "port", "database", "force_user")
            + _ints("pool_size", "min_pool_size", "reserve_pool") + _text("pool_mode")
            + _ints("max_connections", "current_connections", "paused", "disabled")
            + _text("role"), rows)


STAT_NAMES = ("xact_count", "query_count", "received", "sent", "xact_time", "query_time",
              "wait_time", "errors")


def stats(app: App, totals: bool = True, averages: bool = True) -> View:
    """SHOW STATS (both), STATS_TOTALS (totals) and STATS_AVERAGES (averages), per address."""
    rows: Rows = []
    for pool_name, user, pool in addresses(app):
        row: list[object] = [pool.target.name, pool_name, user]
        if totals:
            t = pool.counters()
            row += [t.xact_count, t.query_count, t.bytes_received, t.bytes_sent,
                    int(t.xact_time * US), int(t.query_time * US), int(t.wait_time * US),
                    t.errors]
        if averages:
            a = pool.averages
            row += [a.xact_count, a.query_count, a.recv, a.sent, a.xact_time, a.query_time,
                    a.wait_time, a.errors]
        rows.append(row)
    prefix = "total_" if totals and averages else ""
    cols = _text("instance", "database", "user")
    if totals:
        cols += _ints(*(prefix + name for name in STAT_NAMES))
    if averages:
        cols += _ints(*("avg_" + name.replace("received", "recv") for name in STAT_NAMES))
    return cols, rows


def clients(app: App) -> View:
    now, mono = time.time(), time.monotonic()
    rows: Rows = []
    for s in sorted(app.sessions, key=lambda s: s.connected_at):
        wait = s.waiting_for(mono)
        peer = s.peer
        rows.append([f"0x{s.process_id:08X}", s.database, s.user,
                     s.params.get("application_name", ""), s.state.value, s.xact_count,
                     s.query_count, s.error_count, int(now - s.connected_at), int(wait),
                     int(wait % 1 * US), peer[0], peer[1],
                     s.server.target.name if s.server is not None else "",
                     ",".join(pin_names(s.pins))])
    return (_text("client_id", "database", "user", "application_name", "state")
            + _ints("transaction_count", "query_count", "error_count", "age_seconds",
                    "maxwait", "maxwait_us")
            + _text("addr") + _ints("port") + _text("server", "pinned"), rows)


def servers(app: App) -> View:
    now = time.monotonic()
    rows: Rows = []
    for pool_name, user, pool in addresses(app):
        live = [(server, "active") for server in pool.active]
        live += [(server, "idle") for server in pool.idle]
        for server, state in live:
            st = server.statements
            rows.append([f"0x{server.process_id:08X}", pool_name, user, pool.target.name,
                         server.reported.get("application_name", ("", ""))[1], state,
                         server.xact_count, server.query_count, server.bytes_sent,
                         server.bytes_received, int(now - server.created_at), st.hits,
                         st.misses, st.evictions, len(st.names)])
    return (_text("server_id", "database_name", "user", "address_id", "application_name",
                  "state")
            + _ints("transaction_count", "query_count", "bytes_sent", "bytes_received",
                    "age_seconds", "prepare_cache_hit", "prepare_cache_miss",
                    "prepare_cache_eviction", "prepare_cache_size"), rows)


def lists(app: App) -> View:
    users = app.config.pools and sum(len(p.users) for p in app.config.pools.values())
    states = [s.state for s in app.sessions]
    servers = [p for _, _, p in addresses(app)]
    rows: Rows = [
        ["databases", len(servers)], ["users", users or 0], ["pools", len(app.pools)],
        ["free_clients", 0], ["used_clients", len(states)],
        ["login_clients", sum(1 for s in states if s is State.LOGIN)],
        ["free_servers", sum(p.sv_idle for p in servers)],
        ["used_servers", sum(p.sv_active for p in servers)],
        ["dns_names", 0], ["dns_zones", 0], ["dns_queries", 0], ["dns_pending", 0],
        ["parked_clients", len(app.parking)]]  # ours: idle clients without a transport
    return _text("list") + _ints("items"), rows


def users(app: App) -> View:
    rows: Rows = [[user, entry.pool_mode] for (_, user), entry in app.pools.items()]
    return _text("name", "pool_mode"), rows


def version(app: App) -> View:
    return _text("version"), [[f"pgcat-py {__version__}"]]


def bans(app: App) -> View:
    now = time.monotonic()
    rows: Rows = []
    for pool_name, user, pool in addresses(app):
        if pool.is_banned(now):
            duration = pool.banned_until - now + (time.time() - pool.banned_at)
            rows.append([pool_name, user, pool.role, pool.target.host, pool.ban_reason,
                         time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(pool.banned_at)),
                         f"{duration:.0f}", f"{pool.banned_until - now:.0f}"])
    return _text("db", "user", "role", "host", "reason", "ban_time", "ban_duration_seconds",
                 "ban_remaining_seconds"), rows


def routes(app: App) -> View:
    """Ours: routing decisions so far, per pool, user, shard, role and reason."""
    rows: Rows = [[*key, count] for key, count in sorted(app.route_counts().items())]
    return (_text("database", "user") + _ints("shard") + _text("role", "reason")
            + _ints("transactions"), rows)


def config(app: App) -> View:
    """Every key of the running config, flattened to its dotted path; passwords never."""
    rows: Rows = []
    defaults = {name: field.default for name, field in General.model_fields.items()
                if not field.is_required()}
    for path, value in _flatten(app.config.model_dump(by_alias=True, exclude={"path"})):
        last = path.rsplit(".", 1)[-1]
        shown = "********" if last in PASSWORD_KEYS and value is not None else _shown(value)
        name = path.removeprefix("general.")
        default = _shown(defaults[name]) if name in defaults else "-"
        changeable = "no" if name in RESTART_KEYS else "yes"
        rows.append([name, shown, default, changeable])
    return _text("key", "value", "default", "changeable"), rows


def _flatten(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{path}.{key}" if path else str(key))
    else:
        yield path, value


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def totals(app: App) -> View:
    """PgBouncer's SHOW TOTALS: SHOW STATS summed over every address, as name/value rows."""
    columns, rows = stats(app)
    names = [name for name, oid in columns if oid == INT8_OID]
    sums = [sum(int(str(row[3 + i])) for row in rows) for i in range(len(names))]
    return _text("name") + _ints("value"), [[n, v] for n, v in zip(names, sums, strict=True)]


def state(app: App) -> View:
    """PgBouncer's SHOW STATE."""
    paused = bool(app.pools) and all(e.cluster.paused for e in app.pools.values())
    return _text("key", "value"), [["active", "no" if paused else "yes"],
                                   ["paused", "yes" if paused else "no"],
                                   ["suspended", "no"]]
