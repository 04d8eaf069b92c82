"""Real clients through the proxy: psql, pgbench, psycopg 3, asyncpg; COPY; cancel; load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from pgcat_py.localpg import Topology
from tests.harness.proxy import ProxyProcess

from .conftest import dsn


@pytest.fixture(scope="module")
def pgbench_tables(pg_topology: Topology) -> Iterator[None]:
    """pgbench's tables in database app on the primary (scale 1)."""
    env = {**os.environ, "PGPASSWORD": "app"}
    p = pg_topology.primary
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", p.host, "-p", str(p.port), "-U", "app",
                    "app"], check=True, env=env, capture_output=True, timeout=120)
    yield


def run_pgbench(proxy: ProxyProcess, *args: str) -> str:
    env = {**os.environ, "PGPASSWORD": "app"}
    cmd = ["pgbench", "-n", "-h", proxy.host, "-p", str(proxy.port), "-U", "app", *args, "app"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr + proxy.log_tail()
    assert "number of failed transactions: 0" in done.stdout, done.stdout
    return done.stdout


def test_psql_runs_a_query(tx_proxy: ProxyProcess) -> None:
    env = {**os.environ, "PGPASSWORD": "app"}
    out = subprocess.run(["psql", "-X", "-At", "-h", tx_proxy.host, "-p", str(tx_proxy.port),
                          "-U", "app", "-d", "app", "-c", "select 40 + 2"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_pgbench_transaction_mode(tx_proxy: ProxyProcess, pgbench_tables: None,
                                  protocol: str) -> None:
    out = run_pgbench(tx_proxy, "-M", protocol, "-c", "8", "-j", "2", "-t", "200")
    assert "number of transactions actually processed: 1600/1600" in out


def test_pgbench_tpcb_transaction_mode(tx_proxy: ProxyProcess, pgbench_tables: None) -> None:
    out = run_pgbench(tx_proxy, "-M", "simple", "-c", "4", "-j", "2", "-t", "100")
    assert "processed: 400/400" in out


def test_pgbench_prepared_session_mode(session_proxy: ProxyProcess, pgbench_tables: None) -> None:
    # Twice: the second run gets servers that ran the first one's prepared statements, so
    # they must have been deallocated at session end ("prepared statement already exists").
    for _ in range(2):
        out = run_pgbench(session_proxy, "-M", "prepared", "-S", "-c", "4", "-j", "2", "-t", "200")
        assert "processed: 800/800" in out


def test_psycopg_parameters_and_transactions(tx_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(tx_proxy)) as conn:
        assert conn.execute("select %s::int * 2", [21]).fetchone() == (42,)
        conn.execute("create table if not exists e2e_items (id int primary key, v text)")
        conn.execute("truncate e2e_items")
        conn.commit()
        with conn.transaction():
            conn.execute("insert into e2e_items values (1, 'a'), (2, 'b')")
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute("insert into e2e_items values (1, 'dup')")
        assert conn.execute("select count(*) from e2e_items").fetchone() == (2,)
        # psycopg prepares server-side after 5 runs; fine in a single transaction.
        with conn.transaction():
            for i in range(8):
                assert conn.execute("select %s::int", [i]).fetchone() == (i,)


def test_psycopg_prepared_statements_session_mode(session_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(session_proxy), autocommit=True) as conn:
        for i in range(10):
            assert conn.execute("select %s::int + 1", [i], prepare=True).fetchone() == (i + 1,)


def test_asyncpg_session_mode(session_proxy: ProxyProcess) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(host=session_proxy.host, port=session_proxy.port,
                                     user="app", password="app", database="app", ssl=False)
        try:
            assert await conn.fetchval("select $1::int + 1", 41) == 42
            stmt = await conn.prepare("select $1::text || 'x'")
            assert await stmt.fetchval("a") == "ax"
            async with conn.transaction():
                rows = await conn.fetch("select generate_series(1, $1::int) as n", 100)
            assert [r["n"] for r in rows] == list(range(1, 101))
        finally:
            await conn.close()

    asyncio.run(main())


def test_copy_in_and_out(tx_proxy: ProxyProcess) -> None:
    rows = [(i, f"row {i}") for i in range(5000)]
    with psycopg.connect(dsn(tx_proxy), autocommit=True) as conn:
        conn.execute("create table if not exists e2e_copy (id int, v text)")
        conn.execute("truncate e2e_copy")
        with conn.cursor() as cur:
            with cur.copy("copy e2e_copy (id, v) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            assert conn.execute("select count(*), sum(id) from e2e_copy").fetchone() == (
                5000, sum(range(5000)))
            out = []
            with cur.copy("copy (select id, v from e2e_copy order by id) to stdout") as copy:
                out = [(int(r[0]), r[1]) for r in copy.rows()]
        assert out == rows
        # COPY inside an explicit transaction, then a query on the same connection.
        with conn.transaction(), conn.cursor().copy("copy e2e_copy from stdin") as copy:
            copy.write_row((99999, "tx"))
        assert conn.execute("select count(*) from e2e_copy").fetchone() == (5001,)


def test_cancel_a_running_query(tx_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(tx_proxy), autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(20)")
        assert time.monotonic() - started < 10
        assert conn.execute("select 1").fetchone() == (1,)


def test_200_clients_on_a_pool_of_5(tx_proxy: ProxyProcess) -> None:
    async def client(i: int) -> int:
        async with await psycopg.AsyncConnection.connect(dsn(tx_proxy), autocommit=True) as conn:
            total = 0
            for j in range(5):
                cur = await conn.execute("select %s::int + %s::int", [i, j])
                row = await cur.fetchone()
                assert row is not None
                total += row[0]
            return total

    async def main() -> list[int]:
        return await asyncio.gather(*(client(i) for i in range(200)))

    results = asyncio.run(main())
    assert results == [5 * i + 10 for i in range(200)]
