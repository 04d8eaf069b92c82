"""Prepared statements in transaction mode, with a pool small enough that every client's
statements land on servers that never saw them: pgbench -M prepared, asyncpg's statement
cache, psycopg with prepare_threshold=0 and in pipeline mode, pgx's describe_exec pattern on
the raw wire, SQL-level PREPARE, and PostgreSQL's own errors for bad statement names.
"""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg
import psycopg
import pytest

from pgcat_py.localpg import Topology, find_pg_bin, free_port
from pgcat_py.localpg.commands import client_binary
from pgcat_py.protocol import frontend as fe
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, describe, error_of, rows_of

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(120)

POOL_SIZE = 2


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    text = proxy_config(pg_topology, port=free_port(), pool_size=POOL_SIZE,
                        extra_general={"connect_timeout": 30000},
                        extra_pool={"default_role": "primary",
                                    "prepared_statements_cache_size": 4})
    return proxy_runner(text)


def test_pgbench_prepared_in_transaction_mode(pg_topology: Topology, proxy: ProxyProcess
                                             ) -> None:
    pgbench = client_binary(find_pg_bin(), "pgbench")
    env = {"PGPASSWORD": "app", "PATH": "/usr/bin:/bin"}
    init = [pgbench, "-i", "-q", "-s", "1", "-h", proxy.host, "-p", str(proxy.port), "-U",
            "app", "app"]
    subprocess.run(init, env=env, check=True, capture_output=True, timeout=60)
    # One client per pgbench thread: pgbench prepares synchronously, so a thread blocked
    # on one client's checkout would stall its other clients' open transactions, which
    # hold the servers it waits for (any transaction pooler, PgBouncer included).
    run = [pgbench, "-n", "-M", "prepared", "-c", "4", "-j", "4", "-t", "200", "-h",
           proxy.host, "-p", str(proxy.port), "-U", "app", "app"]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "number of failed transactions: 0" in done.stdout, done.stdout
    assert "error" not in done.stderr.lower(), done.stderr[-2000:]


def test_asyncpg_statement_cache_under_50_tasks(proxy: ProxyProcess) -> None:
    async def task(pool: asyncpg.Pool, n: int) -> None:
        async with pool.acquire() as conn:
            for i in range(20):
                # a handful of distinct statements, each prepared by asyncpg's cache
                value = await conn.fetchval(f"SELECT $1::int + {i % 6}", n)
                assert value == n + i % 6

    async def main() -> None:
        pool = await asyncpg.create_pool(host=proxy.host, port=proxy.port, user="app",
                                         password="app", database="app", min_size=10,
                                         max_size=50)
        try:
            await asyncio.gather(*(task(pool, n) for n in range(50)))
        finally:
            await pool.close()

    asyncio.run(main())


def test_psycopg_prepared_statements_survive_server_changes(proxy: ProxyProcess) -> None:
    conns = [psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=0)
             for _ in range(POOL_SIZE + 3)]
    try:
        for round_ in range(10):
            for index, conn in enumerate(conns):
                row = conn.execute("SELECT %s::int * 2, %s::text", [round_, str(index)])
                assert row.fetchone() == (round_ * 2, str(index))
                # more distinct statements than prepared_statements_cache_size: evictions
                assert conn.execute(f"SELECT {round_ % 7} + %s::int", [1]).fetchone() \
                    == (round_ % 7 + 1,)
    finally:
        for conn in conns:
            conn.close()


def test_psycopg_pipeline_with_prepared_statements(proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=0) as conn:
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int + 1", [i]) for i in range(20)]
        assert [c.fetchone() for c in cursors] == [(i + 1,) for i in range(20)]


def test_pgx_describe_exec_replays_the_unnamed_statement(proxy: ProxyProcess) -> None:
    """Parse "" / Describe / Sync, then Bind "" / Execute / Sync in the next round trip:
    the second lands on another server whenever others hold the first."""
    holders = [psycopg.connect(dsn(proxy)) for _ in range(POOL_SIZE - 1)]
    with RawClient.connect(proxy.host, proxy.port) as client:
        messages = client.startup("app", "app", "app", plan_cache_mode="force_custom_plan")
        assert messages[-1] == (ord("Z"), b"I"), describe(messages)
        for value in range(5):
            client.send(fe.Parse("", "SELECT $1::int * 10, current_setting('plan_cache_mode')",
                                 ()).encode()
                        + fe.Describe("S", "").encode() + fe.Sync().encode())
            first = client.read_until(b"Z")
            assert error_of(first) is None, describe(first)
            # Someone else takes a server in between.
            holders[0].execute("SELECT 1")
            holders[0].commit()
            client.send(fe.Bind("", "", (), (str(value).encode(),)).encode()
                        + fe.Execute("").encode() + fe.Sync().encode())
            second = client.read_until(b"Z")
            assert rows_of(second) == [(str(value * 10), "force_custom_plan")], describe(second)
    for conn in holders:
        conn.close()


def test_sql_prepare_and_execute(proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=None) as conn:
        conn.execute("BEGIN")
        conn.execute("PREPARE twice(int) AS SELECT $1 * 2")
        assert conn.execute("EXECUTE twice(21)").fetchone() == (42,)
        conn.execute("DEALLOCATE twice")
        conn.execute("COMMIT")


def test_bind_of_an_unknown_statement_is_postgres_26000_and_the_session_goes_on(
        proxy: ProxyProcess) -> None:
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app")
        client.send(fe.Parse("known", "SELECT 1").encode() + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None
        client.send(fe.Bind("", "nope", (), ()).encode() + fe.Execute("").encode()
                    + fe.Sync().encode())
        messages = client.read_until(b"Z")
        error = error_of(messages)
        assert error is not None and error.sqlstate == "26000", describe(messages)
        client.send(fe.Close("S", "never").encode() + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None  # like PostgreSQL: no error
        client.send(fe.Bind("", "known", (), ()).encode() + fe.Execute("").encode()
                    + fe.Sync().encode())
        assert rows_of(client.read_until(b"Z")) == [("1",)]
        client.send(fe.Close("S", "known").encode() + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None
        client.send(fe.Bind("", "known", (), ()).encode() + fe.Execute("").encode()
                    + fe.Sync().encode())
        error = error_of(client.read_until(b"Z"))
        assert error is not None and error.sqlstate == "26000"
        assert rows_of(client.query("SELECT 'still here'")) == [("still here",)]


@pytest.mark.parametrize("in_transaction", [False, True])
def test_sql_deallocate_of_a_protocol_statement(proxy: ProxyProcess,
                                               in_transaction: bool) -> None:
    """psycopg with libpq < 17 deallocates protocol statements with SQL DEALLOCATE."""
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app")
        client.send(fe.Parse("_pg3_0", "SELECT 1").encode() + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None
        if in_transaction:
            assert error_of(client.query("BEGIN; SELECT 1")) is None
        messages = client.query('DEALLOCATE "_pg3_0"')
        assert error_of(messages) is None, describe(messages)
        assert messages[-1] == (ord("Z"), b"T" if in_transaction else b"I")
        if in_transaction:
            client.query("COMMIT")
        client.send(fe.Bind("", "_pg3_0", (), ()).encode() + fe.Execute("").encode()
                    + fe.Sync().encode())
        error = error_of(client.read_until(b"Z"))
        assert error is not None and error.sqlstate == "26000"


def test_a_large_bind_of_a_prepared_statement_arrives_whole(proxy: ProxyProcess) -> None:
    """An 8 MB parameter: the Bind is collected across many reads before it is renamed."""
    payload = bytes(range(256)) * (8 * 4096)
    with psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=0) as conn:
        for _ in range(2):
            row = conn.execute("SELECT length(%s::bytea), md5(%s::bytea)",
                               [payload, payload]).fetchone()
            assert row is not None and row[0] == len(payload)


def test_parse_reusing_a_live_name_is_postgres_42p05_and_the_statement_stays(
        proxy: ProxyProcess) -> None:
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app")
        client.send(fe.Parse("mine", "SELECT 1").encode() + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None
        client.send(fe.Parse("mine", "SELECT 2").encode() + fe.Bind("", "mine", (), ()).encode()
                    + fe.Execute("").encode() + fe.Sync().encode())
        messages = client.read_until(b"Z")
        error = error_of(messages)
        assert error is not None and error.sqlstate == "42P05", describe(messages)
        assert error.fields["M"] == 'prepared statement "mine" already exists'
        assert rows_of(messages) == []  # the server skipped to Sync, as PostgreSQL does
        for _ in range(3):  # still the first statement, whichever server runs it
            client.send(fe.Bind("", "mine", (), ()).encode() + fe.Execute("").encode()
                        + fe.Sync().encode())
            assert rows_of(client.read_until(b"Z")) == [("1",)]
        assert error_of(client.query("DEALLOCATE ALL")) is None
        client.send(fe.Parse("mine", "SELECT 3").encode() + fe.Bind("", "mine", (), ()).encode()
                    + fe.Execute("").encode() + fe.Sync().encode())
        assert rows_of(client.read_until(b"Z")) == [("3",)]


def _prepare_on_every_server(proxy: ProxyProcess, sql: str) -> list[psycopg.Connection]:
    """POOL_SIZE clients that each hold a server while running ``sql`` prepared, so that
    every server connection of the pool has planned it."""
    conns = [psycopg.connect(dsn(proxy), prepare_threshold=0) for _ in range(POOL_SIZE)]
    for conn in conns:
        conn.execute(sql).fetchall()  # inside a transaction: the server stays held
    for conn in conns:
        conn.commit()
    return conns


def test_a_stale_plan_after_ddl_is_prepared_again_and_retried(
        pg_topology: Topology, proxy: ProxyProcess) -> None:
    """"cached plan must not change result type" (0A000): PostgreSQL's answer after an ALTER
    TABLE to a plan made before it. The proxy closes and prepares the statement again and
    reruns the batch once, outside explicit transactions; the client sees the new columns."""
    with psycopg.connect(pg_topology.primary.superuser_dsn("app"), autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS stale_plan; CREATE TABLE stale_plan (a int);"
                      "INSERT INTO stale_plan VALUES (1); GRANT ALL ON stale_plan TO app")
        query = "SELECT * FROM stale_plan"
        holders = _prepare_on_every_server(proxy, query)
        with psycopg.connect(pg_topology.primary.dsn(), autocommit=True,
                             prepare_threshold=0) as direct:
            direct.execute(query).fetchall()
            admin.execute("ALTER TABLE stale_plan ADD COLUMN b int DEFAULT 7")
            with pytest.raises(psycopg.errors.FeatureNotSupported):  # PostgreSQL itself
                direct.execute(query).fetchall()
        # Every server connection planned it before the ALTER: the first Bind meets a stale
        # plan whichever one it gets.
        for conn in holders:
            conn.autocommit = True
            assert conn.execute(query).fetchall() == [(1, 7)]
            conn.close()
        assert "prepared a statement again" in proxy.log_text()
        with psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=0) as conn:
            for _ in range(2 * POOL_SIZE):  # on each server connection of the pool
                assert conn.execute(query).fetchall() == [(1, 7)]
        # Inside an explicit transaction nothing is retried: PostgreSQL's error, as is.
        holders = _prepare_on_every_server(proxy, query)
        admin.execute("ALTER TABLE stale_plan ADD COLUMN c int DEFAULT 8")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            holders[0].execute(query).fetchall()
        holders[0].rollback()
        for conn in holders:
            conn.close()


def test_execute_of_a_missing_portal_is_postgres_34000_and_the_session_goes_on(
        proxy: ProxyProcess) -> None:
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app")
        client.send(fe.Execute("nowhere").encode() + fe.Sync().encode())
        messages = client.read_until(b"Z")
        error = error_of(messages)
        assert error is not None and error.sqlstate == "34000", describe(messages)
        client.send(fe.Describe("P", "nowhere").encode() + fe.Sync().encode())
        error = error_of(client.read_until(b"Z"))
        assert error is not None and error.sqlstate == "34000"
        assert rows_of(client.query("SELECT 'still here'")) == [("still here",)]
