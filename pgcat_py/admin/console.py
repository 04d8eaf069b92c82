"""Admin console session loop and command dispatch (simple Query protocol only, like pgcat).

Commands are matched on whitespace-split, upper-cased tokens after trailing semicolons are
dropped; every answer ends with ReadyForQuery. SHOW answers come from admin/views.py, the
commands that change things from admin/control.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ..conn import ConnectionClosed
from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation
from ..protocol.framing import QUERY, TERMINATE
from ..protocol.frontend import Query, decode_frontend
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
}

COMMANDS: dict[str, Callable[[App, list[str], str], bytes]] = {
    "BAN": lambda app, args, sql: control.ban(app, args),
    "UNBAN": lambda app, args, sql: control.unban(app, args),
    "RESUME": lambda app, args, sql: control.resume(app, args),
    "KILL": lambda app, args, sql: control.kill(app, args),
    "RELOAD": lambda app, args, sql: control.reload(app),
    "SET": lambda app, args, sql: control.set_command(app, sql),
    "SHUTDOWN": lambda app, args, sql: control.shutdown(app),
}


def show_help() -> bytes:
    lines = ["SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION|LISTS|BANS|ROUTES",
             "SHOW STATS|STATS_TOTALS|STATS_AVERAGES", "SET key = arg", "RELOAD",
             "PAUSE [<db>[,<user>]]", "RESUME [<db>[,<user>]]", "KILL <db>[,<user>]",
             "BAN <host> <seconds>", "UNBAN <host>", "SHUTDOWN"]
    return (be.notice_response("Console usage", detail="\n\t".join(lines))
            + be.CommandComplete("SHOW").encode())
