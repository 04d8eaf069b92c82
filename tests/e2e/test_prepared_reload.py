"""Prepared statements across a reload that rebuilds the pool: a client keeps the statements
it prepared on the old pool, and the new pool must never give another query the same
server-side name (found by benchmarks/soak.py: asyncpg got 22P03 after a RELOAD)."""

from __future__ import annotations

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)


def config(topology: Topology, port: int, idle_timeout: int) -> str:
    return proxy_config(topology, port=port, pool_size=1,
                        extra_pool={"default_role": "primary", "idle_timeout": idle_timeout})


def test_a_statement_prepared_before_a_rebuild_still_runs_its_own_query(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    port = free_port()
    proxy: ProxyProcess = proxy_runner(config(pg_topology, port, 60_000))
    with psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=0) as old, \
            psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=0) as new:
        assert old.execute("SELECT 1 + %s::int", [1], prepare=True).fetchone() == (2,)
        proxy.config_path.write_text(config(pg_topology, port, 61_000))  # the pool changes
        with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgbouncer"),
                             autocommit=True) as admin:
            admin.execute("RELOAD")
        # the new pool's first statement, on its only server
        assert new.execute("SELECT 'other ' || %s::text", ["x"], prepare=True).fetchone() == (
            "other x",)
        # the old client's statement, bound on that same server
        assert old.execute("SELECT 1 + %s::int", [2], prepare=True).fetchone() == (3,)
