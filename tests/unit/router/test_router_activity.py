"""The Router with db_activity_based_routing and with plugins: reasons in the Route, a
tracker per pool, and nothing changed for pools that have neither."""

from __future__ import annotations

import pytest

from pgcat_py.activity import ActivitySettings, DbActivity
from pgcat_py.plugins import PoolPlugins
from pgcat_py.router import ANY, PRIMARY, REPLICA, Overrides, Router, RouterSettings

SPLIT = RouterSettings(query_parser_enabled=True, read_write_splitting=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def router(settings: RouterSettings, activity: DbActivity, clock: Clock) -> Router:
    r = Router(settings, activity=activity)
    r.clock = clock
    return r


def tracker() -> DbActivity:
    return DbActivity(ActivitySettings(init_delay_ms=100, ttl_s=900, mutation_ttl_ms=50))


def test_reads_follow_the_writes_of_the_pool(clock: Clock) -> None:
    r = router(SPLIT, tracker(), clock)
    first = r.route("SELECT * FROM orders", Overrides())
    assert (first.role, first.reason) == (PRIMARY, "db activity initializing")
    clock.now += 0.2
    assert r.route("SELECT * FROM orders", Overrides()).role == REPLICA
    assert r.route("INSERT INTO orders VALUES (1)", Overrides()).role == PRIMARY
    after = r.route("SELECT * FROM orders o JOIN items i ON true", Overrides())
    assert (after.role, after.reason) == (PRIMARY, "recently written table: orders")
    assert r.route("SELECT * FROM items", Overrides()).role == REPLICA
    clock.now += 0.05
    assert r.route("SELECT * FROM orders", Overrides()).role == REPLICA


def test_the_users_of_a_pool_share_its_tracker_and_other_pools_do_not(clock: Clock) -> None:
    shared = tracker()
    alice, bob = router(SPLIT, shared, clock), router(SPLIT, shared, clock)
    other = router(SPLIT, tracker(), clock)
    for r in (alice, other):
        r.route("SELECT 1", Overrides())
    clock.now += 0.2
    alice.route("UPDATE orders SET x = 1", Overrides())
    assert bob.route("SELECT * FROM orders", Overrides()).role == PRIMARY
    assert other.route("SELECT * FROM orders", Overrides()).role == REPLICA


def test_primary_reads_and_overrides(clock: Clock) -> None:
    r = router(RouterSettings(query_parser_enabled=True, read_write_splitting=True,
                              primary_reads_enabled=True), tracker(), clock)
    r.route("SELECT 1", Overrides())
    clock.now += 0.2
    assert r.route("SELECT * FROM t", Overrides()).role == ANY
    r.route("DELETE FROM t", Overrides(role=PRIMARY))  # a write by a client that chose
    assert r.route("SELECT * FROM t", Overrides()).role == PRIMARY
    assert r.route("SELECT * FROM t", Overrides(role=REPLICA)).role == REPLICA  # as asked


def test_writes_pipelined_behind_are_remembered(clock: Clock) -> None:
    r = router(SPLIT, tracker(), clock)
    r.route("SELECT 1", Overrides())
    clock.now += 0.2
    r.note_writes([None, "SELECT 2", "INSERT INTO audit VALUES (1)"], 0)
    assert r.route("SELECT * FROM audit", Overrides()).role == PRIMARY


def test_db_activity_needs_read_write_splitting() -> None:
    r = Router(RouterSettings(query_parser_enabled=True), activity=tracker())
    assert r.activity is None
    assert r.route("SELECT 1", Overrides()).reason == "default_role"


def test_pools_without_plugins_or_activity_keep_their_fixed_route_and_text_cache() -> None:
    plain = Router(RouterSettings(query_parser_enabled=True))
    assert not plain.varies and plain.plugins is None and plain.activity is None
    assert Router(RouterSettings(query_parser_enabled=True), plugins=PoolPlugins("p")).varies
    split = Router(SPLIT)
    split.route("SELECT 1", Overrides())
    assert "SELECT 1" in split._by_text
    tracked = Router(SPLIT, activity=tracker())
    tracked.route("SELECT 1", Overrides())
    assert tracked._by_text == {}  # a route that depends on time is never cached
