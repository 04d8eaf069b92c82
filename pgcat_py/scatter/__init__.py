"""Cross-shard SELECT (issue 12, item 1): one client statement on every shard concerned,
the results merged into PostgreSQL's answer for the same rows in one table.

The router returns a scatter route (Route.shard == SCATTER) for a lone SELECT that needs
several shards when the pool has ``cross_shard_queries = true``; the idle path calls
``start_scatter`` instead of checking out one server. This module takes the client's
statement off its input (a Query, or an extended-protocol batch up to Sync), plans it
(parser/merge_plan.py), runs it (executor.py, one server per shard from the pools, given
back at the end) and resumes the session. While it runs the session is in CHECKOUT: later
input waits in its buffer, as it does for a checkout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from parser.merge_plan import MergeUnsupported, plan_merge

from ..protocol import backend as be
from ..protocol import frontend as fe
from ..protocol.errors import FEATURE_NOT_SUPPORTED, INTERNAL_ERROR, ProxyError
from ..protocol.framing import QUERY, first_message
from .executor import ClientOutput, execute
from .request import ScatterRequest, extended_request, parse_of, simple_request
from .shard import ShardStream, checkout
from .writes import run_writes

if TYPE_CHECKING:
    from ..backend.server import ServerConnection
    from ..frontend.session import ClientSession
    from ..router import Route

log = logging.getLogger(__name__)
Runner = Callable[["ClientSession", ClientOutput], Awaitable[None]]
# The servers of each running cross-shard query, for the client's CancelRequest.
_RUNNING: dict[ClientSession, list[ServerConnection]] = {}


def running_servers(session: ClientSession) -> list[ServerConnection]:
    """The servers a cross-shard query of ``session`` runs on (none if it runs none)."""
    return _RUNNING.get(session, [])


def start_scatter(session: ClientSession, route: Route, run: Runner | None = None) -> None:
    """Run the statement at the start of the client's input (a Query, or a batch the idle
    path has seen whole) on the route's shards, then go on with the session. ``run``:
    what takes and answers the input instead (batch.py's cross-shard batches)."""
    from ..frontend.states import State

    session.state = State.CHECKOUT
    session.route = route
    session._task = asyncio.get_running_loop().create_task(_serve(session, route, run))


async def _serve(session: ClientSession, route: Route, run: Runner | None) -> None:
    from ..frontend.idle import process_idle
    from ..frontend.states import State

    out = ClientOutput(session)
    try:
        if run is not None:
            await run(session, out)
        else:
            runner = run_writes if route.writes else _run  # writes: cross_shard_writes
            await runner(session, route, _take_request(session), out)
    except ProxyError as exc:
        out.add(be.error_response(exc.message, exc.sqlstate, "ERROR", exc.detail)
                + be.READY_IDLE)
    except Exception:  # a bug of ours: this client gets an error, the proxy goes on
        log.exception("cross-shard query of client %s failed", session.process_id)
        out.add(be.error_response("internal error in the pooler (cross-shard query)",
                                  INTERNAL_ERROR) + be.READY_IDLE)
    await out.flush()
    session.query_count += 1
    session.xact_count += 1
    if session.is_closed:
        return
    session.state = State.IDLE
    session._task = None
    process_idle(session)


def _take_request(session: ClientSession) -> ScatterRequest:
    """The client's statement, consumed from its input; named statements are remembered
    as the relay remembers them, for later transactions on single servers."""
    from ..frontend.idle import _batch_end

    buf = session._rbuf
    head = first_message(buf)
    assert head is not None  # the idle path routed a whole message
    if head[0] == QUERY:
        request = simple_request(buf, head[1])
        session.consume(head[1])
        return request
    end = _batch_end(buf)
    assert end is not None and end > 0  # the idle path routed a whole batch
    try:
        request = extended_request(buf, end, lambda name: _known_parse(session, name))
    finally:
        session.consume(end)
    if request.unnamed_parse:
        session.prepared.unnamed_parse = request.unnamed_parse
    if request.named_parse is not None and session.transaction_mode:
        name, body = request.named_parse
        cluster = session.cluster
        assert cluster is not None
        session.prepared.named[name] = cluster.statements.statement(body)
        session._rewriting = True  # as the relay does after a client's first named Parse
    return request


def _known_parse(session: ClientSession, name: str) -> fe.Parse | None:
    if not name:
        parse = session.prepared.unnamed_parse
        return parse_of(parse) if parse else None
    statement = session.prepared.named.get(name.encode() + b"\0")
    if statement is not None:
        return parse_of(statement.parse)
    text = session.statements.get(name)
    return fe.Parse(name, text) if text is not None else None


async def _run(session: ClientSession, route: Route, request: ScatterRequest,
               out: ClientOutput) -> None:
    cluster = session.cluster
    assert cluster is not None
    try:
        plan = plan_merge(request.sql, session.router.settings.parser.sharding_keys,
                          cluster.user_aggregates)
    except MergeUnsupported as exc:
        raise ProxyError(f"{exc} is not supported", sqlstate=FEATURE_NOT_SUPPORTED) from None
    shards = route.shards or tuple(range(len(cluster.shards)))
    if not request.executes:
        shards = shards[:1]  # only described: one shard answers for all
    got = await asyncio.gather(*(checkout(cluster, shard, route.role, session.fresh_since)
                                 for shard in shards), return_exceptions=True)
    streams = [ShardStream(*g) for g in got if not isinstance(g, BaseException)]
    _RUNNING[session] = [s.server for s in streams]
    try:
        for result in got:
            if isinstance(result, BaseException):
                raise result
        await execute(session, streams, plan, request, out)
    finally:
        _RUNNING.pop(session, None)
        for stream in streams:
            stream.give_back()
