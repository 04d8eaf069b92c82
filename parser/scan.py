"""A hand-written scan for the plain queries most traffic is made of, for the compiled relay.

`lex_plain` cuts the literals out of an ASCII query the way parser.lexer's regular expression
does, byte by byte: integers, plain '...' strings, -- comments, quoted identifiers and $n
parameters. Anything else (decimals and other numeric forms, prefixed or escaped strings,
backslashes in strings, /* comments, dollar quotes, unterminated quotes, non-ASCII text)
makes it give up (None), and the regular expression cuts the text instead. Compiled with
mypyc, a loop over bytes costs a few instructions a character, a third of what CPython's
regex engine spends on pgbench's query; in pure Python it would be slower than the regex,
so parser.lexer uses it only when this module is compiled. Property tests hold it to the
regex on every text it accepts.
"""

from __future__ import annotations

from typing import Final

try:  # a machine integer when compiled by mypyc (mypy_extensions comes with mypy)
    from mypy_extensions import i64
except ImportError:  # pure Python without mypy installed: an int
    i64 = int  # type: ignore[misc]

_HOLES: Final = 256
_NUMBER_HOLES: Final = tuple(str(i) for i in range(_HOLES))
_STRING_HOLES: Final = tuple(f"'{i}'" for i in range(_HOLES))

# Byte classes. IDENT: continues an identifier (scan.l ident_cont, ASCII: letters, digits, _
# and $). A quote after one of them or after & may open a prefixed string (E'', B'', X'',
# N'', U&''): given up.
_OTHER: Final = 0
_IDENT: Final = 1
_DIGIT: Final = 2
_CLASSES: Final = bytes(
    _DIGIT if 0x30 <= c <= 0x39
    else _IDENT if (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A or c in (0x5F, 0x24))
    else _OTHER
    for c in range(128)
)
# After an integer, these would make it another numeric form (1.5, 1e5, 1_000, 0x1F, 0o7,
# 0b1): given up.
_NUMBER_GOES_ON: Final = frozenset(b"._eExXoObB")
_QUOTE: Final = 0x27  # '
_DOUBLE_QUOTE: Final = 0x22  # "
_DASH: Final = 0x2D
_SLASH: Final = 0x2F
_STAR: Final = 0x2A
_DOLLAR: Final = 0x24
_DOT: Final = 0x2E
_AMPERSAND: Final = 0x26
_BACKSLASH: Final = 0x5C
_NEWLINE: Final = 0x0A
_RETURN: Final = 0x0D


def lex_plain(sql: str) -> tuple[str, list[str], str | None] | None:
    """(shape, literals, None) as parser.lexer.lex gives for `sql`, or None when `sql` is
    not a plain ASCII query (see the module docstring)."""
    if not sql.isascii():
        return None
    data = sql.encode("ascii")
    n: i64 = len(data)
    pieces: list[str] = []
    literals: list[str] = []
    copied: i64 = 0  # sql[copied:i] is text not yet in pieces
    after_ident = False  # the byte before i continues an identifier
    i: i64 = 0
    end: i64 = 0
    while i < n:
        c: i64 = data[i]
        kind: i64 = _CLASSES[c]
        if kind == _IDENT or (kind == _DIGIT and after_ident):
            i = _parameter_end(data, i, n) if c == _DOLLAR and not after_ident else i + 1
            if i < 0:
                return None  # a dollar quote
            after_ident = True
            continue
        after_ident = False
        if kind == _DIGIT:
            end = _integer_end(data, i, n)
            if end < 0:
                return None
            _take_literal(sql, pieces, literals, copied, i, end, False)
            copied = i = end
        elif c == _QUOTE:
            if i > 0 and (_CLASSES[data[i - 1]] != _OTHER or data[i - 1] == _AMPERSAND):
                return None  # a prefix (or a quote right after a number)
            end = _string_end(data, i + 1, n, _QUOTE)
            if end < 0:
                return None
            _take_literal(sql, pieces, literals, copied, i, end, True)
            copied = i = end
        elif c == _DOUBLE_QUOTE:
            end = _string_end(data, i + 1, n, _DOUBLE_QUOTE)
            if end < 0:
                return None
            i = end  # a quoted identifier stays as written
        elif c == _DASH and i + 1 < n and data[i + 1] == _DASH:
            end = _line_end(data, i + 2, n)
            _cut(sql, pieces, copied, i)
            pieces.append(" ")
            copied = i = end
        elif (c == _SLASH and i + 1 < n and data[i + 1] == _STAR) or (
                c == _DOT and i + 1 < n and _CLASSES[data[i + 1]] == _DIGIT):
            return None  # a /* comment, or a number like .5
        else:
            i += 1
    if not literals and copied == 0:
        return sql, literals, None
    _cut(sql, pieces, copied, n)
    return "".join(pieces), literals, None


def _cut(sql: str, pieces: list[str], start: i64, end: i64) -> None:
    if end > start:
        pieces.append(sql[start:end])


def _take_literal(sql: str, pieces: list[str], literals: list[str], copied: i64, start: i64,
                  end: i64, string: bool) -> None:
    """The text before the literal sql[start:end], then its placeholder; keep the literal."""
    _cut(sql, pieces, copied, start)
    count = len(literals)
    if count < _HOLES:
        pieces.append(_STRING_HOLES[count] if string else _NUMBER_HOLES[count])
    else:
        pieces.append(f"'{count}'" if string else str(count))
    literals.append(sql[start:end])


def _integer_end(data: bytes, i: i64, n: i64) -> i64:
    """The end of the digits from i; -1 when another numeric form goes on from there."""
    end: i64 = i + 1
    while end < n and _CLASSES[data[end]] == _DIGIT:
        end += 1
    return -1 if end < n and data[end] in _NUMBER_GOES_ON else end


def _line_end(data: bytes, i: i64, n: i64) -> i64:
    """The end of a -- comment whose text starts at i: the next newline or return."""
    while i < n and data[i] != _NEWLINE and data[i] != _RETURN:
        i += 1
    return i


def _string_end(data: bytes, i: i64, n: i64, quote: i64) -> i64:
    """The end of a quoted string or identifier whose body starts at i (a doubled quote is
    one quote); -1 if it is unterminated or (a string) holds a backslash."""
    while i < n:
        c: i64 = data[i]
        if c == quote:
            if i + 1 < n and data[i + 1] == quote:
                i += 2
                continue
            return i + 1
        if c == _BACKSLASH and quote == _QUOTE:
            return -1  # its end may depend on standard_conforming_strings
        i += 1
    return -1


def _parameter_end(data: bytes, i: i64, n: i64) -> i64:
    """After a $ that does not continue an identifier: the end of a $n parameter, or -1
    when it may open a dollar quote."""
    end: i64 = i + 1
    if end < n and _CLASSES[data[end]] != _OTHER and _CLASSES[data[end]] != _DIGIT:
        return -1  # $tag$ or $$
    return end
