"""EXPLAIN ROUTE <statement>: the proxy says where the statement would go, and why, without
running it; a plain EXPLAIN still reaches PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import proxy_config

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)


def test_explain_route(pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    with psycopg.connect(pg_topology.primary.superuser_dsn("app"), autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS explained; CREATE TABLE explained (n int);"
                   "GRANT ALL ON explained TO app")
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=2,
        extra_pool={"query_parser_enabled": True, "query_parser_read_write_splitting": True,
                    "primary_reads_enabled": False}))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        cur = conn.execute("EXPLAIN ROUTE SELECT n FROM explained")
        names = [c.name for c in cur.description or ()]
        read = dict(zip(names, cur.fetchone() or (), strict=True))
        assert (read["shard"], read["role"], read["write"]) == (0, "replica", "f")
        assert read["tables"] == "explained" and "app_shard_0_replica" in read["servers"]
        cur = conn.execute("explain route INSERT INTO explained VALUES (1);")
        write = dict(zip(names, cur.fetchone() or (), strict=True))
        assert (write["role"], write["write"], write["kinds"]) == ("primary", "t", "INSERT")
        assert write["servers"] == "app_shard_0_primary"
        assert conn.execute("SELECT count(*) FROM explained").fetchone() == (0,)  # never ran
        plan = conn.execute("EXPLAIN SELECT 1").fetchall()
        assert plan and "Result" in plan[0][0]  # PostgreSQL's own EXPLAIN


def test_an_empty_query_gets_postgresqls_answer(pg_topology: Topology,
                                                proxy_runner: ProxyRunner) -> None:
    """A Query with no text at all (found by the fuzzer: it used to crash the session)."""
    from tests.harness.rawclient import RawClient, describe

    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=2,
                                      extra_pool={"default_role": "primary"}))
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app")
        client.send(b"Q\0\0\0\x04")
        messages = client.read_until(b"Z")
        assert messages[-1][0] == ord("Z"), describe(messages)
        assert client.query("SELECT 1")[-1][0] == ord("Z")
