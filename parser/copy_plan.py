"""COPY ... FROM STDIN into a sharded table (issue 12, item 2): what the statement says.

`plan_copy` reads the statement PostgreSQL's grammar allows (gram.y CopyStmt): the table,
its column list, and the options in both spellings, `WITH (FORMAT csv, HEADER true, ...)`
and the pre-9.0 `CSV HEADER DELIMITER ','`, with PostgreSQL's defaults (copy.c
ProcessCopyOptions): text format with tab and `\\N`, CSV with `,`, `""`, `"`. What the
proxy cannot route row by row is refused (WriteUnsupported, 0A000): binary format, a file
or program as the source, an encoding other than UTF-8. Pure: no I/O. The rows themselves
are cut by copy_rows.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parser.settings import ShardingKey
from parser.values import literal_value
from parser.write_split import WriteUnsupported

_TOKEN = re.compile(
    r"""\s*(?:("(?:[^"]|"")*")|([eE]'(?:[^'\\]|\\.|'')*')|('(?:[^']|'')*')
    |([A-Za-z_\u0080-\U0010ffff][\w$\u0080-\U0010ffff]*)|([-+]?\d+)|(\S))""",
    re.VERBOSE | re.DOTALL)
_UTF8 = frozenset({"utf8", "utf-8", "unicode", "sql_ascii"})
_TRUE = frozenset({"true", "on", "1"})
_FALSE = frozenset({"false", "off", "0"})


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """A COPY FROM STDIN: the table (as written), its column names (None: all of the
    table's, in its order) and how the data is written."""

    table: str
    columns: tuple[str, ...] | None
    csv: bool = False
    delimiter: bytes = b"\t"
    null: bytes = b"\\N"
    quote: bytes = b'"'
    escape: bytes = b'"'
    header: bool = False

    def key_position(self, keys: tuple[ShardingKey, ...], table_columns: list[str]) -> int:
        """The 0-based field of the sharding key in each row; ``table_columns``: the
        table's columns in order (used when the statement has no column list)."""
        columns = list(self.columns) if self.columns is not None else table_columns
        table = self.table.rsplit(".", 1)[-1].replace('"', "").lower()
        for key in keys:
            if (key.table is None or key.table == table) and key.column in columns:
                return columns.index(key.column)
        raise WriteUnsupported("a COPY that leaves the sharding key to its default")


class _Tokens:
    def __init__(self, sql: str) -> None:
        self.items = [(m.lastindex or 0, m.group(m.lastindex or 0))
                      for m in _TOKEN.finditer(sql) if m.lastindex]
        self.pos = 0

    def peek(self) -> str:
        return self.items[self.pos][1] if self.pos < len(self.items) else ""

    def word(self) -> str:
        """The next token, lowercased if it is a bare word."""
        kind, text = self.items[self.pos] if self.pos < len(self.items) else (0, "")
        self.pos += 1
        return text.lower() if kind == 4 else text

    def raw(self) -> str:
        """The next token as written."""
        text = self.items[self.pos][1] if self.pos < len(self.items) else ""
        self.pos += 1
        return text

    def accept(self, *words: str) -> bool:
        if self.peek().lower() in words:
            self.pos += 1
            return True
        return False


def plan_copy(sql: str) -> CopyPlan:
    """The CopyPlan of ``COPY table [(columns)] FROM STDIN [options]``."""
    tokens = _Tokens(sql)
    if tokens.word() != "copy":
        raise WriteUnsupported("a COPY the proxy cannot read")
    table = _name(tokens)
    columns = _columns(tokens) if tokens.peek() == "(" else None
    if tokens.word() != "from":
        raise WriteUnsupported("a COPY the proxy cannot read")
    if tokens.word() != "stdin":
        raise WriteUnsupported("COPY FROM a file or a program into a sharded table")
    options = _options(tokens)
    return _plan(table, columns, options)


def _name(tokens: _Tokens) -> str:
    parts = [tokens.word()]
    while tokens.accept("."):
        parts.append(tokens.word())
    if tokens.peek() == "(" or tokens.peek().lower() == "from":
        return ".".join(parts)
    raise WriteUnsupported("a COPY the proxy cannot read")


def _identifier(text: str) -> str:
    return text[1:-1].replace('""', '"') if text.startswith('"') else text.lower()


def _columns(tokens: _Tokens) -> tuple[str, ...]:
    tokens.word()  # (
    names: list[str] = []
    while True:
        names.append(_identifier(tokens.raw()))
        separator = tokens.word()
        if separator == ")":
            return tuple(names)
        if separator != ",":
            raise WriteUnsupported("a COPY the proxy cannot read")


def _options(tokens: _Tokens) -> dict[str, str]:
    """Option name -> value (text; "" when given without one)."""
    tokens.accept("with")
    options: dict[str, str] = {}
    if tokens.accept("("):
        while True:
            name = tokens.word()
            value = "" if tokens.peek() in (",", ")") else _value(tokens)
            options[name] = value
            if tokens.word() != ",":
                break
        return options
    while (word := tokens.word()) not in ("", "where", ";"):  # the pre-9.0 spelling
        if word in ("binary", "csv", "header", "freeze"):
            options["format" if word in ("binary", "csv") else word] = word
        elif word in ("delimiter", "null", "quote", "escape", "encoding"):
            tokens.accept("as")
            options[word] = _value(tokens)
        elif word == "force":  # FORCE QUOTE / FORCE NOT NULL columns: the shards apply them
            if not tokens.accept("quote"):
                tokens.accept("not")
                tokens.accept("null")
            tokens.raw()
            while tokens.accept(","):
                tokens.raw()
        else:
            raise WriteUnsupported(f"the COPY option {word!r}")
    return options


def _value(tokens: _Tokens) -> str:
    if tokens.peek() == "(":  # FORCE_NOT_NULL (a, b): the shards apply it
        depth = 0
        while True:
            token = tokens.word()
            depth += (token == "(") - (token == ")")
            if depth == 0 or not token:
                return ""
    text = tokens.word()
    if text[:1] in ("'", "E", "e") and text.endswith("'"):
        value = literal_value(text)
        return value if isinstance(value, str) else str(value)
    return text


def _plan(table: str, columns: tuple[str, ...] | None, options: dict[str, str]) -> CopyPlan:
    form = options.get("format", "text").lower()
    if form not in ("text", "csv"):
        raise WriteUnsupported(f"COPY FROM STDIN in {form} format into a sharded table")
    encoding = options.get("encoding", "utf8").lower()
    if encoding not in _UTF8:
        raise WriteUnsupported(f"COPY FROM STDIN in encoding {encoding}")
    csv = form == "csv"
    delimiter = options.get("delimiter", "," if csv else "\t").encode()
    quote = options.get("quote", '"').encode()
    header = options.get("header", "false").lower()
    plan = CopyPlan(table, columns, csv, delimiter,
                    options.get("null", "" if csv else "\\N").encode(), quote,
                    options.get("escape", quote.decode()).encode(),
                    header == "" or header == "header" or header == "match" or header in _TRUE)
    if len(plan.delimiter) != 1 or (csv and (len(plan.quote) != 1 or len(plan.escape) != 1)):
        raise WriteUnsupported("a COPY delimiter, quote or escape that is not one byte")
    if header not in _FALSE and not plan.header:
        raise WriteUnsupported(f"the COPY HEADER value {header!r}")
    return plan
