"""Cross-shard INSERT, UPDATE and DELETE (issue 12, item 2): the executor.

parser/write_split.py plans the statement per shard (a multi-row INSERT split by its rows'
shards; UPDATE and DELETE unchanged on every shard concerned). Each shard's part runs in a
transaction of its own on that shard's server (commit.py: all commit, or all roll back), and
the client gets one answer, what PostgreSQL sends for the same rows in one table: the
RowDescription once (with RETURNING), the rows of every shard (an INSERT's in the order of
its VALUES rows), one CommandComplete with the summed count ("INSERT 0 5", "UPDATE 7").
Nothing reaches the client before every shard has answered, so an error is the only
answer; the rows held meanwhile are capped by cross_shard_max_rows (53400 past it).
COPY FROM STDIN goes to copy_in.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parser import ParamRef, StatementKind
from parser.copy_plan import plan_copy
from parser.write_split import (
    ShardOf,
    ShardStatement,
    WriteUnsupported,
    check_broadcast,
    split_insert,
)
from sharding import KeyValue, ShardingError

from ..protocol import backend as be
from ..protocol import frontend as fe
from ..protocol.errors import CONFIGURATION_LIMIT_EXCEEDED, FEATURE_NOT_SUPPORTED, ProxyError
from ..protocol.framing import COMMAND_COMPLETE, DATA_ROW, ERROR_RESPONSE, READY_FOR_QUERY
from ..protocol.wire import message
from .commit import Part, PartlyCommitted, commit, open_parts, release, rollback
from .copy_in import run_copy
from .executor import ClientOutput, _answer_parts
from .request import ScatterRequest
from .shard import ShardStream, statement_messages

if TYPE_CHECKING:
    from ..frontend.session import ClientSession
    from ..router import Route, Router

_ROW_DESCRIPTION, _NOTICE = ord("T"), ord("N")
MAX_NOTICES = 100  # NoticeResponses per shard passed on to the client (a trigger's RAISE)
_DESCRIBED = frozenset(b"Ttn")  # RowDescription, ParameterDescription, NoData
_BEGIN = [fe.Parse("", "BEGIN").encode(), fe.Bind("", "", (), (), ()).encode(),
          fe.Execute("", 0).encode()]


@dataclass(slots=True)
class _Answer:
    """What one shard answered, read to its ReadyForQuery."""

    described: list[tuple[int, bytes]] = field(default_factory=list)
    rows: list[bytes] = field(default_factory=list)
    tag: str = ""  # the last CommandComplete's
    error: be.NoticeOrError | None = None
    overflow: bool = False
    notices: list[bytes] = field(default_factory=list)  # NoticeResponses, for the client


async def run_writes(session: ClientSession, route: Route, request: ScatterRequest,
                     out: ClientOutput) -> None:
    """Answer ``request`` (a write the router scattered) into ``out``; raises ProxyError."""
    c = session.router.classify(request.sql)
    kind = c.kinds[0] if c is not None and len(c.kinds) == 1 else None
    if kind is StatementKind.COPY:
        await run_copy(session, route, request, out)
        return
    if kind not in (StatementKind.INSERT, StatementKind.UPDATE, StatementKind.DELETE):
        raise _unsupported("a cross-shard write other than INSERT, UPDATE, DELETE or COPY")
    if not request.executes:
        await _describe_only(session, route, request, out)
        return
    assert kind is not None
    statements = _plan(session, route, request, kind)
    parts = await open_parts(session, route, [s.shard for s in statements])
    try:
        await _write(session, parts, statements, request, kind, out)
    finally:
        release(session, parts)


def _plan(session: ClientSession, route: Route, request: ScatterRequest,
          kind: StatementKind) -> list[ShardStatement]:
    router = session.router
    keys = router.settings.parser.sharding_keys
    try:
        if kind is StatementKind.INSERT:
            return split_insert(request.sql, keys, _shard_of(session, request))
        check_broadcast(request.sql, keys)
    except WriteUnsupported as exc:
        raise _unsupported(str(exc)) from None
    except (ShardingError, ValueError) as exc:
        raise ProxyError(str(exc), sqlstate=getattr(exc, "sqlstate", "22023")) from None
    everything = tuple(range(1, len(request.params) + 1))
    shards = route.shards or tuple(range(router.settings.shards))
    return [ShardStatement(shard, request.sql, everything) for shard in shards]


def explain_write(router: Router, sql: str) -> str:
    """EXPLAIN ROUTE's note on a write the router scattered: how it would run, or why it
    would be refused."""
    c = router.classify(sql)
    kind = c.kinds[0] if c is not None and len(c.kinds) == 1 else None
    keys = router.settings.parser.sharding_keys
    try:
        if kind is StatementKind.COPY:
            plan_copy(sql)
            return "each row to its key's shard (COPY FROM STDIN)"
        if kind is StatementKind.INSERT:
            def shard_of(value: KeyValue | ParamRef) -> int:
                if isinstance(value, ParamRef):
                    raise WriteUnsupported("keys in Bind parameters: split when bound")
                return router.shard_map.shard_for(value)
            parts = split_insert(sql, keys, shard_of)
            return "split: " + "; ".join(
                f"shard {p.shard} gets rows {', '.join(str(i + 1) for i in p.rows)}"
                for p in parts)
        check_broadcast(sql, keys)
        return "on every shard concerned, counts summed"
    except WriteUnsupported as exc:
        return f"refused (0A000): {exc}"
    except (ShardingError, ValueError) as exc:
        return f"refused: {exc}"


def _unsupported(what: str) -> ProxyError:
    return ProxyError(f"{what} is not supported", sqlstate=FEATURE_NOT_SUPPORTED)


def _shard_of(session: ClientSession, request: ScatterRequest) -> ShardOf:
    shard_map = session.router.shard_map

    def shard_of(value: KeyValue | ParamRef) -> int:
        if not isinstance(value, ParamRef):
            return shard_map.shard_for(value)
        index = value.position - 1
        if index >= len(request.params):
            raise WriteUnsupported(f"a sharding key in parameter ${value.position}, "
                                   "which has no value")
        return shard_map.shard_for_param(request.params[index], _param_format(request, index))

    return shard_of


def _param_format(request: ScatterRequest, index: int) -> int:
    formats = request.param_formats
    if not formats:
        return 0
    return formats[0] if len(formats) == 1 else formats[index]


async def _write(session: ClientSession, parts: Sequence[Part],
                 statements: Sequence[ShardStatement], request: ScatterRequest,
                 kind: StatementKind, out: ClientOutput) -> None:
    limit = session.router.settings.cross_shard_max_rows
    for index, (part, statement) in enumerate(zip(parts, statements, strict=True)):
        part.in_transaction = True
        part.stream.send(_BEGIN + _messages(statement, request,
                                            describe=index == 0 and request.extended))
    answers = await asyncio.gather(*(_read_answer(p.stream, limit) for p in parts))
    out.add(b"".join(notice for a in answers for notice in a.notices))
    failed = next((a.error for a in answers if a.error is not None), None)
    held = sum(len(a.rows) for a in answers)
    if failed is not None or held > limit or any(a.overflow for a in answers):
        await rollback(parts)
        if failed is not None:
            raise ProxyError(failed.text, sqlstate=failed.sqlstate or None,
                             detail=failed.fields.get("D"))
        raise ProxyError(f"a cross-shard write returned more than {limit} rows "
                         "(cross_shard_max_rows); nothing was written",
                         sqlstate=CONFIGURATION_LIMIT_EXCEEDED)
    tag = _total_tag(kind, answers)
    try:
        await commit(parts, tag)
    except PartlyCommitted as exc:
        out.add(exc.warning())
        raise
    await _answer(request, answers, _ordered_rows(statements, answers), tag, out)


def _messages(statement: ShardStatement, request: ScatterRequest, *, describe: bool
              ) -> list[bytes]:
    """The shard's statement with only its Bind parameters; with ``describe`` also the
    client's own statement, described (its ParameterDescription and RowDescription)."""
    positions, types = statement.params, request.param_types
    shard_types = tuple(types[p - 1] if p <= len(types) else 0 for p in positions)
    formats = request.param_formats
    if len(formats) > 1:
        formats = tuple(formats[p - 1] for p in positions)
    params = tuple(request.params[p - 1] for p in positions)
    return statement_messages(statement.sql, shard_types, params, formats,
                              request.result_formats, request.sql if describe else None)


async def _read_answer(stream: ShardStream, limit: int) -> _Answer:
    answer = _Answer()
    server = stream.server
    while True:
        msg_type, payload = await server.read_message()
        if msg_type == DATA_ROW:
            if len(answer.rows) < limit:
                answer.rows.append(payload)
            else:
                answer.overflow = True
        elif msg_type == COMMAND_COMPLETE:
            answer.tag = payload[:-1].decode()
        elif msg_type in _DESCRIBED:
            answer.described.append((msg_type, payload))
        elif msg_type == ERROR_RESPONSE and answer.error is None:
            error = be.decode_backend(msg_type, payload)
            assert isinstance(error, be.NoticeOrError)
            answer.error = error
        elif msg_type == _NOTICE and len(answer.notices) < MAX_NOTICES:
            answer.notices.append(message(b"N", payload))
        elif msg_type == READY_FOR_QUERY:
            stream.at_ready = True  # answered; commit.release closes it if in a transaction
            return answer


def _total_tag(kind: StatementKind, answers: Sequence[_Answer]) -> str:
    total = sum(int(a.tag.rsplit(" ", 1)[-1]) for a in answers if a.tag)
    return f"INSERT 0 {total}" if kind is StatementKind.INSERT else f"{kind.value} {total}"


def _ordered_rows(statements: Sequence[ShardStatement], answers: Sequence[_Answer]
                  ) -> list[bytes]:
    """RETURNING rows: an INSERT's in the order of its VALUES rows when each shard returned
    one row per row it inserted (ORMs pair returned ids with their objects by position;
    ON CONFLICT DO NOTHING may return fewer), else shard after shard."""
    pairs = list(zip(statements, answers, strict=True))
    if all(s.rows and len(s.rows) == len(a.rows) for s, a in pairs):
        by_row = {index: row for s, a in pairs for index, row in zip(s.rows, a.rows,
                                                                     strict=True)}
        return [by_row[index] for index in sorted(by_row)]
    return [row for _, a in pairs for row in a.rows]


async def _answer(request: ScatterRequest, answers: Sequence[_Answer], rows: list[bytes],
                  tag: str, out: ClientOutput) -> None:
    if request.extended:
        before, after = _answer_parts(request, answers[0].described[:2])
    else:
        described = answers[0].described[-1]
        before = message(b"T", described[1]) if described[0] == _ROW_DESCRIPTION else b""
        after = be.READY_IDLE
    out.add(before)
    for row in rows:
        await out.row(message(b"D", row))
    out.add(be.CommandComplete(tag).encode() + after)


async def _describe_only(session: ClientSession, route: Route, request: ScatterRequest,
                         out: ClientOutput) -> None:
    """A batch that only describes the write: one shard answers for all."""
    shard = route.shards[0] if route.shards else 0
    parts = await open_parts(session, route, [shard])
    try:
        original = statement_messages(request.sql, request.param_types, (), (), (),
                                      request.sql)
        parts[0].stream.send([*original[:2], fe.Sync().encode()])
        answer = await _read_answer(parts[0].stream, 0)
        if answer.error is not None:
            raise ProxyError(answer.error.text, sqlstate=answer.error.sqlstate or None,
                             detail=answer.error.fields.get("D"))
        before, after = _answer_parts(request, answer.described[:2])
        out.add(before + after)
    finally:
        release(session, parts)
