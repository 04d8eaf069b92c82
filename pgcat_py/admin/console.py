"""Admin console session loop and command dispatch (simple Query protocol only, like pgcat).

Commands are matched on whitespace-split, upper-cased tokens after trailing semicolons are
dropped; every answer ends with ReadyForQuery. SHOW answers come from admin/views.py, the
commands that change things from admin/control.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ..conn import ConnectionClosed
from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation
from ..protocol.framing import QUERY, TERMINATE
from ..protocol.frontend import Query, decode_frontend
from ..workers.merge import merge_rows
from . import control, views
from .result import result_set

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
            answer = await handle(app, query.sql)
            session.write(answer + be.READY_IDLE)
    except ProtocolViolation as exc:
        session.fatal(exc)
        return
    except ConnectionClosed:
        pass
    session.close()


async def handle(app: App, sql: str) -> bytes:
    """The answer to one admin query; with several workers, over all of them: views are
    added up (workers/merge.py), commands that change things run in every worker."""
    words = sql.strip().rstrip(";").split()
    verb = words[0].upper() if words else ""
    if verb == "SHOW" and len(words) == 2 and words[1].upper() in SHOW_VIEWS:
        name = words[1].upper()
        columns, rows = SHOW_VIEWS[name](app)
        if app.peers is not None:
            answers = await app.peers.ask_all({"op": "view", "name": name})
            rows = merge_rows(name, columns, [rows, *(a.get("rows", []) for a in answers)])
        return result_set(columns, rows, "SHOW")
    if app.peers is None or verb not in BROADCAST:
        return await _run(app, sql)
    mine, theirs = await asyncio.gather(
        _run(app, sql), app.peers.ask_all({"op": "admin", "sql": sql}, timeout=None))
    errors = [a["error"] for a in theirs if a.get("error")]
    if errors and not mine.startswith(b"E"):
        return control.error(f"{verb} failed in another worker: {errors[0]}")
    return mine


async def run_local(app: App, sql: str) -> str | None:
    """Another worker's admin command, run in this one; the error text, if any."""
    answer = await _run(app, sql)
    if not answer.startswith(b"E"):
        return None
    error = be.decode_backend(answer[0], answer[5:1 + int.from_bytes(answer[1:5])])
    return error.text if isinstance(error, be.NoticeOrError) else "failed"


async def _run(app: App, sql: str) -> bytes:
    """One admin query, in this worker only."""
    words = sql.strip().rstrip(";").split()
    if not words:
        return control.error("Unsupported query against the admin database")
    verb, args = words[0].upper(), words[1:]
    if verb == "SHOW":
        view = SHOW_VIEWS.get(args[0].upper()) if len(args) == 1 else None
        if args and args[0].upper() == "HELP":
            return show_help()
        if view is None:
            return control.error("Unsupported SHOW query against the admin database")
        columns, rows = view(app)
        return result_set(columns, rows, "SHOW")
    if verb == "PAUSE":
        return await control.pause(app, args)
    command = COMMANDS.get(verb)
    if command is None:
        return control.error("Unsupported query against the admin database")
    return command(app, args, sql)


# Commands that change things: with several workers, every worker runs them.
BROADCAST = frozenset({"PAUSE", "RESUME", "KILL", "RELOAD", "SET", "SHUTDOWN", "BAN",
                       "UNBAN", "DISABLE", "ENABLE", "RECONNECT"})


SHOW_VIEWS: dict[str, Callable[[App], views.View]] = {
    "POOLS": views.pools,
    "DATABASES": views.databases,
    "STATS": views.stats,
    "STATS_TOTALS": partial(views.stats, averages=False),
    "STATS_AVERAGES": partial(views.stats, totals=False),
    "CLIENTS": views.clients,
    "SERVERS": views.servers,
    "LISTS": views.lists,
    "USERS": views.users,
    "VERSION": views.version,
    "CONFIG": views.config,
    "BANS": views.bans,
    "ROUTES": views.routes,
    "TOTALS": views.totals,
    "STATE": views.state,
}

COMMANDS: dict[str, Callable[[App, list[str], str], bytes]] = {
    "BAN": lambda app, args, sql: control.ban(app, args),
    "UNBAN": lambda app, args, sql: control.unban(app, args),
    "RESUME": lambda app, args, sql: control.resume(app, args),
    "KILL": lambda app, args, sql: control.kill(app, args),
    "RELOAD": lambda app, args, sql: control.reload(app),
    "SET": lambda app, args, sql: control.set_command(app, sql),
    "SHUTDOWN": lambda app, args, sql: control.shutdown(app),
    "DISABLE": lambda app, args, sql: control.disable(app, args, True),
    "ENABLE": lambda app, args, sql: control.disable(app, args, False),
    "RECONNECT": lambda app, args, sql: control.reconnect(app, args),
}


def show_help() -> bytes:
    lines = ["SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION|LISTS|BANS|ROUTES",
             "SHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|STATE", "SET key = arg", "RELOAD",
             "DISABLE <db>", "ENABLE <db>", "RECONNECT [<db>]",
             "PAUSE [<db>[,<user>]]", "RESUME [<db>[,<user>]]", "KILL <db>[,<user>]",
             "BAN <host> <seconds>", "UNBAN <host>", "SHUTDOWN"]
    return (be.notice_response("Console usage", detail="\n\t".join(lines))
            + be.CommandComplete("SHOW").encode())
