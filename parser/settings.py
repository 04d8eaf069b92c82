"""The parser settings of one pool, built from pgcat's pool keys.

`ParserSettings.build` takes the pool keys by their pgcat.toml names (query_parser_max_length,
automatic_sharding_key, sharding_key_regex, shard_id_regex, regex_search_limit) plus our
extensions (write functions, cache size), checks them, and returns a frozen, hashable value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_CACHE_SIZE = 4096  # query shapes; a pgbench or TPC-C workload has fewer than 50
DEFAULT_REGEX_SEARCH_LIMIT = 1000  # pgcat's code default, in bytes


@dataclass(frozen=True, slots=True)
class ShardingKey:
    """One automatic sharding key: `table.column`, or `*.column` (table None: any table).

    Names are lowercased and stripped of double quotes, as pgcat does; the table is matched
    against the last part of a table name (the schema is ignored).
    """

    table: str | None
    column: str

    @classmethod
    def parse(cls, text: str) -> ShardingKey:
        """Parse "table.column" or "*.column"; raise ValueError for anything else."""
        parts = text.replace('"', "").lower().split(".")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(
                f"automatic_sharding_key {text!r} must be 'table.column' or '*.column'"
            )
        table, column = (part.strip() for part in parts)
        return cls(None if table == "*" else table, column)

    def __str__(self) -> str:
        return f"{self.table or '*'}.{self.column}"


@dataclass(frozen=True, slots=True)
class ParserSettings:
    """What the parser needs to know about a pool. Build it with `ParserSettings.build`.

    max_length: texts longer than this (UTF-8 bytes) are not parsed: they are writes.
    sharding_keys: the automatic sharding keys; none means shard keys are not extracted.
    write_functions: extra function names that make a SELECT a write; a trailing `*` makes
        a prefix (`audit_*`). Added to the built-in list (nextval, pg_advisory_*, ...).
    shard_id_regex / sharding_key_regex: comment hints, group 1 is the value.
    regex_search_limit: how many leading bytes of the text the hint regexes see.
    cache_size: how many query shapes each Parser keeps analysed (LRU).
    """

    max_length: int | None = None
    sharding_keys: tuple[ShardingKey, ...] = ()
    write_functions: frozenset[str] = frozenset()
    shard_id_regex: re.Pattern[str] | None = None
    sharding_key_regex: re.Pattern[str] | None = None
    regex_search_limit: int = DEFAULT_REGEX_SEARCH_LIMIT
    cache_size: int = DEFAULT_CACHE_SIZE

    @classmethod
    def build(
        cls,
        *,
        query_parser_max_length: int | None = None,
        automatic_sharding_key: str | Iterable[str] | None = None,
        write_functions: Iterable[str] = (),
        shard_id_regex: str | None = None,
        sharding_key_regex: str | None = None,
        regex_search_limit: int = DEFAULT_REGEX_SEARCH_LIMIT,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> ParserSettings:
        """Check and normalise pool keys; raise ValueError naming the bad key."""
        if isinstance(automatic_sharding_key, str):
            automatic_sharding_key = [automatic_sharding_key]
        keys = tuple(ShardingKey.parse(key) for key in automatic_sharding_key or ())
        if query_parser_max_length is not None and query_parser_max_length < 0:
            raise ValueError("query_parser_max_length must not be negative")
        if regex_search_limit < 0:
            raise ValueError("regex_search_limit must not be negative")
        if cache_size < 1:
            raise ValueError("the parser cache size must be at least 1")
        return cls(
            max_length=query_parser_max_length,
            sharding_keys=keys,
            write_functions=frozenset(_function_name(name) for name in write_functions),
            shard_id_regex=_compile("shard_id_regex", shard_id_regex),
            sharding_key_regex=_compile("sharding_key_regex", sharding_key_regex),
            regex_search_limit=regex_search_limit,
            cache_size=cache_size,
        )


def _function_name(name: str) -> str:
    """A configured write function name, lowercased, checked to be a name or a prefix*."""
    cleaned = name.strip().lower()
    if not re.fullmatch(r"[a-z_][a-z0-9_$]*\*?", cleaned):
        raise ValueError(f"write function {name!r} is not a function name (or name*)")
    return cleaned


def _compile(key: str, pattern: str | None) -> re.Pattern[str] | None:
    """Compile a hint regex (Python syntax; pgcat's Rust syntax agrees on the usual forms)."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{key} {pattern!r} is not a valid regex: {error}") from error
    if compiled.groups < 1:
        raise ValueError(f"{key} {pattern!r} needs a capture group for the value")
    return compiled
