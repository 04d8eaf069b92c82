"""Comment hints: shard_id_regex and sharding_key_regex over the head of the raw text.

pgcat (query_router.rs, routing_shard_base_on_regex) scans the first regex_search_limit
bytes of a Query or Parse message; shard_id_regex wins over sharding_key_regex; group 1 is
the value, and a value that does not parse as a number is no hint. The raw text is used, not
the shape: the hints live in comments, which the shape drops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parser.custom_commands import BIGINT_MAX
from parser.settings import ParserSettings


@dataclass(frozen=True, slots=True)
class CommentHint:
    """A shard chosen by a comment: exactly one of shard_id and sharding_key is set."""

    shard_id: int | None = None
    sharding_key: int | None = None


def comment_hints(sql: str, settings: ParserSettings) -> CommentHint | None:
    """The hint in the first regex_search_limit bytes of `sql`, or None."""
    shard_id_regex, sharding_key_regex = settings.shard_id_regex, settings.sharding_key_regex
    if shard_id_regex is None and sharding_key_regex is None:
        return None
    head = _head(sql, settings.regex_search_limit)
    if shard_id_regex is not None:
        shard_id = _number(shard_id_regex.search(head), signed=False)
        if shard_id is not None:
            return CommentHint(shard_id=shard_id)
    if sharding_key_regex is not None:
        key = _number(sharding_key_regex.search(head), signed=True)
        if key is not None:
            return CommentHint(sharding_key=key)
    return None


def _head(sql: str, limit: int) -> str:
    """The first `limit` UTF-8 bytes of `sql` (a character cut in half is replaced)."""
    if sql.isascii():
        return sql[:limit]
    return sql.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", errors="replace")


def _number(match: re.Match[str] | None, *, signed: bool) -> int | None:
    """Group 1 of a match as an integer within pgcat's i64 (a key) or usize (a shard id)."""
    text = match.group(1) if match is not None else None
    if not text:
        return None
    sign, digits = (text[0], text[1:]) if signed and text[0] in "+-" else ("", text)
    if not (digits.isascii() and digits.isdigit()) or len(digits.lstrip("0")) > 19:
        return None
    value = -int(digits) if sign == "-" else int(digits)
    return value if -BIGINT_MAX - 1 <= value <= BIGINT_MAX else None
