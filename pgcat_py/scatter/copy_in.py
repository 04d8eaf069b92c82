"""COPY ... FROM STDIN into a sharded table (issue 12, item 2): every row to its key's shard.

The idle path sees the COPY's Query and the router gives it a write scatter route, so the
whole COPY is handled here instead of by the relay: every shard concerned runs the
client's own COPY statement inside a transaction (commit.py), the client gets the first
shard's CopyInResponse, and its CopyData is read here (the session is not linked to any
server meanwhile), cut into rows (parser/copy_rows.py) and sent on to the shard of each
row's key, in batches. A header line goes to every shard (each skips or checks its own).
At CopyDone every shard finishes; the client gets "COPY <total>" once all committed. A bad
key, a shard's error or the client's CopyFail ends the COPY on every shard (rolled back);
the client's remaining CopyData is read and dropped up to its CopyDone or CopyFail, then
the error is its answer. Text and CSV only, simple protocol only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from parser.copy_plan import CopyPlan, plan_copy
from parser.copy_rows import MissingField, RowCutter, RowTooLong, key_field
from parser.write_split import WriteUnsupported
from sharding import ShardingError, ShardMap

from ..protocol import backend as be
from ..protocol import frontend as fe
from ..protocol.errors import (
    FEATURE_NOT_SUPPORTED,
    PROTOCOL_VIOLATION,
    ProxyError,
)
from ..protocol.framing import (
    COMMAND_COMPLETE,
    COPY_DATA,
    COPY_DONE,
    COPY_FAIL,
    ERROR_RESPONSE,
    FLUSH,
    READY_FOR_QUERY,
    SYNC,
)
from ..protocol.wire import message
from .commit import Part, commit, open_parts, release, rollback

if TYPE_CHECKING:
    from ..frontend.session import ClientSession
    from ..router import Route
    from .executor import ClientOutput
    from .request import ScatterRequest

BATCH = 64 * 1024  # bytes of rows gathered per shard before a CopyData goes out
SERVER_HIGH_WATER = 1 << 20  # bytes unsent to a shard before the COPY waits for it
_COPY_IN_RESPONSE = ord("G")
_MISSING_DATA = "22P04"  # bad_copy_file_format, PostgreSQL's "missing data for column"
_COLUMNS = ("SELECT array_to_json(array_agg(attname ORDER BY attnum))::text "
            "FROM pg_attribute WHERE attrelid = {}::regclass AND attnum > 0 "
            "AND NOT attisdropped AND attgenerated = ''")


async def run_copy(session: ClientSession, route: Route, request: ScatterRequest,
                   out: ClientOutput) -> None:
    """Run the client's COPY FROM STDIN on the route's shards; raises ProxyError."""
    if request.extended:
        raise _unsupported("COPY FROM STDIN in the extended protocol into a sharded table")
    try:
        plan = plan_copy(request.sql)
    except WriteUnsupported as exc:
        raise _unsupported(str(exc)) from None
    shards = route.shards or tuple(range(session.router.settings.shards))
    parts = await open_parts(session, route, shards)
    try:
        position = plan.key_position(session.router.settings.parser.sharding_keys,
                                     await _table_columns(parts[0], plan))
    except WriteUnsupported as exc:
        release(session, parts)
        raise _unsupported(str(exc)) from None
    except BaseException:
        release(session, parts)
        raise
    try:
        await _copy(session, parts, plan, position, request.sql, out)
    finally:
        release(session, parts)


def _unsupported(what: str) -> ProxyError:
    return ProxyError(f"{what} is not supported", sqlstate=FEATURE_NOT_SUPPORTED)


async def _table_columns(part: Part, plan: CopyPlan) -> list[str]:
    """The table's columns in order (COPY's default column list), when none is given."""
    if plan.columns is not None:
        return []
    literal = "'" + plan.table.replace("'", "''") + "'"
    text = await part.stream.server.query_value(_COLUMNS.format(literal))
    return [str(name) for name in json.loads(text or "[]")]


async def _copy(session: ClientSession, parts: Sequence[Part], plan: CopyPlan, position: int,
                sql: str, out: ClientOutput) -> None:
    for part in parts:
        part.in_transaction = True
        part.stream.send([fe.Query("BEGIN").encode(), fe.Query(sql).encode()])
    started = await asyncio.gather(*(_copy_in_response(p) for p in parts))
    failed = next((error for _, error in started if error is not None), None)
    if failed is not None:
        await _end_all(parts, [p for p, (g, _) in zip(parts, started, strict=True) if g],
                       fe.CopyFail("a cross-shard COPY could not start on every shard"))
        await rollback(parts)
        raise _server_error(failed)
    out.add(message(b"G", started[0][0] or b""))
    await out.flush()
    router = _Router(parts, plan, position, session.router.shard_map)
    local = await router.run(session)
    end = fe.CopyDone() if local is None else fe.CopyFail(local.message)
    answers = await _end_all(parts, parts, end)
    error = local or next((_server_error(e) for _, e in answers if e is not None), None)
    if error is not None:
        await rollback(parts)
        raise error
    total = sum(int(tag.rsplit(" ", 1)[-1]) for tag, _ in answers if tag)
    await commit(parts, f"COPY {total}")
    out.add(be.CommandComplete(f"COPY {total}").encode() + be.READY_IDLE)


async def _copy_in_response(part: Part) -> tuple[bytes | None, be.NoticeOrError | None]:
    """Past the BEGIN to the COPY's CopyInResponse: (its payload, None), or (None, the
    error) with the server read to its ReadyForQuery."""
    server, error = part.stream.server, None
    while True:
        msg_type, payload = await server.read_message()
        if msg_type == _COPY_IN_RESPONSE:
            return payload, None
        if msg_type == ERROR_RESPONSE and error is None:
            error = _decoded(payload)
        elif msg_type == READY_FOR_QUERY and error is not None:
            return None, error


async def _end_all(parts: Sequence[Part], copying: Sequence[Part], end: fe.CopyDone |
                   fe.CopyFail) -> list[tuple[str, be.NoticeOrError | None]]:
    """Send ``end`` to the shards still copying and read every shard to its
    ReadyForQuery: (the COPY's tag, the first error) per part of ``parts``."""
    for part in copying:
        part.stream.server.write(end.encode())
    return list(await asyncio.gather(*(_finished(p) for p in parts if p in copying)))


async def _finished(part: Part) -> tuple[str, be.NoticeOrError | None]:
    server, tag, error = part.stream.server, "", None
    while True:
        msg_type, payload = await server.read_message()
        if msg_type == COMMAND_COMPLETE:
            tag = payload[:-1].decode()
        elif msg_type == ERROR_RESPONSE and error is None:
            error = _decoded(payload)
        elif msg_type == READY_FOR_QUERY:
            part.stream.at_ready = True
            return tag, error


def _decoded(payload: bytes) -> be.NoticeOrError:
    error = be.decode_backend(ERROR_RESPONSE, payload)
    assert isinstance(error, be.NoticeOrError)
    return error


def _server_error(error: be.NoticeOrError) -> ProxyError:
    return ProxyError(error.text, sqlstate=error.sqlstate or None, detail=error.fields.get("D"))


class _Router:
    """The client's CopyData, cut into rows, batched per shard."""

    def __init__(self, parts: Sequence[Part], plan: CopyPlan, position: int,
                 shard_map: ShardMap) -> None:
        self.parts, self.plan, self.position, self.shard_map = parts, plan, position, shard_map
        self.index = {part.shard: i for i, part in enumerate(parts)}
        self.batches = [bytearray() for _ in parts]
        self.cutter = RowCutter(plan)
        self.header = plan.header  # the first row still to come is the header

    async def run(self, session: ClientSession) -> ProxyError | None:
        """Route rows up to the client's CopyDone (None) or to an error (returned, after
        the client's input is read to its CopyDone or CopyFail)."""
        error: ProxyError | None = None
        while True:
            msg_type, payload = await session.read_message()
            if msg_type == COPY_DATA:
                if error is None:
                    error = await self._rows(payload)
            elif msg_type == COPY_DONE:
                if error is None:
                    error = await self._rows(None)
                if error is None:
                    await asyncio.gather(*(self._flush(i) for i in range(len(self.parts))))
                return error
            elif msg_type == COPY_FAIL:
                text = payload[:-1].decode(errors="replace")
                return error or ProxyError(f"COPY from stdin failed: {text}",
                                           sqlstate="57014")
            elif msg_type not in (FLUSH, SYNC):  # PostgreSQL ignores these in COPY
                return error or ProxyError(
                    f"unexpected message type 0x{msg_type:02X} during COPY from stdin",
                    sqlstate=PROTOCOL_VIOLATION)

    async def _rows(self, data: bytes | None) -> ProxyError | None:
        """Route the rows ``data`` completes (None: the data ended); an error, if any."""
        try:
            if data is not None:
                rows = self.cutter.feed(data)
            else:
                rest = self.cutter.rest()
                rows = [rest] if rest is not None else []
            for row in rows:
                if self.header:
                    self.header = False
                    for index in range(len(self.parts)):
                        self.batches[index] += row
                    continue
                shard = self.shard_map.shard_for(key_field(self.plan, row, self.position))
                index = self.index[shard]
                self.batches[index] += row
                if len(self.batches[index]) >= BATCH:
                    await self._flush(index)
        except MissingField as exc:
            return ProxyError(str(exc), sqlstate=_MISSING_DATA)
        except RowTooLong as exc:
            return ProxyError(str(exc), sqlstate="54000")
        except WriteUnsupported as exc:
            return _unsupported(str(exc))
        except (ShardingError, ValueError) as exc:
            return ProxyError(str(exc), sqlstate=getattr(exc, "sqlstate", "22023"))
        return None

    async def _flush(self, index: int) -> None:
        batch = self.batches[index]
        if not batch:
            return
        server = self.parts[index].stream.server
        server.write(message(b"d", bytes(batch)))
        batch.clear()
        transport = server.transport
        while (not server.is_closed and transport is not None
               and transport.get_write_buffer_size() > SERVER_HIGH_WATER):
            await asyncio.sleep(0.005)
