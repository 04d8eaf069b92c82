"""`EXPLAIN ROUTE <statement>`: what the proxy would do with a statement, never running it.

Answered by the proxy (simple protocol, no server held) with one row: the shard and role the
statement's transaction would get and why, the servers it would try in order, and what the
parser saw (write or read, statement kinds, tables, shard keys). For operators checking a
routing rule, and for tests.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from parser.merge_plan import MergeUnsupported, plan_merge

from ..admin.result import INT8_OID, TEXT_OID, result_set
from ..protocol import backend as be
from ..router import RouteError, Router
from ..scatter.writes import explain_write

if TYPE_CHECKING:
    from .session import ClientSession

_EXPLAIN_ROUTE = re.compile(r"\s*explain\s+route\s+(.+?)[\s;]*", re.IGNORECASE | re.DOTALL)
COLUMNS = [("shard", INT8_OID), ("role", TEXT_OID), ("reason", TEXT_OID),
           ("servers", TEXT_OID), ("write", TEXT_OID), ("kinds", TEXT_OID),
           ("tables", TEXT_OID), ("shard_keys", TEXT_OID)]


def explain_route(session: ClientSession, sql: str, status: bytes) -> bytes | None:
    """The answer to ``sql`` if it is EXPLAIN ROUTE (ReadyForQuery included), else None."""
    match = _EXPLAIN_ROUTE.fullmatch(sql)
    cluster = session.cluster
    if match is None or cluster is None:
        return None
    statement = match.group(1)
    ready = be.ReadyForQuery(status.decode()).encode()
    router = cluster.router
    try:
        route = router.route(statement, session.overrides)
        shards = (route.shard,) if route.shard >= 0 else \
            route.shards or tuple(range(len(cluster.shards)))  # a cross-shard SELECT
        servers = [p for shard in shards for p in cluster.candidates(shard, route.role)]
    except RouteError as exc:
        return be.error_response(exc.message, "58000", "ERROR") + ready
    reason = route.reason if route.shard >= 0 else \
        f"{route.reason}; {explain_write(router, statement)}" if route.writes else \
        _merge_note(route.reason, statement, router, cluster.user_aggregates)
    c = router.classify(statement)
    seen = ["", "", "", ""] if c is None else [
        "t" if c.is_write else "f", ",".join(kind.value for kind in c.kinds),
        ",".join(c.tables), ",".join(str(key) for key in c.shard_keys.keys)
        or c.shard_keys.status.name.lower()]
    row = [route.shard, route.role, reason, ",".join(p.target.name for p in servers),
           *seen]
    return result_set(COLUMNS, [row], "EXPLAIN") + ready


def _merge_note(reason: str, statement: str, router: Router,
                user_aggregates: frozenset[str]) -> str:
    """A cross-shard SELECT: how it would be merged, or why it would be refused."""
    try:
        plan = plan_merge(statement, router.settings.parser.sharding_keys, user_aggregates)
    except MergeUnsupported as exc:
        return f"{reason}; refused (0A000): {exc}"
    how = "grouped" if plan.grouped else "merged in order" if plan.order else "concatenated"
    return f"{reason}; {how}; each shard runs: {plan.shard_sql}"
