"""The pgcat.toml being written: tables of (value, comment) and their TOML text.

Built by hand rather than by a TOML library so each value can carry a comment naming the
PgBouncer key it came from; every string goes through `toml_string`, so passwords with
quotes, backslashes or control characters come out as the same string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..config.errors import join_key_path

Value = str | int | bool | list["Value"]


@dataclass
class Table:
    """One TOML table: key -> (value, comment), in the order written."""

    entries: dict[str, tuple[Value, str]] = field(default_factory=dict)

    def set(self, key: str, value: Value, note: str = "") -> None:
        self.entries[key] = (value, note)


@dataclass
class Conversion:
    """The pgcat.toml: [general], then per pool (its table, its users, its one shard)."""

    general: Table = field(default_factory=Table)
    pools: dict[str, tuple[Table, list[Table], Table]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, where: str, message: str) -> None:
        """Once each: a key read for every pool would say the same thing per pool."""
        warning = f"{where}: {message}"
        if warning not in self.warnings:
            self.warnings.append(warning)


def toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def toml_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return toml_string(value)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def _table_lines(path: list[str], table: Table) -> list[str]:
    lines = ["", "[" + ".".join(toml_key(part) for part in path) + "]"]
    for key, (value, note) in table.entries.items():
        line = f"{toml_key(key)} = {toml_value(value)}"
        lines.append(f"{line:<40}  # {note}" if note else line)
    return lines


def render(conversion: Conversion, source: str) -> str:
    lines = [f"## pgcat.toml converted from {json.dumps(source)} by `pgcat-py convert`.",
             "## Review the warnings it printed; check with: pgcat-py --check pgcat.toml",
             "## Comments name the PgBouncer key each value came from."]
    lines += _table_lines(["general"], conversion.general)
    for name, (pool, users, shard) in conversion.pools.items():
        lines += _table_lines(["pools", name], pool)
        if not users:
            lines += ["", "[" + join_key_path(["pools", name, "users"]) + "]"]
        for index, user in enumerate(users):
            lines += _table_lines(["pools", name, "users", str(index)], user)
        lines += _table_lines(["pools", name, "shards", "0"], shard)
    return "\n".join(lines) + "\n"
