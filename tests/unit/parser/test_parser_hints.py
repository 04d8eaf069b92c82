"""Comment hints (query_router.rs: test_regex_shard_parsing) and settings validation."""

from __future__ import annotations

import pytest

from parser import CommentHint, ParserSettings, ShardingKey, comment_hints

HINTED = ParserSettings.build(
    sharding_key_regex=r"/\* sharding_key: (\d+) \*/",
    shard_id_regex=r"/\* shard_id: (\d+) \*/",
)


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        (";", None),
        ("/* shard_id: 1 */ select 1 from foo;", CommentHint(shard_id=1)),
        ("/* shard_id: 0 */ select 1 from foo;", CommentHint(shard_id=0)),
        ("/* sharding_key: 6 */ select 1 from foo;", CommentHint(sharding_key=6)),
        ("select 1 from foo /* sharding_key: 6 */", CommentHint(sharding_key=6)),
        (
            "/* sharding_key: 6 */ /* shard_id: 2 */ select 1",
            CommentHint(shard_id=2),  # shard_id_regex is checked first
        ),
        ("/* sharding_key: 99999999999999999999 */ select 1", None),  # not an i64
        ("select 1", None),
    ],
)
def test_pgcat_comment_hints(sql: str, hint: CommentHint | None) -> None:
    assert comment_hints(sql, HINTED) == hint


def test_comments_are_ignored_without_regexes() -> None:
    assert comment_hints("/* shard_id: 2 */ SELECT 1", ParserSettings()) is None


def test_hints_are_searched_only_in_the_first_regex_search_limit_bytes() -> None:
    settings = ParserSettings.build(
        shard_id_regex=r"/\* shard_id: (\d+) \*/", regex_search_limit=30
    )
    assert comment_hints("/* shard_id: 3 */ SELECT 1", settings) == CommentHint(shard_id=3)
    late = "SELECT 1, 2, 3, 4, 5, 6, 7, 8 /* shard_id: 3 */"
    assert comment_hints(late, settings) is None
    # The limit counts UTF-8 bytes: 'é' is two of them.
    assert comment_hints("SELECT 'éééééééé' /* shard_id: 3 */", settings) is None


def test_signed_sharding_key_hint_if_the_regex_allows_it() -> None:
    settings = ParserSettings.build(sharding_key_regex=r"/\* key: (-?\d+) \*/")
    assert comment_hints("/* key: -5 */ SELECT 1", settings) == CommentHint(sharding_key=-5)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("data.id", ShardingKey("data", "id")),
        ('"Data"."ID"', ShardingKey("data", "id")),
        ("*.w_id", ShardingKey(None, "w_id")),
    ],
)
def test_sharding_key_forms(text: str, key: ShardingKey) -> None:
    assert ShardingKey.parse(text) == key
    assert str(key) in (text.lower().replace('"', ""),)


@pytest.mark.parametrize("text", ["id", "a.b.c", ".id", "data.", ""])
def test_bad_sharding_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="automatic_sharding_key"):
        ParserSettings.build(automatic_sharding_key=text)


@pytest.mark.parametrize(
    "settings",
    [
        {"shard_id_regex": "("},
        {"sharding_key_regex": "no group"},
        {"query_parser_max_length": -1},
        {"regex_search_limit": -1},
        {"cache_size": 0},
        {"write_functions": ["not a name"]},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ParserSettings.build(**settings)  # type: ignore[arg-type]


def test_settings_are_hashable_values() -> None:
    first = ParserSettings.build(automatic_sharding_key="data.id", shard_id_regex=r"(\d+)")
    second = ParserSettings.build(automatic_sharding_key="data.id", shard_id_regex=r"(\d+)")
    assert first == second and hash(first) == hash(second)
