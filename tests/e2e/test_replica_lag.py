"""Replica lag and read-your-writes, with replay really paused on the replicas
(pg_wal_replay_pause) while the primary writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.localpg.node import Node
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(120)
SPLITTING = {"query_parser_enabled": True, "query_parser_read_write_splitting": True,
             "primary_reads_enabled": False}


@contextmanager
def replay_paused(nodes: list[Node]) -> Iterator[None]:
    for node in nodes:
        with psycopg.connect(node.superuser_dsn("app"), autocommit=True) as su:
            su.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        for node in nodes:
            with psycopg.connect(node.superuser_dsn("app"), autocommit=True) as su:
                su.execute("SELECT pg_wal_replay_resume()")


def write_on_primary(topology: Topology, sql: str) -> None:
    with psycopg.connect(topology.primary.superuser_dsn("app"), autocommit=True) as su:
        su.execute(sql)


def ports_of_reads(proxy: ProxyProcess, count: int) -> set[int]:
    seen = set()
    for _ in range(count):
        with psycopg.connect(dsn(proxy), autocommit=True) as conn:
            row = conn.execute("SELECT inet_server_port()").fetchone()
            assert row is not None
            seen.add(int(row[0]))
    return seen


def test_a_lagging_replica_takes_no_reads_until_it_catches_up(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    lagging = pg_topology.replicas[0]
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=4,
        extra_general={"lag_check_interval": 100},
        extra_pool={**SPLITTING, "ban_replica_lag_bytes": 100_000}))
    assert lagging.port in ports_of_reads(proxy, 30)
    write_on_primary(pg_topology,
                     "DROP TABLE IF EXISTS lag_filler; CREATE TABLE lag_filler (n int)")
    with replay_paused([lagging]):
        write_on_primary(pg_topology, "INSERT INTO lag_filler SELECT generate_series(1, 50000)")
        assert wait_for(lambda: f"replica {proxy_name(0)} lags" in proxy.log_text()), \
            proxy.log_tail()
        assert lagging.port not in ports_of_reads(proxy, 30)
    assert wait_for(lambda: f"replica {proxy_name(0)} caught up" in proxy.log_text(),
                    timeout=20), proxy.log_tail()
    assert lagging.port in ports_of_reads(proxy, 30)


def proxy_name(index: int) -> str:
    return f"app_shard_0_replica_{index}"


def test_read_your_writes(pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    """After its own write, a client reads only from servers that have it; a client that
    wrote nothing keeps reading from the replicas."""
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=4,
        extra_general={"lag_check_interval": 100},
        extra_pool={**SPLITTING, "read_your_writes": True}))
    write_on_primary(pg_topology, "DROP TABLE IF EXISTS ryw; CREATE TABLE ryw (n int);"
                                  "GRANT ALL ON ryw TO app")
    replica_ports = {node.port for node in pg_topology.replicas}
    assert wait_for(lambda: ports_of_reads(proxy, 1) <= replica_ports)  # replicas have ryw
    writer = psycopg.connect(dsn(proxy), autocommit=True)
    reader = psycopg.connect(dsn(proxy), autocommit=True)

    def count(conn: psycopg.Connection[Any]) -> tuple[int, int]:
        row = conn.execute("SELECT count(*), inet_server_port() FROM ryw").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    try:
        with replay_paused(pg_topology.replicas):
            writer.execute("INSERT INTO ryw VALUES (1)")  # to the primary
            for _ in range(5):
                assert count(writer)[0] == 1  # it sees its own write, from the primary
            seen, port = count(reader)
            assert (seen, port in replica_ports) == (0, True)  # others: the replicas
        # Replay resumed: once the replicas have the write, the writer reads from them.
        assert wait_for(lambda: count(writer)[1] in replica_ports, timeout=20)
        assert count(writer)[0] == 1
    finally:
        writer.close()
        reader.close()


def backends_of(node: Node, user: str) -> int:
    with psycopg.connect(node.superuser_dsn("app"), autocommit=True) as su:
        row = su.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                         (user,)).fetchone()
    assert row is not None
    return int(row[0])


def test_lag_checks_do_not_grow_the_pools(pg_topology: Topology,
                                          proxy_runner: ProxyRunner) -> None:
    # F7: a lag check answered on an idle connection is proof of health; without it that
    # connection went stale, the next check sent it to a health check and opened another.
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=5,
        extra_general={"lag_check_interval": 20, "healthcheck_delay": 100},
        extra_pool={**SPLITTING, "ban_replica_lag_bytes": 100_000_000}))
    nodes = [pg_topology.primary, *pg_topology.replicas]
    ports_of_reads(proxy, 5)
    time.sleep(0.5)
    before = [backends_of(node, "app") for node in nodes]
    time.sleep(2.0)  # a hundred lag checks, twenty healthcheck_delays, no client
    after = [backends_of(node, "app") for node in nodes]
    assert all(a <= b for a, b in zip(after, before, strict=True)), (before, after)
    # At one moment a read may meet a lag check holding the freshest connection and a
    # health check of a stale one (idle past healthcheck_delay): three for reads made one
    # at a time. What F7 broke is the growth with no client, checked above.
    assert max(after) <= 3, after
