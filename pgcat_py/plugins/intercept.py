"""pgcat's intercept plugin: canned answers to configured queries, with no server involved.

Tools send catalog probes a pooler's server may not answer as they expect (IntelliJ's
`select current_database() as a, current_schemas(false) as b`); the intercept plugin answers
them from the config: RowDescription with pgcat's type mapping, one DataRow per `result` row
(`${USER}` and `${DATABASE}` filled in, an empty string sent as NULL), CommandComplete and
ReadyForQuery. Sans-IO: text in, bytes out.

Comparison. pgcat re-serialises each parsed statement with sqlparser, lower-cases it and
compares it with the configured query lower-cased, so a configured query matches only if
written the way sqlparser prints it. We normalise both sides the same way, with sqlglot
(which the parser library already uses): keyword case, spacing, comments, optional `AS`
and `::` casts stop mattering, and a configured query matches every spelling pgcat's would.
Literals are cut out first by the parser library's lexer, so the sqlglot result is cached
per query *shape* (a pool with intercept on pays sqlglot once per shape, as the router
does) and the literal values are compared apart, lower-cased as pgcat does. A whole query
text is compared, so a multi-statement text matches only a configured multi-statement
query (pgcat answers the matching statements of such a text and silently drops the rest).

Extended protocol (pgcat defers its canned answer to Sync and sends it as is, which drivers
do not expect): a batch up to its Sync whose every Parse and Bind is of an intercepted query
is answered as PostgreSQL would answer it: ParseComplete, BindComplete, ParameterDescription
and RowDescription (or NoData) for Describe, DataRows and `SELECT n` for Execute,
CloseComplete, ReadyForQuery. Binary result formats are honoured for text, bool, int4 and
oid columns; other columns are sent as text and say so in their RowDescription.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot

from parser.lexer import lex

from ..config.plugins import Intercept
from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation
from ..protocol.frontend import Bind, Close, Describe, Execute, Parse, decode_frontend

# pgcat's mapping of `schema` type names (src/plugins/intercept.rs); anything else is `any`.
TYPE_OIDS = {"text": 25, "anyarray": 2277, "oid": 26, "bool": 16, "int4": 23}
ANY_OID = 2276
TYPE_SIZES = {25: -1, 2277: -1, 26: 4, 16: 1, 23: 4, ANY_OID: 4}  # pg_type.typlen
TEXT, BINARY = 0, 1
SHAPE_CACHE_SIZE = 1024
PARSE_COMPLETE = be.Bare("1").encode()
BIND_COMPLETE = be.Bare("2").encode()
CLOSE_COMPLETE = be.Bare("3").encode()
NO_DATA = be.Bare("n").encode()
_TRUE = frozenset({"t", "true", "1", "on", "yes", "y"})


@functools.lru_cache(maxsize=SHAPE_CACHE_SIZE)
def _normalised_shape(shape: str) -> str:
    try:
        trees = sqlglot.parse(shape, read="postgres")
        text = "; ".join(tree.sql(dialect="postgres") for tree in trees if tree is not None)
    except Exception:  # sqlglot raises ParseError, TokenError and others: spacing only
        text = " ".join(shape.replace(";", " ; ").split()).strip("; ")
    return text.lower()


def normalise(sql: str) -> str | None:
    """The comparable form of a query text; None when the lexer cannot cut it safely."""
    shape, literals, unsafe = lex(sql)
    if unsafe is not None:
        return None
    return _normalised_shape(shape) + "".join("\0" + literal.lower() for literal in literals)


def _compact_length(text: str) -> int:
    return len(text) - sum(text.count(c) for c in " \t\n\r")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int

    def field(self, format_code: int) -> be.Field:
        return be.Field(self.name, self.type_oid, type_size=TYPE_SIZES[self.type_oid],
                        format_code=format_code)

    def can_send_binary(self) -> bool:
        return self.type_oid in (25, 16, 23, 26)

    def binary(self, value: str) -> bytes:
        oid = self.type_oid
        if oid == 23:
            return struct.pack("!i", int(value))
        if oid == 26:
            return struct.pack("!I", int(value))
        if oid == 16:
            return b"\x01" if value.lower() in _TRUE else b"\x00"
        return value.encode()


@dataclass(frozen=True, slots=True)
class Canned:
    """One configured answer."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]

    def formats(self, result_formats: tuple[int, ...]) -> tuple[int, ...]:
        """Each column's format for a Bind's result format codes (text where binary
        cannot be had)."""
        n = len(self.columns)
        wanted = (result_formats * n if len(result_formats) == 1
                  else result_formats if len(result_formats) == n else (TEXT,) * n)
        return tuple(BINARY if f == BINARY and c.can_send_binary() else TEXT
                     for f, c in zip(wanted, self.columns, strict=True))

    def row_description(self, formats: tuple[int, ...]) -> bytes:
        if not self.columns:
            return NO_DATA
        fields = tuple(c.field(f) for c, f in zip(self.columns, formats, strict=True))
        return be.RowDescription(fields).encode()

    def data_rows(self, user: str, database: str, formats: tuple[int, ...]) -> bytes:
        out = []
        for row in self.rows:
            values: list[bytes | None] = []
            for value, column, fmt in zip(row, self.columns, formats, strict=False):
                value = value.replace("${USER}", user).replace("${DATABASE}", database)
                if not value:
                    values.append(None)  # pgcat: an empty string is NULL
                elif fmt == BINARY:
                    values.append(column.binary(value))
                else:
                    values.append(value.encode())
            out.append(be.DataRow(tuple(values)).encode())
        out.append(be.CommandComplete(f"SELECT {len(self.rows)}").encode())
        return b"".join(out)

    def simple_answer(self, user: str, database: str) -> bytes:
        """The answer to a Query, ReadyForQuery excepted."""
        formats = (TEXT,) * len(self.columns)
        head = be.RowDescription(tuple(c.field(TEXT) for c in self.columns)).encode()
        return head + self.data_rows(user, database, formats)


class Interceptor:
    """The intercept plugin of one pool: configured queries by their normalised text."""

    def __init__(self, config: Intercept) -> None:
        self.answers: dict[str, Canned] = {}
        for query in config.queries.values():
            key = normalise(query.query)
            if key is None:
                continue  # an unterminated quote: it can never match (nor in pgcat)
            columns = tuple(Column(name, TYPE_OIDS.get(kind, ANY_OID))
                            for name, kind in (tuple(pair[:2]) for pair in query.columns))
            self.answers[key] = Canned(columns, tuple(tuple(row) for row in query.result))
        # Texts much longer than every configured query cannot be one of them: skip the
        # lexer and the cache for those (sqlglot adds a little, never doubles a text).
        longest = max((_compact_length(q.query) for q in config.queries.values()), default=0)
        self._limit = 2 * longest + 64

    def match(self, sql: str) -> Canned | None:
        if not self.answers:
            return None
        if len(sql) > self._limit and _compact_length(sql) > self._limit:
            return None
        key = normalise(sql)
        return None if key is None else self.answers.get(key)

    def batch_reply(self, messages: list[tuple[int, bytes]], statements: Mapping[str, str],
                    user: str, database: str, status: str) -> BatchReply | None:
        """The answer to an extended-protocol batch ending with Sync, if every statement in
        it is intercepted; None sends the batch to a server."""
        try:
            return _BatchAnswer(self, statements, user, database).run(messages, status)
        except (ValueError, IndexError, struct.error, ProtocolViolation):
            return None  # malformed: the server will say so


@dataclass(frozen=True, slots=True)
class BatchReply:
    reply: bytes
    named: dict[str, str | None]  # the client's statement names now: SQL, or None if closed


class _Unanswerable(Exception):
    """A message of the batch is not about an intercepted query."""


class _BatchAnswer:
    """One batch, message by message, as PostgreSQL answers it."""

    def __init__(self, interceptor: Interceptor, statements: Mapping[str, str], user: str,
                 database: str) -> None:
        self.interceptor = interceptor
        self.statements = statements
        self.user, self.database = user, database
        self.prepared: dict[str, tuple[Canned, tuple[int, ...]]] = {}
        self.portals: dict[str, tuple[Canned, tuple[int, ...]]] = {}
        self.named: dict[str, str | None] = {}
        self.used = False  # an intercepted statement was named by some message

    def run(self, messages: list[tuple[int, bytes]], status: str) -> BatchReply | None:
        out: list[bytes] = []
        try:
            for msg_type, payload in messages:
                if msg_type == ord("S"):
                    out.append(be.ReadyForQuery(status).encode())
                    break
                out.append(self._answer(decode_frontend(msg_type, payload)))
            else:
                return None  # ended by Flush: left to the server
        except _Unanswerable:
            return None
        if not self.used:
            return None
        return BatchReply(b"".join(out), self.named)

    def _answer(self, message: object) -> bytes:
        if isinstance(message, Parse):
            canned = self.interceptor.match(message.query)
            if canned is None:
                raise _Unanswerable
            self.prepared[message.name] = (canned, message.param_types)
            self.used = True
            if message.name:
                self.named[message.name] = message.query
            return PARSE_COMPLETE
        if isinstance(message, Bind):
            canned, _types = self._statement(message.statement)
            self.portals[message.portal] = (canned, canned.formats(message.result_formats))
            return BIND_COMPLETE
        if isinstance(message, Describe):
            if message.kind == "S":
                canned, types = self._statement(message.name)
                columns = (TEXT,) * len(canned.columns)
                return be.ParameterDescription(types).encode() + canned.row_description(columns)
            canned, formats = self._portal(message.name)
            return canned.row_description(formats)
        if isinstance(message, Execute):
            canned, formats = self._portal(message.portal)
            return canned.data_rows(self.user, self.database, formats)
        if isinstance(message, Close):
            if message.kind == "S":
                self._statement(message.name)
                self.prepared.pop(message.name, None)
                self.named[message.name] = None
            else:
                self._portal(message.name)
            return CLOSE_COMPLETE
        raise _Unanswerable

    def _statement(self, name: str) -> tuple[Canned, tuple[int, ...]]:
        found = self.prepared.get(name)
        if found is not None:
            self.used = True
            return found
        sql = self.statements.get(name) if name and name not in self.named else None
        canned = self.interceptor.match(sql) if sql is not None else None
        if canned is None:
            raise _Unanswerable
        self.prepared[name] = (canned, ())
        self.used = True
        return canned, ()

    def _portal(self, name: str) -> tuple[Canned, tuple[int, ...]]:
        found = self.portals.get(name)
        if found is None:
            raise _Unanswerable
        return found
