"""The Router's decisions without any server: roles, shards, overrides, caches, errors."""

from __future__ import annotations

import pytest

from parser import ParserSettings, classify
from pgcat_py.router import (
    ANY,
    PRIMARY,
    REPLICA,
    Overrides,
    RouteError,
    Router,
    RouterSettings,
    read_only_transaction,
)

SPLIT = {"query_parser_enabled": True, "read_write_splitting": True}


def router(**settings: object) -> Router:
    return Router(RouterSettings(**settings))  # type: ignore[arg-type]


def test_reads_go_to_replicas_and_everything_else_to_the_primary() -> None:
    r = router(**SPLIT)
    assert r.route("SELECT 1", Overrides()).role == REPLICA
    assert r.route("SELECT 1 FOR UPDATE", Overrides()).role == PRIMARY
    assert r.route("SELEC 1", Overrides()).role == PRIMARY  # unparseable
    assert r.route(None, Overrides()).role == PRIMARY  # not looked at


def test_primary_reads_make_reads_go_anywhere() -> None:
    assert router(**SPLIT, primary_reads_enabled=True).route("SELECT 1", Overrides()).role == ANY


def test_nothing_is_sticky_after_an_unparseable_statement() -> None:
    r = router(**SPLIT)
    assert r.route("SELEC 1", Overrides()).role == PRIMARY
    assert r.route("SELECT 1", Overrides()).role == REPLICA


def test_the_text_cache_gives_the_same_route_object() -> None:
    r = router(**SPLIT)
    first = r.route("SELECT 2", Overrides())
    assert r.route("SELECT 2", Overrides()) is first


def test_texts_of_one_shape_share_a_decision_without_the_parser(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = router(**SPLIT)
    first = r.route("SELECT * FROM t WHERE id = 1", Overrides())
    assert r.route("SELECT * FROM t WHERE id = 1 FOR UPDATE", Overrides()).role == PRIMARY
    assert r.parser is not None
    monkeypatch.setattr(r.parser, "classify", None)  # a shape seen before: not classified
    assert r.route("SELECT * FROM t WHERE id = 2", Overrides()) is first
    assert r.route("SELECT * FROM t WHERE id = 3 FOR UPDATE", Overrides()).role == PRIMARY


def test_keyed_routes_are_not_remembered_by_shape() -> None:
    keyed = router(**SPLIT, shards=2, parser=ParserSettings.build(automatic_sharding_key=["t.id"]))
    assert keyed._by_shape is None  # the literals pick the shard
    assert router(query_parser_enabled=True)._by_shape is None  # nothing parsed at all


def test_overrides_are_not_served_from_the_text_cache() -> None:
    r = router(**SPLIT)
    r.route("SELECT 3", Overrides())
    overrides = Overrides(role=PRIMARY, parser=False)
    overrides.changed()
    assert r.route("SELECT 3", overrides).role == PRIMARY


def test_session_mode_keeps_reads_on_the_primary() -> None:
    assert router(**SPLIT, session_mode=True).route("SELECT 1", Overrides()).role == PRIMARY


@pytest.mark.parametrize(("begin", "read_only"), [
    ("BEGIN READ ONLY", True), ("BEGIN", False),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", False),
])
def test_read_only_transactions(begin: str, read_only: bool) -> None:
    assert read_only_transaction(classify(begin), {}) is read_only
    role = router(**SPLIT).route("SELECT 1", Overrides(), read_only_txn=read_only).role
    assert role == (REPLICA if read_only else PRIMARY)


def test_default_transaction_read_only_counts() -> None:
    assert read_only_transaction(classify("BEGIN"), {"default_transaction_read_only": "on"})


def test_automatic_sharding_by_literal_and_by_bind() -> None:
    r = router(**SPLIT, shards=3,
               parser=ParserSettings.build(automatic_sharding_key="data.id"))
    assert r.route("SELECT * FROM data WHERE id = 5", Overrides()).shard == 2  # pgcat's vector
    bound = r.route("SELECT * FROM data WHERE id = $1", Overrides(), bind=[(b"5", 0)])
    assert bound.shard == 2
    with pytest.raises(RouteError) as caught:
        r.route("SELECT * FROM data WHERE id = 5 OR id = 6", Overrides())
    assert caught.value.sqlstate == "0A000"


def test_default_shard_fail_refuses_to_guess() -> None:
    r = router(shards=2, default_shard="fail", **SPLIT)
    with pytest.raises(RouteError, match="default_shard is 'fail'"):
        r.route("SELECT 1", Overrides())


def test_comment_hints_win_over_keys() -> None:
    r = router(shards=3, **SPLIT, parser=ParserSettings.build(
        shard_id_regex=r"/\* shard_id: (\d+) \*/", automatic_sharding_key="data.id"))
    assert r.route("/* shard_id: 1 */ SELECT * FROM data WHERE id = 5", Overrides()).shard == 1


def test_set_shard_override_wins() -> None:
    overrides = Overrides(shard=2)
    overrides.changed()
    assert router(shards=3).route("SELECT 1", overrides).shard == 2


def test_too_long_to_parse_goes_to_the_primary() -> None:
    r = router(**SPLIT, parser=ParserSettings.build(query_parser_max_length=20))
    assert r.route("SELECT 1", Overrides()).role == REPLICA
    assert r.route("SELECT 1 /* padding beyond twenty bytes */", Overrides()).role == PRIMARY


def test_random_default_shard_spreads_and_random_healthy_avoids_unhealthy_shards() -> None:
    r = router(shards=3, default_shard="random")
    assert {r.route("SELECT 1", Overrides()).shard for _ in range(200)} == {0, 1, 2}
    healthy = router(shards=3, default_shard="random_healthy")
    healthy.healthy_shards = lambda: [1]
    assert {healthy.route("SELECT 1", Overrides()).shard for _ in range(50)} == {1}


def test_sha1_sharding_function() -> None:
    from sharding import sha1

    r = router(shards=4, sharding_function="sha1")
    assert r.shard_for_key(12345) == sha1(12345, 4)
