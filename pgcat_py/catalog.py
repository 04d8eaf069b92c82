"""Write functions from the catalog: a SELECT that calls a VOLATILE user function may write
(`SELECT create_order(...)`), so with read/write splitting it must go to the primary. pgcat
sends it to a replica, where it fails as read-only; only pgpool looks at volatility.

For each pool that splits reads, the proxy asks its primary (shard 0) which functions
outside pg_catalog and information_schema are VOLATILE, adds their names to the pool's
`write_functions` (the configured list), and asks again every REFRESH seconds and after a
reload (a new pool learns anew), so functions created later are learned too. A pool that
merges cross-shard SELECTs learns its user-defined aggregates the same way (scatter/).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pool.cluster import Cluster

log = logging.getLogger(__name__)
REFRESH = 30.0  # seconds between looks at pg_proc
VOLATILE_FUNCTIONS = (
    "SELECT coalesce(string_agg(DISTINCT p.proname, ','), '') FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE p.provolatile = 'v' AND p.prokind IN ('f', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema')")


USER_AGGREGATES = (
    "SELECT coalesce(string_agg(DISTINCT lower(p.proname), ','), '') FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE p.prokind = 'a' AND n.nspname NOT IN ('pg_catalog', 'information_schema')")


async def learn_write_functions(cluster: Cluster) -> None:
    """Ask the primary of shard 0 for its volatile user functions; route calls to them
    to the primary from now on. With cross_shard_queries, also its user-defined
    aggregates, which a merge must refuse (each shard would give its own result)."""
    primaries = [p for p in cluster.shards[0] if p.role == "primary"]
    if not primaries:
        return
    if cluster.router.settings.cross_shard_queries:
        answer = await primaries[0].ask(USER_AGGREGATES, open_if_needed=True)
        if answer is not None:
            cluster.user_aggregates = frozenset(name for name in answer.split(",") if name)
    if not cluster.router.splits_reads:
        return
    answer = await primaries[0].ask(VOLATILE_FUNCTIONS, open_if_needed=True)
    if answer is None:
        return
    names = frozenset(name for name in answer.split(",") if name)
    if cluster.set_learned_write_functions(names):
        log.info("pool %s: %d volatile functions go to the primary: %s",
                 cluster.settings.pool_name, len(names), ", ".join(sorted(names)[:20]))
