"""Replica lag: how far each replica's replay is behind its primary, for routing.

Every lag_check_interval, in each shard with replicas of a pool that asks for it, the
primary's pg_current_wal_lsn() and each replica's pg_last_wal_replay_lsn() are read (on idle
pooled connections, or one opened within pool_size). A replica further behind than
ban_replica_lag (ms, from its last replayed transaction's age while it is behind) or
ban_replica_lag_bytes takes no reads until it catches up (Cluster.candidates), and
read_your_writes uses the same positions: a client that used the primary since time T reads
only from replicas whose replay passed a primary position measured after T (Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cluster import Cluster
    from .server_pool import ServerPool

log = logging.getLogger(__name__)
REPLAY = ("SELECT pg_last_wal_replay_lsn()::text || ' ' || coalesce(floor(extract(epoch FROM "
          "now() - pg_last_xact_replay_timestamp()) * 1000)::bigint, 0)")


def parse_lsn(text: str) -> int:
    """PostgreSQL's "X/Y" write-ahead log position as a number of bytes."""
    high, _, low = text.partition("/")
    return int(high, 16) << 32 | int(low, 16)


async def measure(cluster: Cluster) -> None:
    """Update every replica's position and lag, and its shard's primary position."""
    s = cluster.settings
    for index, shard in enumerate(cluster.shards):
        primaries = [p for p in shard if p.role == "primary"]
        replicas = [p for p in shard if p.role == "replica"]
        if len(primaries) != 1 or not replicas:
            continue
        measured_at = time.monotonic()
        current = await primaries[0].ask("SELECT pg_current_wal_lsn()::text", True)
        if current is None:
            continue
        primary_lsn = parse_lsn(current)
        answers = await asyncio.gather(*(r.ask(REPLAY, True) for r in replicas))
        for replica, answer in zip(replicas, answers, strict=True):
            if answer is not None and answer.split()[0] != "":
                _update(replica, primary_lsn, answer, s.ban_replica_lag, s.ban_replica_lag_bytes)
        cluster.primary_lsn[index].append((measured_at, primary_lsn))


def _update(replica: ServerPool, primary_lsn: int, answer: str, max_ms: int,
            max_bytes: int) -> None:
    lsn_text, _, age = answer.partition(" ")
    replica.replay_lsn = parse_lsn(lsn_text)
    replica.lag_bytes = max(0, primary_lsn - replica.replay_lsn)
    replica.lag_ms = int(age or 0) if replica.lag_bytes else 0
    lagging = bool((max_bytes and replica.lag_bytes > max_bytes)
                   or (max_ms and replica.lag_ms > max_ms))
    if lagging != replica.lagging:
        log.warning("replica %s %s: %d bytes, %d ms behind", replica.target.name,
                    "lags, no reads until it catches up" if lagging else "caught up",
                    replica.lag_bytes, replica.lag_ms)
    replica.lagging = lagging
