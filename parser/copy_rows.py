"""COPY FROM STDIN data cut into rows, and the sharding key read from each row (issue 12,
item 2). Pure: bytes in, rows out; the executor is pgcat_py/scatter/copy_in.py.

The rules are PostgreSQL's (copyfromparse.c, CopyReadLineText and CopyReadAttributes*):
- text: a row ends at a newline that no backslash escapes; fields are split at the
  delimiter, a backslash escapes the next byte (`\\t`, `\\n`, octal `\\101`, hex `\\x41`);
  a raw field equal to the NULL string is NULL.
- CSV: a newline inside quotes belongs to the field; a quote toggles quoting (inside quotes
  the escape byte before a quote or an escape takes it literally); an unquoted field equal
  to the NULL string is NULL, a quoted one never is.
- `\\.` alone on a line ends the data (PostgreSQL 15 reads nothing after it).
Rows keep their bytes and line end, so each shard parses exactly what the client sent.
Carriage-return line ends (a CR not followed by LF, outside CSV quotes) are refused:
PostgreSQL allows them, but cutting them wrong would put rows on the wrong shard.
"""

from __future__ import annotations

import re

from parser.copy_plan import CopyPlan
from parser.write_split import WriteUnsupported

_BACKSLASH, _CR, _LF = 0x5C, 0x0D, 0x0A
_END_MARKER = b"\\."
_TEXT_SPECIAL = re.compile(rb"[\\\r\n]")
_TEXT_NOT_PLAIN = re.compile(rb"[\\\r]")  # without these, a row is a line
_SIMPLE_ESCAPES = {ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9,
                   ord("v"): 11}
_OCTAL = frozenset(b"01234567")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class MissingField(WriteUnsupported):
    """A row with fewer fields than the sharding key's position (22P04 to the client)."""


class RowTooLong(WriteUnsupported):
    """A row past MAX_ROW_BYTES (54000 to the client): the proxy holds a row whole."""


MAX_ROW_BYTES = 64 << 20  # a row the proxy holds until its end (memory per client bounded)


class RowCutter:
    """Cuts the data of one COPY into whole rows, whatever the CopyData boundaries."""

    def __init__(self, plan: CopyPlan) -> None:
        self.plan = plan
        self.ended = False  # `\.` seen: the rest is not data
        self._buf = bytearray()
        if plan.csv:
            quote, escape = re.escape(plan.quote), re.escape(plan.escape)
            self._special = re.compile(b"[" + quote + escape + rb"\r\n]")
            self._plain = re.compile(b"[" + quote + escape + rb"\r]|\\\.")
        else:
            self._special = _TEXT_SPECIAL
            self._plain = _TEXT_NOT_PLAIN

    def feed(self, data: bytes) -> list[bytes]:
        """The rows completed by ``data`` (each with its line end)."""
        if self.ended:
            return []
        self._buf += data
        if self._plain.search(self._buf) is None:  # the usual data: every LF ends a row
            last = self._buf.rfind(b"\n") + 1
            lines = bytes(self._buf[:last]).split(b"\n")[:-1]
            del self._buf[:last]
            return [line + b"\n" for line in lines]
        rows: list[bytes] = []
        start = 0
        while (end := self._row_end(start)) >= 0:
            row = bytes(self._buf[start:end])
            start = end
            if row.rstrip(b"\r\n") == _END_MARKER:
                self.ended = True
                break
            rows.append(row)
        del self._buf[:start]
        if self.ended:
            self._buf.clear()
        elif len(self._buf) > MAX_ROW_BYTES:
            raise RowTooLong(f"a COPY row longer than {MAX_ROW_BYTES >> 20} MiB across shards")
        return rows

    def rest(self) -> bytes | None:
        """At the end of the data: the last row, if it has no line end."""
        rest, self._buf = bytes(self._buf), bytearray()
        return rest if rest and rest != _END_MARKER and not self.ended else None

    def _row_end(self, start: int) -> int:
        """The offset after the row starting at ``start``; -1 when not complete yet."""
        buf, plan = self._buf, self.plan
        quote = plan.quote[0] if plan.csv else -1
        # As CopyReadLineText: an escape equal to the quote is no escape (a pure toggle).
        escape = plan.escape[0] if plan.csv and plan.escape != plan.quote else -1
        in_quote, last_was_escape, pos = False, False, start
        while (match := self._special.search(buf, pos)) is not None:
            at = match.start()
            if at > pos:
                last_was_escape = False  # the bytes skipped were no escape
            byte, pos = buf[at], at + 1
            if byte in (quote, escape):
                if in_quote and byte == escape:
                    last_was_escape = not last_was_escape
                if byte == quote and not last_was_escape:
                    in_quote = not in_quote
                if byte != escape:
                    last_was_escape = False
                continue
            last_was_escape = False
            if in_quote:
                continue
            if byte == _BACKSLASH:  # text only: the next byte is taken literally
                if pos >= len(buf):
                    return -1
                pos += 1
            elif byte == _LF:
                return pos
            elif pos >= len(buf):
                return -1  # a CR at the end: LF may follow in the next CopyData
            elif buf[pos] != _LF:
                raise WriteUnsupported("COPY data with carriage-return line ends across shards")
        return -1


def key_field(plan: CopyPlan, row: bytes, index: int) -> bytes | None:
    """The value of field ``index`` (0-based) of ``row`` as PostgreSQL reads it; None for
    NULL. MissingField when the row is shorter."""
    line = row[:-2] if row.endswith(b"\r\n") else row[:-1] if row.endswith(b"\n") else row
    if plan.csv:
        return _csv_field(plan, line, index)
    if b"\\" not in line:
        fields = line.split(plan.delimiter, index + 1)
        if index >= len(fields):
            raise MissingField(f"missing data for column {index + 1}")
        return None if fields[index] == plan.null else fields[index]
    raw = _text_raw_field(plan, line, index)
    return None if raw == plan.null else _unescape(raw)


def _text_raw_field(plan: CopyPlan, line: bytes, index: int) -> bytes:
    delimiter, field, start, pos = plan.delimiter[0], 0, 0, 0
    while pos < len(line):
        byte = line[pos]
        if byte == _BACKSLASH:
            pos += 2
            continue
        if byte == delimiter:
            if field == index:
                return line[start:pos]
            field, start = field + 1, pos + 1
        pos += 1
    if field == index:
        return line[start:]
    raise MissingField(f"missing data for column {index + 1}")


def _unescape(raw: bytes) -> bytes:
    """A text-format field's backslash escapes resolved (copyfromparse.c)."""
    out, pos = bytearray(), 0
    while pos < len(raw):
        byte = raw[pos]
        pos += 1
        if byte != _BACKSLASH or pos >= len(raw):
            out.append(byte)
            continue
        code = raw[pos]
        pos += 1
        if code in _OCTAL:
            digits = code - 0x30
            for _ in range(2):
                if pos < len(raw) and raw[pos] in _OCTAL:
                    digits, pos = digits * 8 + raw[pos] - 0x30, pos + 1
            out.append(digits & 0xFF)
        elif code == ord("x") and pos < len(raw) and raw[pos] in _HEX:
            end = pos + 2 if pos + 1 < len(raw) and raw[pos + 1] in _HEX else pos + 1
            out.append(int(raw[pos:end], 16))
            pos = end
        else:
            out.append(_SIMPLE_ESCAPES.get(code, code))
    return bytes(out)


def _csv_field(plan: CopyPlan, line: bytes, index: int) -> bytes | None:
    if plan.quote not in line:
        fields = line.split(plan.delimiter, index + 1)
        if index >= len(fields):
            raise MissingField(f"missing data for column {index + 1}")
        return None if fields[index] == plan.null else fields[index]
    delimiter, quote, escape = plan.delimiter[0], plan.quote[0], plan.escape[0]
    field, value, quoted, in_quote, pos = 0, bytearray(), False, False, 0
    while pos <= len(line):
        byte = line[pos] if pos < len(line) else delimiter  # the end closes the last field
        pos += 1
        if in_quote:
            if byte == escape and pos < len(line) and line[pos] in (quote, escape):
                value.append(line[pos])
                pos += 1
            elif byte == quote:
                in_quote = False
            else:
                value.append(byte)
        elif byte == quote:
            in_quote = quoted = True
        elif byte == delimiter:
            if field == index:
                return None if not quoted and value == plan.null else bytes(value)
            field, value, quoted = field + 1, bytearray(), False
        else:
            value.append(byte)
    raise MissingField(f"missing data for column {index + 1}")
