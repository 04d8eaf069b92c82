"""The fast lexer in front of sqlglot: cuts the literals out of a query, leaving its shape.

A *shape* is the query text with every literal replaced by a numbered placeholder (numbers by
`<n>`, strings of every kind by `'<n>'`, n counting literals from 0) and every comment by a
space. `$n` parameters and everything else stay as written. Two queries that differ only in
their literal values (or comments) have the same shape, so the sqlglot analysis of a shape is
cached and the values of the query at hand are read from `literals`.

One compiled regular expression, used with `re.split` (match objects cost more than the rest
of the lexer), finds the lexemes that matter by PostgreSQL's scan.l rules: comments, quoted
identifiers, strings, dollar quotes and numbers; the text between them is copied unchanged.
It opens by consuming one of the characters a lexeme can start with, a character class, which
lets the regex engine skip keywords and identifiers at C speed (CPython's sre scans for a
leading class, but not for a leading lookahead: about 1.5x faster on pgbench's query than the
lookahead it replaced); each alternative then looks back at that character.
Text the lexer cannot cut safely (unterminated quotes or comments, a string whose end depends
on standard_conforming_strings) is reported as `unsafe`, and the caller treats it as a write.
"""

from __future__ import annotations

import re
from typing import Final

from parser import scan

# PostgreSQL identifiers may contain letters, digits, _, $ and any non-ASCII character
# (scan.l: ident_cont). Numbers and dollar quotes never start inside an identifier.
_IDENT_CHAR = r"[\w$\u0080-\U0010ffff]"
# Checked after the first character of a lexeme was consumed: the one before it is not an
# identifier character (a fixed-width lookbehind over both).
_AFTER_NON_IDENT = rf"(?<!{_IDENT_CHAR}.)"
_DOLLAR_TAG_REST = r"(?:[A-Za-z_\u0080-\U0010ffff][\w\u0080-\U0010ffff]*)?\$"  # after a $

# C-style comments nest in PostgreSQL (scan.l: xc). A regular expression cannot count, so
# nesting is spelt out four levels deep; deeper nesting is reported as unsafe.
_COMMENT_BODY = r"(?:[^*/]|\*(?!/)|/(?!\*){inner})*"
_COMMENT = r"/\*" + _COMMENT_BODY.format(inner="") + r"\*/"
for _ in range(3):
    _COMMENT = r"/\*" + _COMMENT_BODY.format(inner="|" + _COMMENT) + r"\*/"

# Group 1 is the lexeme, group 2 the tag of a complete dollar quote after its first $. The
# first character is consumed by the class; each alternative checks which it was with a
# lookbehind. The last line matches what is left when a complete form failed: an
# unterminated comment, quote or dollar quote.
_LEXEME = re.compile(
    rf"""
    (
    [-/"'$0-9.]
    (?:
    (?<=-)-[^\n\r]*
    |(?<=/){_COMMENT[1:]}
    |(?<=")(?:[^"]|"")*"
    |(?<=')(?:[^']|'')*'
    |(?<=\$){_AFTER_NON_IDENT}({_DOLLAR_TAG_REST}).*?\$\2
    |(?<=[0-9.]){_AFTER_NON_IDENT}
        (?:(?<=0)(?:[xX][0-9A-Fa-f_]+|[oO][0-7_]+|[bB][01_]+)
        |(?:(?<=[0-9])[0-9_]*(?:\.[0-9_]*)?|(?<=\.)[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)
    |(?<=/)\*|(?<=['"])|(?<=\$){_AFTER_NON_IDENT}{_DOLLAR_TAG_REST}
    )
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_STRIDE = 3  # re.split gives [text, lexeme, tag, text, lexeme, tag, ..., text]

# An escape string, E'...' (scan.l: xe): backslashes escape, \' included.
_ESCAPE_STRING = re.compile(r"[eE]'(?:[^'\\]|\\.|'')*'", re.DOTALL)
_IDENT_CHAR_RE = re.compile(_IDENT_CHAR)
# An odd run of backslashes before a quote: escaped when standard_conforming_strings is off.
_ESCAPED_QUOTE = re.compile(r"(?<!\\)(?:\\\\)*\\'")
_PREFIXES = ("E", "B", "X", "N", "U&")
_PREFIX_ENDS = frozenset("eEbBxXnN&")
_NUMBER_STARTS = frozenset("0123456789.")

_UNTERMINATED = {
    "/*": "unterminated comment (or nested more than 4 deep)",
    "'": "unterminated quoted string",
    '"': "unterminated quoted identifier",
}
_BACKSLASH_QUOTE = "backslash before a quote in a string literal"


# A lexed query: (shape text, literals as written, why it is unsafe or None). A plain tuple:
# a NamedTuple costs a Python-level __new__ on the hot path.
Shape = tuple[str, list[str], str | None]

# Placeholders for the first literals of a query, made once.
_HOLES = 256
_NUMBER_HOLES = tuple(str(i) for i in range(_HOLES))
_STRING_HOLES = tuple(f"'{i}'" for i in range(_HOLES))


class _NeedsEscapes(Exception):
    """An E'...' string: the text must be cut again by _split_escapes."""


# Compiled (mypyc), parser.scan cuts a plain query at a third of the regex engine's cost; in
# pure Python it would cost more than the regex, so it is tried only when compiled.
_SCAN_FIRST: Final = not str(scan.__file__).endswith(".py")


def lex(sql: str) -> Shape:
    """Cut the literals out of `sql`. Never raises."""
    if _SCAN_FIRST:
        plain = scan.lex_plain(sql)
        if plain is not None:
            return plain
    parts: list[str | None] = _LEXEME.split(sql)
    if len(parts) == 1:
        return sql, [], None
    try:
        return _shape(sql, parts)
    except _NeedsEscapes:
        pass
    try:
        return _shape(sql, _split_escapes(sql))
    except _NeedsEscapes:  # pragma: no cover - _split_escapes took every E'...' out
        return sql, [], "unexpected escape string"


def _shape(sql: str, parts: list[str | None]) -> Shape:
    """Replace the lexemes of a split text by placeholders (in place) and join it."""
    literals: list[str] = []
    for i in range(1, len(parts), _STRIDE):
        lexeme: str = parts[i]  # type: ignore[assignment]  # group 1 always matches
        first = lexeme[0]
        count = len(literals)
        if first in _NUMBER_STARTS:
            parts[i] = _NUMBER_HOLES[count] if count < _HOLES else str(count)
            literals.append(lexeme)
            continue
        if first == "'" and len(lexeme) > 1:
            before: str = parts[i - 1]  # type: ignore[assignment]
            prefix = _string_prefix(before) if before[-1:] in _PREFIX_ENDS else ""
            if prefix == "E":
                raise _NeedsEscapes
            if "\\'" in lexeme and _ESCAPED_QUOTE.search(lexeme):
                # With standard_conforming_strings off, \' does not end the string: the
                # statement boundaries would differ from what the server sees.
                return sql, [], _BACKSLASH_QUOTE
            if prefix:
                parts[i - 1] = before[: -len(prefix)]
                lexeme = prefix + lexeme
        elif first == '"' and len(lexeme) > 1:
            continue  # a quoted identifier: kept; matched only to skip the quotes inside
        elif first == "-" or (first == "/" and len(lexeme) > 2):
            parts[i] = " "  # a comment
            continue
        elif first in "'\"/" or (first == "$" and parts[i + 1] is None):
            return sql, [], _UNTERMINATED.get(lexeme, "unterminated dollar quote")
        parts[i + 1] = None  # the tag of a dollar quote
        parts[i] = _STRING_HOLES[count] if count < _HOLES else f"'{count}'"
        literals.append(lexeme)
    return "".join(filter(None, parts)), literals, None


def _string_prefix(before: str) -> str:
    """The prefix (E, B, X, N, U&) that the text before a quote ends with, if any."""
    for prefix in _PREFIXES:
        begin = len(before) - len(prefix)
        if (
            begin >= 0
            and before[begin:].upper() == prefix
            and (begin == 0 or not _IDENT_CHAR_RE.match(before, begin - 1))
        ):
            return prefix
    return ""


def _split_escapes(sql: str) -> list[str | None]:
    """Like _LEXEME.split, but E'...' strings are cut by their own (backslash) rules."""
    parts: list[str | None] = []
    pos = 0
    while (match := _LEXEME.search(sql, pos)) is not None:
        start, end = match.span()
        if sql[start] == "'" and sql[pos:start][-1:] in ("e", "E"):
            begin = start - 1
            if begin == 0 or not _IDENT_CHAR_RE.match(sql, begin - 1):
                escaped = _ESCAPE_STRING.match(sql, begin)
                if escaped is None:
                    return [*parts, sql[pos:start], "'", None, ""]  # unterminated
                parts += [sql[pos:begin], escaped.group(), None]
                pos = escaped.end()
                continue
        parts += [sql[pos:start], match.group(1), match.group(2)]
        pos = end
    parts.append(sql[pos:])
    return parts
