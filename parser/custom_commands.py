"""pgcat's seven custom commands (SET SHARD TO, SHOW SERVER ROLE, ...), recognised exactly.

The forms are pgcat's regexes (src/query_router.rs, CUSTOM_SQL_REGEXES): case-insensitive,
single spaces between words, only spaces (not tabs or newlines) around, one optional
trailing `;`, quotes optional except for SERVER ROLE. A command combined with another
statement is not a command. The proxy calls `parse_custom_command` on every simple Query, so
ordinary SQL is turned away by its first character before any regex runs.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

BIGINT_MAX = 2**63 - 1  # pgcat parses the sharding key as an i64 (and panics beyond it)


class CommandKind(enum.Enum):
    """The seven commands, named by the CommandComplete tag pgcat answers with."""

    SET_SHARDING_KEY = "SET SHARDING KEY"
    SET_SHARD = "SET SHARD"
    SHOW_SHARD = "SHOW SHARD"
    SET_SERVER_ROLE = "SET SERVER ROLE"
    SHOW_SERVER_ROLE = "SHOW SERVER ROLE"
    SET_PRIMARY_READS = "SET PRIMARY READS"
    SHOW_PRIMARY_READS = "SHOW PRIMARY READS"


@dataclass(frozen=True, slots=True)
class CustomCommand:
    """A recognised command and its value.

    value: SET SHARDING KEY: the key (int); SET SHARD: the shard number (int) or "any";
    SET SERVER ROLE: "primary", "replica", "any", "auto" or "default"; SET PRIMARY READS:
    the value exactly as written (pgcat compares it case-sensitively: 'OFF' matches the
    command but changes nothing); SHOW commands: None.
    error: set when the command cannot be executed (a sharding key beyond bigint); the
    proxy answers it with an ErrorResponse.
    """

    kind: CommandKind
    value: int | str | None = None
    error: str | None = None


_TAIL = r" *;? *\Z"  # Rust's $ is the end of the text; Python's \Z is (its $ is not)
_COMMAND = re.compile(
    r"(?i) *(?:"
    rf"SET SHARDING KEY TO '?(?P<sharding_key>[0-9]+)'?{_TAIL}"
    rf"|SET SHARD TO '?(?P<shard>[0-9]+|ANY)'?{_TAIL}"
    rf"|(?P<show_shard>SHOW SHARD){_TAIL}"
    rf"|SET SERVER ROLE TO '(?P<role>PRIMARY|REPLICA|ANY|AUTO|DEFAULT)'{_TAIL}"
    rf"|(?P<show_role>SHOW SERVER ROLE){_TAIL}"
    rf"|SET PRIMARY READS TO '?(?P<primary_reads>on|off|default)'?{_TAIL}"
    rf"|(?P<show_primary_reads>SHOW PRIMARY READS){_TAIL}"
    r")",
    re.ASCII,
)


def parse_custom_command(sql: str) -> CustomCommand | None:
    """The custom command `sql` is, or None for anything else (cheaply for ordinary SQL)."""
    first = sql[:1]
    if first == " ":
        first = sql.lstrip(" ")[:1]
    if first not in ("s", "S"):
        return None
    match = _COMMAND.match(sql)
    if match is None:
        return None
    groups = match.groupdict()
    if groups["sharding_key"] is not None:
        return _sharding_key(groups["sharding_key"])
    if groups["shard"] is not None:
        return _shard(groups["shard"])
    if groups["role"] is not None:
        return CustomCommand(CommandKind.SET_SERVER_ROLE, groups["role"].lower())
    if groups["primary_reads"] is not None:
        return CustomCommand(CommandKind.SET_PRIMARY_READS, groups["primary_reads"])
    if groups["show_shard"] is not None:
        return CustomCommand(CommandKind.SHOW_SHARD)
    if groups["show_role"] is not None:
        return CustomCommand(CommandKind.SHOW_SERVER_ROLE)
    return CustomCommand(CommandKind.SHOW_PRIMARY_READS)


def _bigint(digits: str) -> int | None:
    """The value of a string of digits, or None beyond bigint (int() of a huge string is
    slow, and refused past 4300 digits)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(BIGINT_MAX)) or int(significant) > BIGINT_MAX:
        return None
    return int(significant)


def _sharding_key(digits: str) -> CustomCommand:
    value = _bigint(digits)
    if value is None:
        return CustomCommand(
            CommandKind.SET_SHARDING_KEY,
            error=f"sharding key {digits[:40]} is out of range for type bigint",
        )
    return CustomCommand(CommandKind.SET_SHARDING_KEY, value)


def _shard(text: str) -> CustomCommand:
    if text.isalpha():
        return CustomCommand(CommandKind.SET_SHARD, "any")
    value = _bigint(text)
    if value is None:
        return CustomCommand(CommandKind.SET_SHARD, error=f"shard {text[:40]} is out of range")
    return CustomCommand(CommandKind.SET_SHARD, value)
