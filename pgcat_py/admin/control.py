"""The admin console's commands that change things: BAN, UNBAN, PAUSE, RESUME, KILL,
RELOAD, SET, SHUTDOWN (PgBouncer's meanings, pgcat's argument forms where they differ).
Each returns the answer's bytes, ReadyForQuery excluded; bad arguments get an ERROR.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..config import ConfigError
from ..frontend.states import State
from ..protocol import backend as be
from ..protocol.errors import AdminShutdown
from ..reload import set_key
from .result import TEXT_OID, result_set
from .views import addresses, clients_of

if TYPE_CHECKING:
    from ..app import App
    from ..pool.cluster import Cluster

log = logging.getLogger(__name__)
CONFIG_FILE_ERROR = "F0000"
OBJECT_NOT_IN_PREREQUISITE_STATE = "55000"
PAUSE_POLL = 0.05  # seconds between looks at whether paused pools' transactions ended


def error(text: str, sqlstate: str = "58000") -> bytes:
    return be.error_response(text, sqlstate, "ERROR")


def _host_rows(app: App, host: str, banned: bool) -> list[list[object]]:
    """Addresses on ``host``, banned now or not, as (db, user, role, host) rows."""
    now = time.monotonic()
    return [[pool_name, user, pool.role, pool.target.host]
            for pool_name, user, pool in addresses(app)
            if pool.target.host == host and pool.is_banned(now) == banned]


_HOST_COLUMNS = [("db", TEXT_OID), ("user", TEXT_OID), ("role", TEXT_OID), ("host", TEXT_OID)]


def ban(app: App, args: list[str]) -> bytes:
    if len(args) != 2:
        return error("usage: BAN hostname duration_seconds")
    try:
        seconds = int(args[1])
    except ValueError:
        return error("duration_seconds must be an integer")
    if seconds <= 0:
        return error("duration_seconds must be >= 0")
    rows = _host_rows(app, args[0], banned=False)
    for _pool_name, _user, pool in addresses(app):
        if pool.target.host == args[0]:
            pool.ban(f"AdminBan({seconds})", seconds=float(seconds))
    return result_set(_HOST_COLUMNS, rows, "BAN")


def unban(app: App, args: list[str]) -> bytes:
    if len(args) != 1:
        return error("UNBAN command requires a hostname to unban")
    rows = _host_rows(app, args[0], banned=True)
    for _pool_name, _user, pool in addresses(app):
        if pool.target.host == args[0] and pool.banned_until:
            pool.unban()  # logged there
    return result_set(_HOST_COLUMNS, rows, "UNBAN")


def _clusters(app: App, args: list[str]) -> list[Cluster] | bytes:
    """The pools a PAUSE / RESUME / KILL names: all; `db` (every user); or `db,user`."""
    if not args:
        return [entry.cluster for entry in app.pools.values()]
    spec = "".join(args)
    database, _, user = spec.partition(",")
    found = [entry.cluster for (db, u), entry in app.pools.items()
             if db == database and (not user or u == user)]
    if not found:
        return error(f"No pool configured for database: {database}"
                     + (f", user: {user}" if user else ""), OBJECT_NOT_IN_PREREQUISITE_STATE)
    return found


async def pause(app: App, args: list[str]) -> bytes:
    """New transactions of the pools wait; answered once their running ones ended."""
    clusters = _clusters(app, args)
    if isinstance(clusters, bytes):
        return clusters
    for cluster in clusters:
        cluster.paused = True
    log.info("paused %s", " ".join(args) or "all pools")
    while any(s.state is State.LINKED for c in clusters for s in clients_of(app, c)):
        await asyncio.sleep(PAUSE_POLL)
    return be.CommandComplete("PAUSE").encode()


def resume(app: App, args: list[str]) -> bytes:
    clusters = _clusters(app, args)
    if isinstance(clusters, bytes):
        return clusters
    for cluster in clusters:
        cluster.resume()
    log.info("resumed %s", " ".join(args) or "all pools")
    return be.CommandComplete("RESUME").encode()


def kill(app: App, args: list[str]) -> bytes:
    """Drop every client and server connection of the pools now; new transactions wait
    for RESUME (PgBouncer's KILL)."""
    if not args:
        return error("usage: KILL db[,user]")
    clusters = _clusters(app, args)
    if isinstance(clusters, bytes):
        return clusters
    for cluster in clusters:
        cluster.paused = True
        for session in clients_of(app, cluster):
            session.fatal(AdminShutdown())
        for pool in cluster.pools:
            for server in list(pool.idle):
                pool.discard(server)
    log.warning("killed the connections of %s", " ".join(args))
    return be.CommandComplete("KILL").encode()


def disable(app: App, args: list[str], disabled: bool) -> bytes:
    """DISABLE db: new client logins to it are refused (ENABLE undoes it); clients already
    connected go on (PgBouncer's)."""
    verb = "DISABLE" if disabled else "ENABLE"
    if len(args) != 1:
        return error(f"usage: {verb} <db>")
    clusters = _clusters(app, args)
    if isinstance(clusters, bytes):
        return clusters
    for cluster in clusters:
        cluster.disabled = disabled
    log.info("%sd new logins to %s", verb.lower(), args[0])
    return be.CommandComplete(verb).encode()


def reconnect(app: App, args: list[str]) -> bytes:
    """RECONNECT [db]: every server connection open now is closed once released (idle ones
    at once) and replaced by a new one as needed (PgBouncer's)."""
    clusters = _clusters(app, args)
    if isinstance(clusters, bytes):
        return clusters
    for cluster in clusters:
        for pool in cluster.pools:
            pool.reconnect()
    return be.CommandComplete("RECONNECT").encode()


def reload(app: App) -> bytes:
    try:
        app.reload()
    except ConfigError as exc:
        log.error("RELOAD refused, the running config stays: %s", exc)
        return error(f"RELOAD refused, the running config stays: {exc}", CONFIG_FILE_ERROR)
    return be.CommandComplete("RELOAD").encode()


def set_command(app: App, sql: str) -> bytes:
    """`SET key = value` / `SET key TO value`: changes the running config (until the next
    reload from the file). Anything else after SET (drivers' own SETs) is acknowledged."""
    body = sql.strip().rstrip(";")[3:].strip()
    key, sep, value = body.partition("=")
    if not sep:
        key, sep, value = body.partition(" TO ") if " TO " in body else body.partition(" to ")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value or key.lower() in DRIVER_SETTINGS:
        return be.CommandComplete("SET").encode()
    try:
        set_key(app, key, value)
    except ConfigError as exc:
        return error(f"SET refused: {exc}", CONFIG_FILE_ERROR)
    log.info("admin SET %s", key)
    return be.CommandComplete("SET").encode()


# What drivers and psql send on connect: acknowledged, never config keys.
DRIVER_SETTINGS = frozenset({"client_encoding", "datestyle", "extra_float_digits",
                             "application_name", "timezone", "search_path",
                             "standard_conforming_strings", "intervalstyle"})


def shutdown(app: App) -> bytes:
    app.begin_shutdown()
    return result_set([("success", TEXT_OID)], [["t"]], "SHUTDOWN")
