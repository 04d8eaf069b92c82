"""Candidate order in a cluster: load-balancing modes, bans, failover to the primary; route
stats keys."""

from __future__ import annotations

import collections
import logging
import time

import pytest

from pgcat_py.backend.server import ServerTarget
from pgcat_py.frontend import session as session_module
from pgcat_py.pool.cluster import ROUTES_LOGGER, Cluster, ClusterSettings
from pgcat_py.pool.server_pool import PoolSettings, ServerPool


def cluster(mode: str, failover: bool = True) -> Cluster:
    pools = [ServerPool(ServerTarget("127.0.0.1", port, "db", "u", None, role, f"s{port}"),
                        PoolSettings(pool_size=1, ban_time=30))
             for port, role in ((1, "primary"), (2, "replica"), (3, "replica"))]
    return Cluster(ClusterSettings("p", "u", load_balancing_mode=mode,
                                   replica_to_primary_failover=failover), [pools])


def names(pools: list[ServerPool]) -> list[str]:
    return [p.target.name for p in pools]


def test_round_robin_takes_each_replica_first_in_turn() -> None:
    c = cluster("round_robin")
    firsts = [names(c.candidates(0, "replica"))[0] for _ in range(6)]
    assert firsts == ["s2", "s3"] * 3


def test_random_spreads_first_choices() -> None:
    c = cluster("random")
    firsts = collections.Counter(names(c.candidates(0, "replica"))[0] for _ in range(400))
    assert 120 < firsts["s2"] < 280 and firsts["s2"] + firsts["s3"] == 400


def test_loc_prefers_the_least_busy_replica() -> None:
    c = cluster("loc")
    c.shards[0][1].active.add(object())  # type: ignore[arg-type]
    assert names(c.candidates(0, "replica"))[0] == "s3"


def test_replica_reads_fail_over_to_the_primary_last() -> None:
    assert names(cluster("random").candidates(0, "replica"))[-1] == "s1"
    assert "s1" not in names(cluster("random", failover=False).candidates(0, "replica"))


def test_a_banned_replica_is_skipped_and_all_banned_are_all_unbanned() -> None:
    c = cluster("random")
    s2, s3 = c.shards[0][1], c.shards[0][2]
    s2.ban("test", now=time.monotonic())
    assert names(c.candidates(0, "replica")) == ["s3", "s1"]
    s3.ban("test", now=time.monotonic())
    assert sorted(names(c.candidates(0, "replica"))[:2]) == ["s2", "s3"]  # unbanned


def test_the_primary_is_never_banned() -> None:
    c = cluster("random")
    primary = c.shards[0][0]
    primary.ban("test")
    assert not primary.banned_until and primary.errors == 1


def test_a_promotion_moves_roles() -> None:
    c = cluster("random")
    c._promote(0, c.shards[0][0], c.shards[0][2])
    assert names(c.candidates(0, "primary")) == ["s3"]
    assert sorted(names(c.candidates(0, "replica"))) == ["s1", "s2", "s3"]


def test_routes_are_counted_by_stats_key() -> None:
    from pgcat_py.router import Route

    c = cluster("random")
    read, write = Route(0, "replica", "read"), Route(0, "primary", "write")
    again = Route(0, "replica", "read")  # equal, not the same object: the same key
    for route in (read, read, write, again):
        c.count_route(route)
    c.fixed_route_count = 2
    assert c.route_counts() == {("p", "u", 0, "replica", "read"): 3,
                                ("p", "u", 0, "primary", "write"): 1,
                                c.fixed_route_key: 2}


def test_route_counts_survive_folding(monkeypatch: pytest.MonkeyPatch) -> None:
    from pgcat_py.pool import cluster as cluster_module
    from pgcat_py.router import Route

    monkeypatch.setattr(cluster_module, "MAX_COUNTED_ROUTES", 2)
    c = cluster("random")
    routes = [Route(0, "replica", "read"), Route(0, "primary", "write"),
              Route(0, "replica", "read"), Route(0, "primary", "write")]
    for route in routes * 3:  # each new route past two folds the counts so far
        c.count_route(route)
    assert c.route_counts() == {("p", "u", 0, "replica", "read"): 6,
                                ("p", "u", 0, "primary", "write"): 6}


def test_a_cluster_logs_routes_when_the_session_logger_takes_debug() -> None:
    assert session_module.log.name == ROUTES_LOGGER  # the logger the session logs routes on
    logger = logging.getLogger(ROUTES_LOGGER)
    level = logger.level
    try:
        logger.setLevel(logging.DEBUG)
        assert cluster("random").logs_routes
        logger.setLevel(logging.INFO)
        assert not cluster("random").logs_routes
    finally:
        logger.setLevel(level)


# take_now picks the first choice without building the ordered candidate list when nothing
# is banned or lagging: the same choices as candidates()[0] in every mode

class IdleServer:
    """What ServerPool._pop_idle looks at in an idle server: usable, fresh, nothing unread."""

    is_usable, has_unread, last_answered = True, False, 0.0

    def __init__(self) -> None:
        self.created_at = self.last_used = time.monotonic()


def first_taken(c: Cluster, role: str = "replica") -> str:
    taken = c.take_now(0, role)
    assert taken is not None
    pool, server = taken
    pool.active.discard(server)
    pool.idle.append(server)  # back, for the next draw
    return pool.target.name


def with_idle_servers(c: Cluster) -> Cluster:
    for pool in c.shards[0]:
        pool.idle.append(IdleServer())  # type: ignore[arg-type]
    return c


def test_take_now_takes_each_replica_first_in_turn() -> None:
    c = with_idle_servers(cluster("round_robin"))
    assert [first_taken(c) for _ in range(4)] == ["s2", "s3"] * 2


def test_take_now_spreads_random_first_choices() -> None:
    c = with_idle_servers(cluster("random"))
    firsts = collections.Counter(first_taken(c) for _ in range(400))
    assert 120 < firsts["s2"] < 280 and firsts["s2"] + firsts["s3"] == 400


def test_take_now_prefers_the_least_busy_replica_with_loc() -> None:
    c = with_idle_servers(cluster("loc"))
    c.shards[0][1].active.add(object())  # type: ignore[arg-type]
    assert {first_taken(c) for _ in range(20)} == {"s3"}


def test_take_now_skips_a_banned_replica() -> None:
    c = with_idle_servers(cluster("random"))
    c.shards[0][1].ban("test", now=time.monotonic())
    assert {first_taken(c) for _ in range(20)} == {"s3"}
