"""PgBouncer's files as data: the ini (its dialect), the connection strings of [databases]
and [users], its value syntax (seconds, booleans) and the auth_file (userlist.txt).

The ini dialect (PgBouncer's doc/config.md): `[section]`, `key = value`, whole-line `;` and
`#` comments, no inline comments, no continuation lines. `%include` is refused: converting
one file that silently lacks another's keys would be worse than asking for a merge.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
PLAIN, MD5, SCRAM = "plain", "md5", "scram"


class ConvertError(Exception):
    """An ini that cannot be converted (unreadable, %include, malformed)."""


def read_ini(path: Path) -> dict[str, dict[str, str]]:
    """Sections (lower-cased) of key -> value; [pgbouncer] keys lower-cased too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: cannot read: {exc}") from None
    # PgBouncer has no continuation lines: configparser would take an indented line for one.
    lines = [line.strip() for line in text.splitlines()]
    for number, line in enumerate(lines, 1):
        if line.startswith("%include"):
            raise ConvertError(f"{path}:{number}: %include is not supported: merge the "
                               f"included file into this one, then convert")
    parser = configparser.ConfigParser(
        delimiters=("=",), comment_prefixes=(";", "#"), inline_comment_prefixes=None,
        strict=False, interpolation=None, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names keep case
    try:
        parser.read_string("\n".join(lines), source=str(path))
    except configparser.Error as exc:
        raise ConvertError(f"{path}: not a PgBouncer ini file: {exc}") from None
    sections: dict[str, dict[str, str]] = {}
    for name in parser.sections():
        items = dict(parser.items(name))
        if name.lower() == "pgbouncer":
            items = {key.lower(): value for key, value in items.items()}
        sections.setdefault(name.lower(), {}).update(items)
    return sections


CONNSTRING_PAIR = re.compile(r"\s*([^=\s]+)\s*=\s*(?:'((?:[^']|'')*)'|([^\s']\S*))")


def parse_connstring(text: str) -> dict[str, str]:
    """`host=a port=5432 password='it''s'` -> {"host": "a", ...}; ValueError if malformed."""
    params: dict[str, str] = {}
    position = 0
    while text[position:].strip():
        match = CONNSTRING_PAIR.match(text, position)
        if match is None:
            raise ValueError(f"cannot parse {text[position:].strip()!r}")
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = quoted.replace("''", "'") if bare is None else bare
        position = match.end()
    return params


AUTH_LINE = re.compile(r'\s*"((?:[^"]|"")*)"\s+"((?:[^"]|"")*)"')


def read_auth_file(path: Path) -> dict[str, str]:
    """userlist.txt: `"user" "password, md5 hash or SCRAM secret"`; other lines ignored."""
    users: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = AUTH_LINE.match(line)
        if match:
            users[match.group(1).replace('""', '"')] = match.group(2).replace('""', '"')
    return users


def secret_kind(secret: str) -> str:
    if secret.startswith("SCRAM-SHA-256$"):
        return SCRAM
    if len(secret) == 35 and secret.startswith("md5"):
        return MD5
    return PLAIN


def to_int(value: str) -> int:
    return int(value)


def to_ms(value: str) -> int:
    """PgBouncer's durations are seconds (fractions allowed); pgcat's are milliseconds."""
    return round(float(value) * 1000)


def to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "yes", "on", "true"):
        return True
    if lowered in ("0", "no", "off", "false"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parsed(parse: Callable[[str], T], value: str, where: str) -> T:
    """A value in PgBouncer's syntax, or a ConvertError naming where it was written."""
    try:
        return parse(value)
    except ValueError:
        raise ConvertError(f"{where}: cannot read the value {value!r}") from None


def connstring(text: str, where: str) -> dict[str, str]:
    try:
        return parse_connstring(text)
    except ValueError as exc:
        raise ConvertError(f"{where}: {exc}") from None
