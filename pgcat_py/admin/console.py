"""Admin console session loop and command dispatch (simple Query protocol only, like pgcat).

Commands are matched on whitespace-split, upper-cased tokens after trailing semicolons are
dropped; every answer ends with ReadyForQuery.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .. import __version__
from ..conn import ConnectionClosed
from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation
from ..protocol.framing import QUERY, TERMINATE
from ..protocol.frontend import Query, decode_frontend
from .result import INT8_OID, TEXT_OID, result_set

if TYPE_CHECKING:
    from ..app import App
    from ..frontend.session import ClientSession


async def serve_admin(app: App, session: ClientSession) -> None:
    """Answer admin queries until the client leaves."""
    try:
        while not session.is_closed:
            msg_type, payload = await session.read_message()
            if msg_type == TERMINATE:
                break
            if msg_type != QUERY:
                raise ProtocolViolation("only the simple query protocol is supported "
                                        "by the admin console")
            query = decode_frontend(msg_type, payload)
            assert isinstance(query, Query)
            session.write(handle(app, query.sql) + be.READY_IDLE)
    except ProtocolViolation as exc:
        session.fatal(exc)
        return
    except ConnectionClosed:
        pass
    session.close()


def handle(app: App, sql: str) -> bytes:
    words = sql.strip().rstrip(";").split()
    if not words:
        return _error("Unsupported query against the admin database")
    verb = words[0].upper()
    if verb == "SHOW" and len(words) == 2:
        show = SHOW_COMMANDS.get(words[1].upper())
        return show(app) if show else _error("Unsupported SHOW query against the admin database")
    if verb == "SET":
        return be.CommandComplete("SET").encode()
    if verb == "SHUTDOWN" and len(words) == 1:
        app.begin_shutdown()
        return result_set([("success", TEXT_OID)], [["t"]], "SHUTDOWN")
    if verb == "SHOW":
        return _error("Unsupported SHOW query against the admin database")
    return _error("Unsupported query against the admin database")


def _error(text: str) -> bytes:
    return be.error_response(text, "58000", "ERROR")


def show_version(app: App) -> bytes:
    return result_set([("version", TEXT_OID)], [[f"pgcat-py {__version__}"]])


def show_pools(app: App) -> bytes:
    cols = ["database", "user", "pool_mode"]
    nums = ["cl_idle", "cl_active", "cl_waiting", "cl_cancel_req", "sv_active", "sv_idle",
            "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us"]
    now = time.monotonic()
    rows = []
    for (pool_name, user), entry in app.pools.items():
        clients = [s for s in app.sessions if s.cluster is entry.cluster]
        active = sum(1 for s in clients if s.server is not None)
        waiting = sum(1 for s in clients if s.state.value == "waiting")
        pools = entry.cluster.pools
        wait = max((p.maxwait(now) for p in pools), default=0.0)
        rows.append([pool_name, user, entry.pool_mode, len(clients) - active - waiting, active,
                     waiting, 0, sum(p.sv_active for p in pools), sum(p.sv_idle for p in pools),
                     0, 0, sum(p.opening for p in pools), int(wait), int(wait % 1 * 1e6)])
    return result_set([(c, TEXT_OID) for c in cols] + [(n, INT8_OID) for n in nums], rows)


def show_databases(app: App) -> bytes:
    cols = [("name", TEXT_OID), ("host", TEXT_OID), ("port", TEXT_OID),
            ("database", TEXT_OID), ("force_user", TEXT_OID), ("pool_size", INT8_OID),
            ("min_pool_size", INT8_OID), ("reserve_pool", INT8_OID), ("pool_mode", TEXT_OID),
            ("max_connections", INT8_OID), ("current_connections", INT8_OID),
            ("paused", INT8_OID), ("disabled", INT8_OID)]
    rows = []
    for entry in app.pools.values():
        for pool in entry.cluster.pools:
            t, s = pool.target, pool.settings
            rows.append([t.name, t.host, t.port, t.database, t.user, s.pool_size,
                         s.min_pool_size, s.reserve_pool_size, entry.pool_mode, s.pool_size,
                         pool.size, 0, 0])
    return result_set(cols, rows)


def show_routes(app: App) -> bytes:
    """Ours: routing decisions so far, per pool, user, shard, role and reason."""
    cols = [("database", TEXT_OID), ("user", TEXT_OID), ("shard", INT8_OID),
            ("role", TEXT_OID), ("reason", TEXT_OID), ("transactions", INT8_OID)]
    rows = [[*key, count] for key, count in sorted(app.route_counts().items())]
    return result_set(cols, rows)


def show_help(app: App) -> bytes:
    lines = ["SHOW HELP|DATABASES|POOLS|ROUTES|VERSION", "SET key = arg", "SHUTDOWN"]
    return (be.notice_response("Console usage", detail="\n\t".join(lines))
            + be.CommandComplete("SHOW").encode())


SHOW_COMMANDS = {
    "VERSION": show_version,
    "POOLS": show_pools,
    "DATABASES": show_databases,
    "HELP": show_help,
    "ROUTES": show_routes,
}
