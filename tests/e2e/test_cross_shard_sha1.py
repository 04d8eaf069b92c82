"""Cross-shard writes with pgcat's sha1 sharding function: a multi-row INSERT, COPY and
executemany put each row on the shard sharding/'s sha1 gives its key (PostgreSQL has no
sha1 partitioning to check against, so the shards' tables are plain)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from sharding import ShardingFunction, ShardMap
from tests.harness.proxy import ProxyProcess, proxy_config, start_proxy

from .sharded_writes import sharded_topology, through

pytestmark = [pytest.mark.pg, pytest.mark.timeout(300)]

SHA1 = ShardMap(3, ShardingFunction.SHA1)
IDS = list(range(1, 60))

topology = pytest.fixture(scope="module")(sharded_topology)


@pytest.fixture(scope="module")
def proxy(topology: Topology, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ProxyProcess]:
    for shard in topology.shards:
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE sdata (id bigint PRIMARY KEY, v text)")
    text = proxy_config(topology, port=free_port(), pool_size=3, sharded_pool=True,
                        extra_pool={"query_parser_enabled": True,
                                    "query_parser_read_write_splitting": True,
                                    "automatic_sharding_key": "sdata.id",
                                    "sharding_function": "sha1",
                                    "cross_shard_writes": "allow"})
    started = start_proxy(text, Path(tmp_path_factory.mktemp("sha1")))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def empty(topology: Topology) -> Topology:
    for shard in topology.shards:
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            conn.execute("TRUNCATE sdata")
    return topology


def assert_sha1_placed(topology: Topology, ids: list[int]) -> None:
    for index, shard in enumerate(topology.shards):
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            found = [r[0] for r in conn.execute("SELECT id FROM sdata ORDER BY id")]
        assert found == sorted(i for i in ids if SHA1.shard_for(i) == index)


def test_insert_copy_and_executemany_follow_sha1(proxy: ProxyProcess, empty: Topology
                                                 ) -> None:
    assert len({SHA1.shard_for(i) for i in IDS}) == 3
    with through(proxy) as conn:
        rows = ", ".join(f"({i}, 'v')" for i in IDS[:20])
        cursor = conn.execute(f"INSERT INTO sdata (id, v) VALUES {rows} RETURNING id")
        assert [r[0] for r in cursor.fetchall()] == IDS[:20]
        with conn.cursor().copy("COPY sdata (id, v) FROM STDIN (FORMAT csv)") as copy:
            copy.write("".join(f"{i},c\n" for i in IDS[20:40]))
        conn.cursor().executemany("INSERT INTO sdata (id, v) VALUES (%s, %s)",
                                  [(i, "m") for i in IDS[40:]])
        assert conn.execute("UPDATE sdata SET v = 'all'").rowcount == len(IDS)
    assert_sha1_placed(empty, IDS)
