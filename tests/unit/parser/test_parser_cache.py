"""The shape cache: one sqlglot analysis per shape, values from the query at hand."""

from __future__ import annotations

from parser import (
    CommentHint,
    KeyStatus,
    ParamRef,
    Parser,
    ParserSettings,
    ShardKeys,
    classify,
    comment_hints,
)
from parser.core import MAX_CACHED_SHAPE


def test_queries_of_one_shape_hit_the_cache_and_keep_their_own_keys() -> None:
    parser = Parser(ParserSettings.build(automatic_sharding_key="pgbench_accounts.aid"))
    results = [
        parser.classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
        for aid in range(1, 101)
    ]
    info = parser.cache_info()
    assert (info.misses, info.hits) == (1, 99)
    assert [result.shard_keys.keys for result in results] == [(aid,) for aid in range(1, 101)]
    assert len({id(result.traits) for result in results}) == 1  # the cached part is shared


def test_classification_without_literal_keys_is_returned_from_the_cache_as_is() -> None:
    parser = Parser()
    assert parser.classify("SELECT 1") is parser.classify("SELECT 2")


def test_cache_is_an_lru_of_the_configured_size() -> None:
    parser = Parser(ParserSettings.build(cache_size=2))
    for sql in ("SELECT a", "SELECT b", "SELECT a", "SELECT c", "SELECT a", "SELECT b"):
        parser.classify(sql)
    info = parser.cache_info()
    assert (info.hits, info.misses, info.currsize, info.maxsize) == (2, 4, 2, 2)
    parser.cache_clear()
    assert parser.cache_info().currsize == 0


def test_comments_do_not_make_new_shapes() -> None:
    parser = Parser()
    parser.classify("/* shard_id: 1 */ SELECT * FROM t")
    parser.classify("/* shard_id: 2 */ SELECT * FROM t")
    assert parser.cache_info().misses == 1


def test_parameters_and_literals_keep_their_positions() -> None:
    parser = Parser(ParserSettings.build(automatic_sharding_key="t.k"))
    classification = parser.classify("SELECT * FROM t WHERE a = 'x' AND k IN ($3, 7, -2)")
    assert classification.shard_keys == ShardKeys(KeyStatus.FOUND, (ParamRef(3), 7, -2))


def test_module_level_classify_shares_a_parser_per_settings() -> None:
    settings = ParserSettings.build(automatic_sharding_key="data.id")
    assert classify("SELECT * FROM data WHERE id = 4", settings).shard_keys.keys == (4,)
    assert classify("SELECT * FROM data WHERE id = 4").shard_keys.keys == ()


def test_literal_values_convert_as_postgresql_would() -> None:
    parser = Parser(ParserSettings.build(automatic_sharding_key="*.k"))

    def key(literal: str) -> object:
        found = parser.classify(f"SELECT * FROM t WHERE k = {literal}").shard_keys.keys
        return found[0]

    assert key("5.5") == "5.5"  # not an integer: its text, for the router to refuse
    assert key("5.5::bigint") == 6  # numeric -> bigint rounds half away from zero
    assert key("'abc'::bigint") == "abc"  # the server will reject it; no guess here
    assert key("' 7 '::int") == 7
    assert key("E'\\x41\\102\\u0043'") == "ABC"
    assert key("U&'\\0041'") == "A"
    assert key("'not-a-uuid'::uuid") == "not-a-uuid"


def test_very_long_shapes_are_not_kept_in_the_cache() -> None:
    parser = Parser()
    long_query = "SELECT " + ", ".join(f"column_{i}" for i in range(2000))
    assert len(long_query) > MAX_CACHED_SHAPE
    assert not parser.classify(long_query).is_write
    assert parser.cache_info().currsize == 0


def test_lone_surrogates_never_raise() -> None:
    text = "SELECT '\udcff' /* shard_id: 1 */"
    settings = ParserSettings.build(query_parser_max_length=100, shard_id_regex=r"shard_id: (\d+)")
    assert not Parser(settings).classify(text).is_write
    assert comment_hints(text, settings) == CommentHint(shard_id=1)
