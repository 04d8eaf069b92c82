"""A client session around its checkouts, beyond the fast path (session.py keeps that):
bringing a server's settings in line (and replaying a BEGIN the proxy answered) before the
relay starts, answering with an error when no server can be had, waiting out an admin
PAUSE, and moving to the new pool after a reload replaced the client's.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

from ..protocol.errors import CONNECTION_FAILURE, ProxyError
from ..protocol.framing import FUNCTION_CALL, QUERY, SYNC, first_message
from ..router import RouteError
from .idle import process_idle, ready_for_query
from .states import State

if TYPE_CHECKING:
    from ..backend.server import ServerConnection
    from ..pool.cluster import Cluster
    from ..pool.server_pool import ServerPool
    from .session import ClientSession

# Seconds the SQL that brings a server's settings in line with a client's may take.
SYNC_TIMEOUT = 10.0


async def sync_then_link(session: ClientSession, pool: ServerPool,
                         server: ServerConnection) -> None:
    """Apply the client's settings on a server that has other ones, then relay.

    The server is the client's to give back until it is linked: connection_lost
    discards it (and cancels this task) if the client leaves first."""
    held = session.held
    try:
        async with asyncio.timeout(SYNC_TIMEOUT):
            errors = await server.sync_parameters(session.params)
            if not errors and held is not None:  # replay the BEGIN we answered
                errors = await server.simple_query(";".join(held.statements))
    except (ProxyError, TimeoutError) as exc:
        session._syncing = None
        pool.discard(server)
        session.fatal(exc if isinstance(exc, ProxyError) else ProxyError(
            "timed out applying session parameters on the server",
            sqlstate=CONNECTION_FAILURE))
        return
    session._syncing = None
    session.held = None
    if errors:
        pool.release(server) if server.is_idle else pool.release_after_rollback(server)
        session.fatal(ProxyError(errors[0].text, sqlstate=errors[0].sqlstate))
        return
    adopt_spelling(session, server.reported)
    server.synced_key = session.params_key
    if session.is_closed:
        pool.release(server)
        return
    session._link(server, pool)


def adopt_spelling(session: ClientSession, reported: dict[str, tuple[str, str]]) -> None:
    """Keep the server's spelling of the client's settings it reported ("ISO, MDY" for
    "iso"), in the client's own copy: never in the startup settings other clients share."""
    params = session.params
    spelled = {key: reported[key][1] for key in params.keys() & reported.keys()
               if params[key] != reported[key][1]}
    if spelled:
        session.own_params().update(spelled)
    session.params_changed()


def checkout_failed(session: ClientSession, exc: ProxyError) -> None:
    """No server for this transaction (checkout_failure_limit counts it)."""
    session._attempt = None
    if session.is_closed:
        return
    limit = session.cluster.settings.checkout_failure_limit if session.cluster else 0
    if limit and not isinstance(exc, RouteError):  # a refusal is no failed checkout
        session.checkout_failures += 1
        if session.checkout_failures >= limit:
            session.fatal(ProxyError(
                f"checkout failure limit reached ({session.checkout_failures} / {limit}): "
                f"{exc.message}", sqlstate=exc.sqlstate, severity="FATAL"))
            return
    refuse(session, exc)


def refuse(session: ClientSession, exc: ProxyError) -> None:
    """No server: answer the first message with an error, as PostgreSQL would."""
    head = first_message(session._rbuf)
    if head is None:  # a big message only partly read: no way to skip it cleanly
        session.fatal(exc)
        return
    if session.held is not None:
        session.held.failed = True  # PostgreSQL's aborted transaction, until ROLLBACK
    session.error(exc)
    msg_type, end = head
    session.consume(end)
    if msg_type in (QUERY, SYNC, FUNCTION_CALL):  # each answered by a ReadyForQuery
        session.write(ready_for_query(session))
    else:
        session._skip_until_sync = True  # extended protocol: discard until Sync
    session.state = State.IDLE
    session._task = None
    process_idle(session)


def rejoin_pool(session: ClientSession) -> Cluster | None:
    """A reload replaced the client's pool: take the new one for the next transaction
    (pool mode stays as at login, as in pgcat). None when the pool is gone (the client
    got the FATAL)."""
    try:
        cluster, _creds, _mode = session.ctx.find_pool(session.database, session.user)
    except ProxyError as exc:
        session.fatal(exc)
        return None
    session.cluster = cluster
    session.routes_vary = cluster.router.varies
    session.holds_begins = cluster.has_choice
    return cluster


def waiting_for(session: ClientSession, now: float) -> float:
    """Seconds the client has waited for a server (or for RESUME), 0 if it is not."""
    if session.state is not State.CHECKOUT:
        return 0.0
    attempt = session._attempt
    since = attempt.waiting_since() if attempt is not None else None
    since = session._paused_since if since is None else since
    return now - since if since else 0.0


def wait_for_resume(session: ClientSession) -> None:
    """Admin PAUSE: the next transaction waits (as a waiting client) for RESUME."""
    assert session.cluster is not None
    session.state = State.CHECKOUT
    session._paused_since = time.monotonic()
    session.cluster.paused_clients.append(partial(_resumed, session))


def _resumed(session: ClientSession) -> None:
    if session.is_closed or session.state is not State.CHECKOUT or session.server is not None:
        return
    session.state = State.IDLE
    process_idle(session)
