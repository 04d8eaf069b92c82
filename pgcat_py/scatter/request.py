"""What the client asked of a cross-shard statement: a simple Query, or an extended-protocol
batch up to its Sync (Parse, Bind, Describe, Execute, Close, in any order PostgreSQL takes).

The batch is decoded once here (it is the slow path); the statement's text and parameter
types come from its Parse in the batch, or from the client's earlier Parse of that name.
A batch may end with Flush (asyncpg's prepare): its replies go out without ReadyForQuery,
and the Sync that follows reaches a server on its own. Batches the executor cannot answer
exactly are refused with 0A000: more than one statement or Execute, a row limit on Execute
(a suspended portal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocol import frontend as fe
from ..protocol.errors import FEATURE_NOT_SUPPORTED, ProxyError
from ..protocol.framing import (
    CLOSE,
    DESCRIBE,
    EXECUTE,
    FLUSH,
    PARSE,
    QUERY,
    SYNC,
    unpack_header,
)


def refused(what: str) -> ProxyError:
    return ProxyError(f"{what} is not supported in a cross-shard query",
                      sqlstate=FEATURE_NOT_SUPPORTED)


@dataclass(slots=True)
class ScatterRequest:
    """One statement to run on every shard, and the replies the client expects, in order:
    each step is a frontend message type (and, for Describe, 'S' or 'P')."""

    sql: str
    extended: bool
    param_types: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    param_formats: tuple[int, ...] = ()
    result_formats: tuple[int, ...] = ()
    steps: list[tuple[int, str]] = field(default_factory=list)
    named_parse: tuple[bytes, bytes] | None = None  # (client name + NUL, Parse body after it)
    unnamed_parse: bytes = b""  # the whole unnamed Parse message, kept for the relay

    @property
    def executes(self) -> bool:
        return not self.extended or any(step == EXECUTE for step, _ in self.steps)

    def result_format(self, column: int) -> int:
        formats = self.result_formats
        if not formats:
            return 0
        return formats[0] if len(formats) == 1 else formats[column]


def simple_request(buf: bytes | bytearray, end: int) -> ScatterRequest:
    return ScatterRequest(bytes(buf[5:end - 1]).decode(), extended=False,
                          steps=[(QUERY, "")])


def extended_request(buf: bytes | bytearray, end: int,
                     known_parse: Callable[[str], fe.Parse | None]) -> ScatterRequest:
    """Decode the batch ``buf[:end]`` (it ends with Sync). ``known_parse``: the client's
    earlier Parse of a statement name ("" the unnamed one), if the proxy kept it."""
    pos, parse, bind, msg_type = 0, None, None, 0
    request = ScatterRequest("", extended=True)
    while pos < end:
        msg_type, length = unpack_header(buf, pos)
        raw = bytes(buf[pos:pos + 1 + length])
        message = fe.decode_frontend(msg_type, raw[5:])
        pos += 1 + length
        if isinstance(message, fe.Parse):
            if parse is not None:
                raise refused("a batch with several Parse messages")
            parse = message
            if message.name:
                request.named_parse = (message.name.encode() + b"\0",
                                       raw[5 + len(message.name.encode()) + 1:])
            else:
                request.unnamed_parse = raw
        elif isinstance(message, fe.Bind):
            if bind is not None:
                raise refused("a batch with several Bind messages")
            bind = message
        elif isinstance(message, fe.Execute) and message.max_rows > 0:
            raise refused("Execute with a row limit (a portal fetched in parts)")
        elif msg_type not in (DESCRIBE, EXECUTE, CLOSE, SYNC, FLUSH):
            raise refused(f"message {chr(msg_type)!r} in a batch")
        if msg_type == EXECUTE and request.executes:
            raise refused("a batch with several Execute messages")
        if msg_type != FLUSH:
            detail = message.kind if isinstance(message, fe.Describe | fe.Close) else ""
            request.steps.append((msg_type, detail))
    if msg_type not in (SYNC, FLUSH):  # the idle path cuts batches at either
        raise refused("a batch that does not end with Sync or Flush")
    name = bind.statement if bind is not None else (parse.name if parse is not None else "")
    if parse is None or parse.name != name:
        parse = known_parse(name)
    if parse is None:
        raise refused("a Bind of a statement the proxy has not seen")
    request.sql, request.param_types = parse.query, parse.param_types
    if bind is not None:
        request.params = bind.params
        request.param_formats = bind.param_formats
        request.result_formats = bind.result_formats
    return request


def parse_of(message: bytes) -> fe.Parse:
    """The Parse a stored Parse message (type byte and length included) carries."""
    parse = fe.decode_frontend(PARSE, message[5:])
    assert isinstance(parse, fe.Parse)
    return parse
