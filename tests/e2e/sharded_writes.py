"""Shared by the cross-shard write tests (test_cross_shard_writes.py, test_cross_shard_copy.py):
3 shards whose `data` table is `PARTITION BY HASH (id)` with only the shard's own partition
(MODULUS 3), so PostgreSQL itself refuses a row sent to the wrong shard, and proxies with
cross_shard_writes "allow" or "refuse"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from sharding import ShardMap
from tests.conftest import own_topology
from tests.harness.proxy import ProxyProcess, proxy_config, start_proxy

from .conftest import dsn

SHARDS = 3
SHARD_MAP = ShardMap(SHARDS)
TABLE = "(id bigint PRIMARY KEY, v text, n int DEFAULT 0)"
Connection = psycopg.Connection[tuple[object, ...]]


def sharded_topology() -> Iterator[Topology]:
    """A module fixture: the shards, each with its partition of data."""
    with own_topology(replicas=0, shards=SHARDS) as topo:
        for index, shard in enumerate(topo.shards):
            with psycopg.connect(shard.dsn(), autocommit=True) as conn:
                conn.execute(f"CREATE TABLE data {TABLE} PARTITION BY HASH (id)")
                conn.execute(f"CREATE TABLE data_{index} PARTITION OF data "
                             f"FOR VALUES WITH (MODULUS {SHARDS}, REMAINDER {index})")
        yield topo


def writes_proxy(topology: Topology, tmp_path_factory: pytest.TempPathFactory, writes: str
                 ) -> Iterator[ProxyProcess]:
    """A module fixture: a proxy with cross_shard_writes = ``writes``."""
    text = proxy_config(topology, port=free_port(), pool_size=3, sharded_pool=True,
                        extra_pool={"query_parser_enabled": True,
                                    "query_parser_read_write_splitting": True,
                                    "automatic_sharding_key": "data.id",
                                    "cross_shard_writes": writes})
    started = start_proxy(text, Path(tmp_path_factory.mktemp(writes)))
    try:
        yield started
    finally:
        started.stop()


def emptied(topology: Topology) -> Topology:
    for shard in topology.shards:
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            conn.execute("TRUNCATE data")
    return topology


def through(proxy: ProxyProcess) -> Connection:
    return psycopg.connect(dsn(proxy, dbname="sharded"), autocommit=True)


def on_shards(topology: Topology) -> list[list[tuple[object, ...]]]:
    """Each shard's rows of data, by id."""
    found = []
    for shard in topology.shards:
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            found.append(conn.execute("SELECT id, v, n FROM data ORDER BY id").fetchall())
    return found


def assert_placed(topology: Topology, ids: list[int]) -> None:
    """The rows of ``ids`` are on the shards pg_bigint_hash gives them, and no others."""
    rows = on_shards(topology)
    for index, shard_rows in enumerate(rows):
        assert [r[0] for r in shard_rows] == sorted(
            i for i in ids if SHARD_MAP.shard_for(i) == index)


# The fixtures of the modules that write through a proxy with writes allowed and one that
# refuses them (import them by name into the test module).
topology = pytest.fixture(scope="module", name="topology")(sharded_topology)


@pytest.fixture(scope="module", name="proxy")
def allowing_proxy(topology: Topology, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ProxyProcess]:
    yield from writes_proxy(topology, tmp_path_factory, "allow")


@pytest.fixture(scope="module", name="refusing")
def refusing_proxy(topology: Topology, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ProxyProcess]:
    yield from writes_proxy(topology, tmp_path_factory, "refuse")


@pytest.fixture(name="empty")
def empty_shards(topology: Topology) -> Topology:
    return emptied(topology)
