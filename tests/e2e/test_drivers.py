"""Real drivers in their default settings through transaction mode, with fewer servers than
clients so that every driver's statements and settings meet servers that never saw them:
psycopg2, SQLAlchemy 2 over asyncpg (its prepared-statement cache) and over psycopg 3
(server-side prepares from the 6th execution on).
"""

from __future__ import annotations

import asyncio

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config

from .conftest import ProxyRunner

pytestmark = pytest.mark.timeout(120)

CLIENTS = 12


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    text_ = proxy_config(pg_topology, port=free_port(), pool_size=2,
                         extra_general={"connect_timeout": 30000},
                         extra_pool={"default_role": "primary"})
    return proxy_runner(text_)


def url(proxy: ProxyProcess, driver: str) -> str:
    return f"postgresql+{driver}://app:app@{proxy.host}:{proxy.port}/app"


def test_psycopg2(proxy: ProxyProcess) -> None:
    conns = [psycopg2.connect(host=proxy.host, port=proxy.port, user="app", password="app",
                              dbname="app") for _ in range(CLIENTS)]
    try:
        for round_ in range(5):
            for index, conn in enumerate(conns):
                with conn.cursor() as cur:  # psycopg2 opens a transaction: BEGIN ... COMMIT
                    cur.execute("SELECT %s + %s, current_setting('application_name')",
                                (round_, index))
                    assert cur.fetchone() == (round_ + index, "")
                conn.commit()
    finally:
        for conn in conns:
            conn.close()


def test_sqlalchemy_over_asyncpg(proxy: ProxyProcess) -> None:
    async def worker(engine: object, n: int) -> None:
        async with engine.connect() as conn:  # type: ignore[attr-defined]
            for i in range(10):
                value = await conn.scalar(text(f"SELECT CAST(:n AS int) + {i % 4}"), {"n": n})
                assert value == n + i % 4
                await conn.commit()

    async def main() -> None:
        engine = create_async_engine(url(proxy, "asyncpg"), pool_size=CLIENTS,
                                     max_overflow=0)
        try:
            await asyncio.gather(*(worker(engine, n) for n in range(CLIENTS)))
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_sqlalchemy_over_psycopg(proxy: ProxyProcess) -> None:
    engine = create_engine(url(proxy, "psycopg"), pool_size=CLIENTS, max_overflow=0)
    try:
        conns = [engine.connect() for _ in range(4)]
        for i in range(12):  # past psycopg's prepare_threshold of 5
            for n, conn in enumerate(conns):
                assert conn.scalar(text("SELECT CAST(:n AS int) * 2"), {"n": n + i}) \
                    == 2 * (n + i)
                conn.commit()
        for conn in conns:
            conn.close()
    finally:
        engine.dispose()
