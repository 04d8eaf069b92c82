"""Running a cross-shard SELECT: every shard concurrently, one merged answer to the client.

The client gets what PostgreSQL would send for the same rows in one table: the
RowDescription of its own statement (PostgreSQL's, from a Describe on the first shard, with
the result formats the client asked for), the merged DataRows, CommandComplete "SELECT n".
Nothing is written before every shard has described its result, so a refusal (0A000) or a
shard's error reaches the client as the only answer. Plain plans stream (a k-way merge when
ordered); grouped plans fold partial rows per group (combine.py), then order and cut.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from parser.merge_plan import Combine, MergePlan

from ..protocol import backend as be
from ..protocol.framing import (
    BIND,
    CLOSE,
    DESCRIBE,
    EXECUTE,
    PARSE,
    QUERY,
    SYNC,
)
from ..protocol.wire import message
from . import datetimes
from .combine import GroupMerger, Row, sort_key
from .finalize import finalize, has_expressions
from .request import ScatterRequest, refused
from .shard import ShardStream, row_values, statement_messages
from .values import FLOAT8, has_binary, to_binary

if TYPE_CHECKING:
    from ..frontend.session import ClientSession

FLUSH_AT = 64 * 1024  # bytes of DataRows gathered per write to the client
CLIENT_HIGH_WATER = 1 << 20  # client bytes unsent before the merge waits for it
_ROW_DESCRIPTION, _PARAMETER_DESCRIPTION, _NO_DATA = ord("T"), ord("t"), ord("n")
_DESCRIBED = frozenset({_ROW_DESCRIPTION, _NO_DATA})


class ClientOutput:
    """Bytes for the client, written in chunks, waiting while the client reads slowly."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.buffer = bytearray()
        self.rows = 0

    def add(self, data: bytes) -> None:
        self.buffer += data

    async def row(self, data: bytes) -> None:
        self.buffer += data
        self.rows += 1
        if len(self.buffer) >= FLUSH_AT:
            await self.flush()

    async def flush(self) -> None:
        session = self.session
        if self.buffer and not session.is_closed:
            session.write(bytes(self.buffer))
        self.buffer.clear()
        transport = session.transport
        while (not session.is_closed and transport is not None
               and transport.get_write_buffer_size() > CLIENT_HIGH_WATER):
            await asyncio.sleep(0.005)


async def execute(session: ClientSession, streams: Sequence[ShardStream], plan: MergePlan,
                  request: ScatterRequest, out: ClientOutput) -> None:
    """Send, describe, merge and answer into ``out``; raises ProxyError (the caller
    answers with it, after what ``out`` holds)."""
    params, key = session.params, session.params_key
    await asyncio.gather(*(s.sync(params, key) for s in streams))
    streams[0].send(_messages(request, plan, describe=True))
    if request.executes:
        for stream in streams[1:]:
            stream.send(_messages(request, plan, describe=False))
    await _described(streams if request.executes else streams[:1], request.executes)
    original = streams[0].replies[:2]  # ParameterDescription, RowDescription / NoData
    if not request.executes:
        before, after = _answer_parts(request, original)
        out.add(before + after)
        return
    fields = _fields(streams[0].replies[-1][1])  # the shard statement's columns
    merge = _Merge(plan, request, fields, session.router.settings.cross_shard_max_rows)
    merge.shortest_floats = _shortest_floats(session.params)
    # The shards' DateStyle (the client's, synced): text dates are read in ISO only.
    merge.iso_dates = streams[0].server.reported.get("datestyle", ("", ""))[1].upper() \
        .startswith("ISO")
    if original[1][0] == _ROW_DESCRIPTION:
        merge.client_types = [f.type_oid for f in _fields(original[1][1])]
    rows = await merge.prepare(streams)
    prefix, suffix = _answer_parts(request, original)
    out.add(prefix)
    await merge.write(streams, rows, out)
    out.add(be.CommandComplete(f"SELECT {out.rows}").encode() + suffix)


def _shortest_floats(params: dict[str, str]) -> bool:
    try:
        return int(params.get("extra_float_digits", "1")) > 0
    except ValueError:
        return False


def _messages(request: ScatterRequest, plan: MergePlan, *, describe: bool) -> list[bytes]:
    if not request.executes:
        original = statement_messages(request.sql, request.param_types, (), (), (),
                                      request.sql)
        return [*original[:2], message(b"S")]
    formats = (0,) if plan.grouped or not request.result_formats else \
        _shard_formats(request, plan)
    return statement_messages(plan.shard_sql, request.param_types, request.params,
                              request.param_formats, formats,
                              request.sql if describe else None)


def _shard_formats(request: ScatterRequest, plan: MergePlan) -> tuple[int, ...]:
    """The client's result formats; hidden sort columns are text (one code: that code)."""
    formats = request.result_formats
    return formats if len(formats) == 1 else formats + (0,) * plan.hidden


async def _described(streams: Sequence[ShardStream], executes: bool) -> None:
    """Every shard up to the RowDescription of its statement (the first also past the
    client statement's own describe); the first error, with every shard drained, raises."""
    async def one(stream: ShardStream, first: bool) -> None:
        needed = int(first) + int(executes)  # RowDescription / NoData messages to wait for
        for _ in range(needed):
            if await stream.read_until(_DESCRIBED) not in _DESCRIBED:
                return  # an error (the stream read to its ReadyForQuery)
        if not executes:
            await stream.finish()
    await asyncio.gather(*(one(s, i == 0) for i, s in enumerate(streams)))
    failed = [s for s in streams if s.error is not None]
    if failed:
        await asyncio.gather(*(s.finish() for s in streams))
        raise failed[0].client_error()
    for stream in streams:
        stream.replies = [r for r in stream.replies if r[0] not in (ord("1"), ord("2"))]


def _fields(payload: bytes) -> list[be.Field]:
    if not payload:
        raise refused("a statement that returns no rows")
    description = be.decode_backend(_ROW_DESCRIPTION, payload)
    assert isinstance(description, be.RowDescription)
    return list(description.fields)


def _client_description(request: ScatterRequest, payload: bytes, portal: bool) -> bytes:
    description = be.decode_backend(_ROW_DESCRIPTION, payload)
    assert isinstance(description, be.RowDescription)
    fields = [f if not portal else be.Field(f.name, f.type_oid, f.table_oid, f.column_attr,
                                            f.type_size, f.type_modifier,
                                            request.result_format(i))
              for i, f in enumerate(description.fields)]
    return be.RowDescription(tuple(fields)).encode()


def _answer_parts(request: ScatterRequest, original: list[tuple[int, bytes]]
                  ) -> tuple[bytes, bytes]:
    """The client's replies before and after its Execute's rows."""
    parameters, described = original[0], original[1]
    parts: list[bytes] = []
    before = b""
    for step, detail in request.steps:
        if step == PARSE:
            parts.append(message(b"1"))
        elif step == BIND:
            parts.append(message(b"2"))
        elif step == CLOSE:
            parts.append(message(b"3"))
        elif step == SYNC:
            parts.append(be.READY_IDLE)
        elif step == DESCRIBE:
            if detail == "S":
                parts.append(message(b"t", parameters[1]))
            parts.append(message(b"n") if described[0] == _NO_DATA else
                         _client_description(request, described[1], detail == "P"))
        elif step == QUERY:
            parts.append(_client_description(request, described[1], portal=False))
        elif step == EXECUTE:
            before, parts = b"".join(parts), []
    if not request.extended:
        before, parts = b"".join(parts), [be.READY_IDLE]
    return before, b"".join(parts)


class _Merge:
    """The rows of one plan, from the shards to the client."""

    def __init__(self, plan: MergePlan, request: ScatterRequest, fields: list[be.Field],
                 max_rows: int) -> None:
        self.plan, self.request, self.max_rows = plan, request, max_rows
        self.types = [f.type_oid for f in fields]
        self.binary = [f.format_code == 1 for f in fields]
        self.width = len(fields) - plan.hidden if not plan.grouped else \
            len(plan.columns) - plan.hidden
        self.key: Callable[[Row], Any] = lambda row: 0
        self.client_types: list[int] = []  # of the client's own statement's columns
        self.binary_out: list[int] = []  # visible columns the client wants in binary
        self.shortest_floats = True  # extra_float_digits > 0 (PostgreSQL's default, 1)
        self.iso_dates = False  # DateStyle ISO: dates and times in text can be compared

    async def prepare(self, streams: Sequence[ShardStream]) -> list[Row] | None:
        """Grouped plans: every group, merged, filtered and ordered. Plain: None (they
        stream); the sort key is checked here, before the client sees anything."""
        plan = self.plan
        if not plan.grouped:
            if plan.order:
                self.key = sort_key(plan.order, self.types, self.binary, self.iso_dates)
            return None
        self.binary_out = [i for i in range(self.width) if self.request.result_format(i)]
        for column in self.binary_out:
            kind = self.client_types[column]
            if not has_binary(kind) or (kind in datetimes.TYPES and kind != datetimes.UUID
                                        and not self.iso_dates):
                raise refused(f"a binary result of type {self.client_types[column]} from a "
                              "grouped query")
        merger = GroupMerger(plan, self.types, self.max_rows, self.iso_dates)
        if not self.shortest_floats and any(
                t == FLOAT8 and c.combine in (Combine.SUM, Combine.AVG)
                for c, t in zip(plan.columns, merger.types, strict=True)):
            # float8out prints 15 + extra_float_digits significant digits then, not the
            # shortest exact ones the merge reproduces.
            raise refused("a merged float8 sum or avg with extra_float_digits <= 0")
        for stream in streams:  # all run concurrently; their rows wait in the sockets
            while (payload := await stream.next_row()) is not None:
                merger.add(row_values(payload))
        rows = merger.rows()
        if has_expressions(plan):  # evaluated by PostgreSQL on the first shard's server
            await finalize(streams[0], plan, rows, merger.types, self.shortest_floats)
        rows = merger.distinct(merger.having(rows))
        if plan.order and rows:
            rows.sort(key=sort_key(plan.order, merger.types, [False] * len(merger.types),
                                   self.iso_dates))
        return rows

    async def write(self, streams: Sequence[ShardStream], rows: list[Row] | None,
                    out: ClientOutput) -> None:
        plan = self.plan
        stop = None if plan.limit is None else plan.offset + plan.limit
        if rows is not None:
            for row in itertools.islice(rows, plan.offset, stop):
                for column in self.binary_out:
                    data = row[column]
                    if data is not None:
                        row[column] = to_binary(data, self.client_types[column])
                await out.row(be.DataRow(tuple(row[:self.width])).encode())
            return
        source = self._merged(streams) if plan.order else self._concatenated(streams)
        skip, index = plan.offset, 0
        async for payload in source:
            index += 1
            if index <= skip:
                continue
            if stop is not None and index > stop:
                break
            if plan.hidden:
                await out.row(be.DataRow(tuple(row_values(payload)[:self.width])).encode())
            else:
                await out.row(message(b"D", payload))
        await asyncio.gather(*(s.finish() for s in streams))

    async def _concatenated(self, streams: Sequence[ShardStream]) -> Any:
        for stream in streams:
            while (payload := await stream.next_row()) is not None:
                yield payload

    async def _merged(self, streams: Sequence[ShardStream]) -> Any:
        """The k-way merge: one row per shard held, the smallest goes next."""
        key: Callable[[Row], Any] = self.key
        heap: list[tuple[Any, int, bytes]] = []
        for index, stream in enumerate(streams):
            payload = await stream.next_row()
            if payload is not None:
                heap.append((key(row_values(payload)), index, payload))
        heapq.heapify(heap)
        while heap:
            _key, index, payload = heap[0]
            yield payload
            following = await streams[index].next_row()
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (key(row_values(following)), index, following))
