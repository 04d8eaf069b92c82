"""The Parser a pool holds: lex, look the shape up in an LRU cache, bind the literals.

The hot path is `Parser.classify`: one regex split (lexer), one dict lookup (the shape in
functools.lru_cache), and, only when shard keys come from literals, one small object. sqlglot
runs once per shape, on a cache miss. Prepared statements: classify the Parse message's
text once and keep the Classification with the statement; its ParamRefs say which Bind
parameters hold the keys (`ShardKeys.bind`).
"""

from __future__ import annotations

import functools
from typing import Any

from parser.analysis import ShapeAnalyser, ShapeAnalysis
from parser.classification import NO_KEYS, UNKNOWN_KEYS, Classification, unknown_write
from parser.lexer import lex
from parser.settings import ParserSettings

# Shapes longer than this are analysed every time, not cached: the cache holds its keys, and
# cache_size shapes of any length would let clients grow the proxy's memory without bound.
# OLTP statements are far shorter (the 10-join report of the benchmark is 1.1 KiB).
MAX_CACHED_SHAPE = 8192


class Parser:
    """Classifies SQL texts for one pool. Safe to share between the pool's sessions."""

    def __init__(self, settings: ParserSettings | None = None) -> None:
        self.settings = settings or ParserSettings()
        self._max_length = self.settings.max_length
        self._unknown_keys = UNKNOWN_KEYS if self.settings.sharding_keys else NO_KEYS
        self._too_long = unknown_write("longer than query_parser_max_length", self._unknown_keys)
        self._analyser = ShapeAnalyser(self.settings)
        self._analyse: functools._lru_cache_wrapper[ShapeAnalysis] = functools.lru_cache(
            maxsize=self.settings.cache_size
        )(self._analyser.analyse)

    def classify(self, sql: str) -> Classification:
        """Classify a whole query text (one or more statements). Never raises.

        For the extended protocol, classify the Parse message's query once and keep the
        result with the prepared statement: its ParamRefs name the Bind parameters that
        hold the shard keys (ShardKeys.bind).
        """
        if self._is_too_long(sql):
            return self._too_long
        shape, literals, unsafe = lex(sql)
        if unsafe is not None:
            return unknown_write(unsafe, self._unknown_keys)
        if len(shape) > MAX_CACHED_SHAPE:
            analysis = self._analyser.analyse(shape)
        else:
            analysis = self._analyse(shape)
        if analysis.plan is None:
            return analysis.classification
        try:
            return analysis.bind(literals)
        except Exception:  # never expected: a literal value conversion went wrong
            return unknown_write("shard key conversion failed", self._unknown_keys)

    def shape_of(self, sql: str) -> str | None:
        """The shape `classify` would look up for `sql` (None: too long, unsafe, or too long
        a shape to cache). Two texts of one shape get one Classification, but for the values
        of shard keys: a caller that needs no keys may remember its decisions by shape."""
        if self._is_too_long(sql):
            return None
        shape, _, unsafe = lex(sql)
        return shape if unsafe is None and len(shape) <= MAX_CACHED_SHAPE else None

    def _is_too_long(self, sql: str) -> bool:
        """Longer than query_parser_max_length (in bytes, as PostgreSQL counts)."""
        max_length = self._max_length
        return max_length is not None and (
            len(sql) > max_length or (not sql.isascii() and _utf8_length(sql) > max_length))

    def cache_info(self) -> Any:
        """functools' CacheInfo(hits, misses, maxsize, currsize) of the shape cache."""
        return self._analyse.cache_info()

    def cache_clear(self) -> None:
        """Forget every analysed shape."""
        self._analyse.cache_clear()


def _utf8_length(sql: str) -> int:
    """Bytes of `sql` in UTF-8 (lone surrogates, from a surrogateescape decode, count too)."""
    return len(sql.encode("utf-8", "surrogatepass"))


@functools.lru_cache(maxsize=16)
def parser_for(settings: ParserSettings | None = None) -> Parser:
    """A shared Parser per settings, for the module-level helpers."""
    return Parser(settings)


def classify(sql: str, settings: ParserSettings | None = None) -> Classification:
    """Classify `sql` with a shared Parser for `settings` (see Parser.classify)."""
    return parser_for(settings).classify(sql)
