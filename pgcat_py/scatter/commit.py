"""Shards of a cross-shard write: one primary server each, a transaction on each, and the
end of them all together (issue 12, item 2).

Each shard's part runs inside its own transaction (the executor sends BEGIN with it), so
a statement that fails on one shard is rolled back on every shard: the client sees
PostgreSQL's error and nothing was written. Only when every part has succeeded are the
COMMITs sent, concurrently. There is no two-phase commit: a COMMIT that fails on one shard
after another committed (a deferred constraint, a lost connection) leaves the other
shards' parts in place; the client's error then says which shards committed, in its
DETAIL, after a WARNING saying the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import backend as be
from ..protocol.errors import CONNECTION_FAILURE, ProxyError
from ..protocol.framing import IDLE
from ..router import PRIMARY
from .shard import ShardStream, checkout

if TYPE_CHECKING:
    from ..backend.server import ServerConnection
    from ..frontend.session import ClientSession
    from ..router import Route



@dataclass(slots=True)
class Part:
    """One shard's server during a cross-shard write."""

    shard: int
    stream: ShardStream
    in_transaction: bool = False  # BEGIN sent, COMMIT / ROLLBACK not yet answered


async def open_parts(session: ClientSession, route: Route, shards: Sequence[int]
                     ) -> list[Part]:
    """A server for each shard (the route's role), in line with the client's settings;
    on any failure the others go back and the failure is raised."""
    cluster = session.cluster
    assert cluster is not None
    got = await asyncio.gather(*(checkout(cluster, shard, route.role, session.fresh_since)
                                 for shard in shards), return_exceptions=True)
    parts = [Part(shard, ShardStream(*g)) for shard, g in zip(shards, got, strict=True)
             if not isinstance(g, BaseException)]
    try:
        for result in got:
            if isinstance(result, BaseException):
                raise result
        params, key = session.params, session.params_key
        await asyncio.gather(*(p.stream.sync(params, key) for p in parts))
    except BaseException:
        release(session, parts)
        raise
    _running()[session] = [p.stream.server for p in parts]  # for the client's cancel
    return parts


def _running() -> dict[ClientSession, list[ServerConnection]]:
    from . import _RUNNING  # the package's registry of cross-shard servers (cancel)

    return _RUNNING


def release(session: ClientSession, parts: Sequence[Part]) -> None:
    """Give the servers back; one still in a transaction (or mid-answer) is closed. A
    write on a primary counts for read_your_writes, as the relay's does."""
    _running().pop(session, None)
    for part in parts:
        pool = part.stream.pool
        if pool.role == PRIMARY and pool.read_your_writes:
            session.fresh_since = time.monotonic()
        if part.in_transaction:
            part.stream.at_ready = False  # give_back closes it
        part.stream.give_back()


async def rollback(parts: Sequence[Part]) -> None:
    await asyncio.gather(*(_end(part, "ROLLBACK") for part in parts if part.in_transaction))


async def commit(parts: Sequence[Part], done: str) -> list[be.NoticeOrError]:
    """COMMIT every part; returns WARNINGs for the client (empty when all committed) and
    raises when a COMMIT failed: its error, with the shards that committed in DETAIL.
    ``done``: what the write did, for those messages ("INSERT 0 5")."""
    errors = await asyncio.gather(*(_end(part, "COMMIT") for part in parts))
    failed = [(part, error) for part, error in zip(parts, errors, strict=True)
              if error is not None]
    if not failed:
        return []
    committed = [part.shard for part, error in zip(parts, errors, strict=True) if error is None]
    lost = ", ".join(str(part.shard) for part, _ in failed)
    detail = (f"The cross-shard write ({done}) committed on shard(s) "
              f"{', '.join(map(str, committed)) or 'none'} and failed to commit on shard(s) "
              f"{lost}: there is no two-phase commit across shards.")
    first = failed[0][1]
    if first.fields.get("D"):
        detail = f"{first.fields['D']} {detail}"
    if committed:
        raise PartlyCommitted(first.text, sqlstate=first.sqlstate or CONNECTION_FAILURE,
                              detail=detail)
    raise ProxyError(first.text, sqlstate=first.sqlstate or CONNECTION_FAILURE,
                     detail=first.fields.get("D"))


class PartlyCommitted(ProxyError):
    """Some shards committed their part of a write, others did not."""

    def warning(self) -> bytes:
        fields = {"S": "WARNING", "V": "WARNING", "C": "01000",
                  "M": "a cross-shard write committed on some shards only",
                  "D": self.detail or ""}
        return be.NoticeOrError(fields, is_error=False).encode()


async def _end(part: Part, sql: str) -> be.NoticeOrError | None:
    """Run COMMIT or ROLLBACK on the part's server: None, or why it failed."""
    server = part.stream.server
    try:
        errors = await server.simple_query(sql)
    except ProxyError as exc:
        return be.NoticeOrError({"S": "ERROR", "C": exc.sqlstate, "M": exc.message})
    if errors:
        return errors[0]
    if server.status != IDLE:
        return be.NoticeOrError({"S": "ERROR", "C": CONNECTION_FAILURE,
                                 "M": f"shard {part.shard} did not end its transaction"})
    part.in_transaction = False
    part.stream.at_ready = True
    return None
