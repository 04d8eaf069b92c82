"""A pipelined batch of writes whose Binds are on different shards (issue 12, item 2):
psycopg's and asyncpg's executemany send one Parse (or none: a prepared statement), then
Bind + Execute per row, then one Sync (or, with RETURNING, a Flush, and the Sync once the
results are in: the parts then commit at the Flush). The relay would run the whole batch
on the first Bind's shard; with cross_shard_writes = "allow" each Bind + Execute runs on
its own key's shard instead, every shard's part in a transaction (commit.py: all commit,
or all roll back), and the client gets its replies in its own order.

`batch_plan` decides (cheaply, on the idle path) whether a batch is one: only Parse, Bind,
Describe of the portal, Execute and a final Sync or Flush, unnamed portals, every statement
a lone INSERT, UPDATE or DELETE whose keys are on one shard, and at least two shards in
all. Anything else is left to the relay as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parser import KeyStatus, StatementKind
from sharding import KeyValue, ShardingError, coerce_param

from ..protocol import backend as be
from ..protocol import frontend as fe
from ..protocol.errors import CONFIGURATION_LIMIT_EXCEEDED, ProxyError
from ..protocol.framing import (
    BIND,
    COMMAND_COMPLETE,
    DATA_ROW,
    DESCRIBE,
    ERROR_RESPONSE,
    EXECUTE,
    FLUSH,
    PARSE,
    READY_FOR_QUERY,
    SYNC,
    unpack_header,
)
from ..protocol.wire import message
from ..router import PRIMARY, SCATTER, Route, RouteError
from .commit import Part, PartlyCommitted, commit, open_parts, release, rollback

if TYPE_CHECKING:
    from ..frontend.session import ClientSession
    from .executor import ClientOutput

_WRITES = frozenset({StatementKind.INSERT, StatementKind.UPDATE, StatementKind.DELETE})
_BEGIN = [fe.Parse("", "BEGIN").encode(), fe.Bind("", "", (), (), ()).encode(),
          fe.Execute("", 0).encode()]
_DESCRIBED = frozenset(b"Tn")


@dataclass(slots=True)
class _Item:
    """One Bind + Execute of the batch, and what its shard answered."""

    sql: str
    types: tuple[int, ...]
    bind: fe.Bind
    shard: int = 0
    describe: bool = False
    described: bytes = b""  # the RowDescription or NoData message
    rows: list[bytes] = field(default_factory=list)
    tag: str = ""


@dataclass(slots=True)
class BatchPlan:
    end: int  # the batch is the client's input up to here
    items: list[_Item]
    steps: list[tuple[int, int]]  # (client message type, item index) in the client's order
    parses: list[bytes]  # the batch's Parse messages, whole (remembered as the relay does)


def batch_plan(session: ClientSession, buf: bytearray, end: int) -> BatchPlan | None:
    """The batch's plan when it is a cross-shard batch of writes (see the module
    docstring), else None."""
    try:
        plan = _decoded(session, buf, end)
    except (ValueError, UnicodeDecodeError, IndexError):
        return None  # malformed: the relay and the server will say
    if plan is None or len(plan.items) < 2:
        return None
    for item in plan.items:
        shard = _shard(session, item)
        if shard is None:
            return None
        item.shard = shard
    return plan if len({item.shard for item in plan.items}) > 1 else None


def _decoded(session: ClientSession, buf: bytearray, end: int) -> BatchPlan | None:
    from . import _known_parse

    parses: dict[str, tuple[str, tuple[int, ...]]] = {}
    plan = BatchPlan(end, [], [], [])
    pos = 0
    while pos < end:
        msg_type, length = unpack_header(buf, pos)
        raw = bytes(buf[pos:pos + 1 + length])
        pos += 1 + length
        msg = fe.decode_frontend(msg_type, raw[5:])
        if isinstance(msg, fe.Parse):
            parses[msg.name] = (msg.query, msg.param_types)
            plan.parses.append(raw)
        elif isinstance(msg, fe.Bind) and not msg.portal:
            known = parses.get(msg.statement)
            if known is None:
                parse = _known_parse(session, msg.statement)
                if parse is None:
                    return None
                known = (parse.query, parse.param_types)
            plan.items.append(_Item(known[0], known[1], msg))
        elif (isinstance(msg, fe.Describe) and msg.kind == "P" and not msg.name
              and plan.items and not plan.items[-1].describe):
            plan.items[-1].describe = True
        elif not (isinstance(msg, fe.Execute) and not msg.portal and msg.max_rows == 0
                  and plan.items) and not (msg_type in (SYNC, FLUSH) and pos == end):
            return None
        plan.steps.append((msg_type, len(plan.items) - 1))
    return plan


def _shard(session: ClientSession, item: _Item) -> int | None:
    """The one shard of a write's keys, None when it has none or several."""
    router = session.router
    c = router.classify(item.sql)
    if c is None or len(c.kinds) != 1 or c.kinds[0] not in _WRITES:
        return None
    keys = c.shard_keys
    try:
        if keys.has_params:
            key_type = router.shard_map.key_types[0]
            bind = item.bind
            values: dict[int, KeyValue | None] = {
                i + 1: coerce_param(data, bind.param_format(i), key_type)
                for i, data in enumerate(bind.params)
                if any(getattr(k, "position", 0) == i + 1 for k in keys.keys)}
            keys = keys.bind(values)
        if keys.status is not KeyStatus.FOUND:
            return None
        shards = {router.shard_map.shard_for(key) for key in keys.keys}
    except (ShardingError, ValueError):
        return None
    return shards.pop() if len(shards) == 1 else None


def start_batch(session: ClientSession, plan: BatchPlan) -> None:
    """Run the batch (see the module docstring); the session goes on afterwards."""
    from . import start_scatter

    first = plan.items[0]
    try:  # the role the first statement alone would get (the primary, for a write)
        role = session.router.route(first.sql, session.overrides, bind=[
            (data, first.bind.param_format(i)) for i, data in enumerate(first.bind.params)
        ]).role
    except RouteError:
        role = PRIMARY
    shards = tuple(sorted({item.shard for item in plan.items}))
    route = Route(SCATTER, role, "cross-shard batch of writes", shards, writes=True)

    async def run(session: ClientSession, out: ClientOutput) -> None:
        _take(session, plan)
        await _run(session, route, plan, out)

    start_scatter(session, route, run)


def _take(session: ClientSession, plan: BatchPlan) -> None:
    """Consume the batch; its Parse messages are remembered as the relay remembers them."""
    session.consume(plan.end)
    for raw in plan.parses:
        name_end = raw.index(0, 5)
        if name_end == 5:
            session.prepared.unnamed_parse = raw
        elif session.transaction_mode and session.cluster is not None:
            session.prepared.named[raw[5:name_end + 1]] = \
                session.cluster.statements.statement(raw[name_end + 1:])
            session._rewriting = True


async def _run(session: ClientSession, route: Route, plan: BatchPlan,
               out: ClientOutput) -> None:
    parts = await open_parts(session, route, route.shards)
    try:
        mine = {part.shard: [i for i in plan.items if i.shard == part.shard] for part in parts}
        for part in parts:
            part.in_transaction = True
            part.stream.server.write(b"".join(_messages(mine[part.shard])))
        errors = await asyncio.gather(*(_read(part, mine[part.shard]) for part in parts))
        failed = next((e for e in errors if e is not None), None)
        limit = session.router.settings.cross_shard_max_rows
        if failed is not None or sum(len(i.rows) for i in plan.items) > limit:
            await rollback(parts)
            if failed is not None:
                raise ProxyError(failed.text, sqlstate=failed.sqlstate or None,
                                 detail=failed.fields.get("D"))
            raise ProxyError(f"a cross-shard batch returned more than {limit} rows",
                             sqlstate=CONFIGURATION_LIMIT_EXCEEDED)
        try:
            await commit(parts, f"{len(plan.items)} statements")
        except PartlyCommitted as exc:
            out.add(exc.warning())
            raise
        await _answer(plan, out)
    finally:
        release(session, parts)


def _messages(items: Sequence[_Item]) -> list[bytes]:
    messages, last = list(_BEGIN), None
    for item in items:
        if item.sql != last:  # one Parse for a run of Binds of the same statement
            messages.append(fe.Parse("", item.sql, item.types).encode())
            last = item.sql
        bind = item.bind
        messages.append(fe.Bind("", "", bind.param_formats, bind.params,
                                bind.result_formats).encode())
        if item.describe:
            messages.append(fe.Describe("P", "").encode())
        messages.append(fe.Execute("", 0).encode())
    messages.append(fe.Sync().encode())
    return messages


async def _read(part: Part, items: Sequence[_Item]) -> be.NoticeOrError | None:
    """Read the shard's answer to its ReadyForQuery, each item's replies onto the item;
    the first error, if any."""
    server, error, index, began = part.stream.server, None, -1, False
    while True:
        msg_type, payload = await server.read_message()
        if msg_type == READY_FOR_QUERY:
            part.stream.at_ready = True
            return error
        if msg_type == ERROR_RESPONSE and error is None:
            decoded = be.decode_backend(msg_type, payload)
            assert isinstance(decoded, be.NoticeOrError)
            error = decoded
        elif msg_type == COMMAND_COMPLETE and not began:
            began = True  # BEGIN's
        elif msg_type == ord("2") and began:
            index += 1
        elif 0 <= index < len(items):
            item = items[index]
            if msg_type in _DESCRIBED:
                item.described = message(bytes((msg_type,)), payload)
            elif msg_type == DATA_ROW:
                item.rows.append(payload)
            elif msg_type == COMMAND_COMPLETE:
                item.tag = payload[:-1].decode()


async def _answer(plan: BatchPlan, out: ClientOutput) -> None:
    for msg_type, index in plan.steps:
        if msg_type == PARSE:
            out.add(message(b"1"))
        elif msg_type == BIND:
            out.add(message(b"2"))
        elif msg_type == DESCRIBE:
            out.add(plan.items[index].described)
        elif msg_type == EXECUTE:
            item = plan.items[index]
            for row in item.rows:
                await out.row(message(b"D", row))
            out.add(be.CommandComplete(item.tag).encode())
        elif msg_type == SYNC:
            out.add(be.READY_IDLE)
