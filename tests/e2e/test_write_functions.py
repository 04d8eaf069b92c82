"""A SELECT that calls a VOLATILE user function may write: it goes to the primary (learned
from pg_proc), as do calls to the pool's configured write_functions; other reads still go to
the replicas."""

from __future__ import annotations

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)

FUNCTIONS = """
DROP TABLE IF EXISTS bumps; CREATE TABLE bumps (n int); GRANT ALL ON bumps TO app;
CREATE OR REPLACE FUNCTION bump() RETURNS int VOLATILE LANGUAGE sql
    AS 'INSERT INTO bumps VALUES (1) RETURNING n';
CREATE OR REPLACE FUNCTION answer() RETURNS int STABLE LANGUAGE sql AS 'SELECT 42';
"""


def test_volatile_functions_go_to_the_primary(pg_topology: Topology,
                                              proxy_runner: ProxyRunner) -> None:
    with psycopg.connect(pg_topology.primary.superuser_dsn("app"), autocommit=True) as su:
        su.execute(FUNCTIONS)
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=3,
        extra_pool={"query_parser_enabled": True, "query_parser_read_write_splitting": True,
                    "primary_reads_enabled": False, "write_functions": ["pg_sleep"]}))
    assert wait_for(lambda: "volatile functions go to the primary" in proxy.log_text())
    replica_ports = {node.port for node in pg_topology.replicas}
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        for _ in range(5):
            row = conn.execute("SELECT bump(), inet_server_port()").fetchone()
            assert row is not None and row[1] == pg_topology.primary.port  # not read-only
            row = conn.execute("SELECT answer(), inet_server_port()").fetchone()
            assert row is not None and row[1] in replica_ports  # STABLE: a read
            row = conn.execute("SELECT pg_sleep(0), inet_server_port()").fetchone()
            assert row is not None and row[1] == pg_topology.primary.port  # configured
