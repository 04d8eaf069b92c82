"""Parked clients (frontend/parking.py): an idle client loses its transport, not its session.

A client idle through a sweep interval is parked: its socket waits in the worker's epoll set
and SHOW LISTS counts it in parked_clients. Whatever it does next (a query, a hang-up) wakes
it with everything it had: settings, prepared statements, custom-command choices. What the
proxy says to a parked client (the shutdown's FATAL) still reaches it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from pgcat_py.frontend.parking import FIRST_READ
from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, error_of, rows_of

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(120)

PARK_WAIT_S = 10.0  # a sweep is 0.5 s by default; a client is parked after one or two


def admin(proxy: ProxyProcess) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgcat"),
                           autocommit=True, prepare_threshold=None)


def parked_clients(proxy: ProxyProcess) -> int:
    with admin(proxy) as conn:
        lists = dict(conn.execute("SHOW LISTS").fetchall())
    return int(lists["parked_clients"])


def wait_parked(proxy: ProxyProcess, count: int) -> None:
    deadline = time.monotonic() + PARK_WAIT_S
    while (parked := parked_clients(proxy)) != count:
        assert time.monotonic() < deadline, f"{parked} clients parked, not {count}"
        time.sleep(0.1)


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    return proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=2,
                                     extra_general={"worker_threads": 1},
                                     extra_pool={"default_role": "primary"}))


def test_a_parked_client_carries_on_with_its_session(proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=1) as conn:
        conn.execute("SET application_name = 'parked one'")
        conn.execute("SET SERVER ROLE TO 'replica'")  # a custom command: the client's choice
        for n in range(3):  # prepared on the server it ran on (named, transaction mode)
            assert conn.execute("SELECT %s::int + 1", (n,)).fetchone() == (n + 1,)
        wait_parked(proxy, 1)
        with admin(proxy) as console:
            clients = console.execute("SHOW CLIENTS").fetchall()
        addresses = {row[11] for row in clients}
        assert addresses == {"127.0.0.1"}  # the parked client's too, from its socket
        for n in range(3, 6):
            assert conn.execute("SELECT %s::int + 1", (n,)).fetchone() == (n + 1,)
        assert parked_clients(proxy) == 0
        assert conn.execute("SHOW application_name").fetchone() == ("parked one",)
        assert conn.execute("SHOW SERVER ROLE").fetchone() == ("replica",)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        wait_parked(proxy, 1)  # parked again, and woken again
        assert conn.execute("SELECT 7").fetchone() == (7,)


def test_a_message_bigger_than_the_first_read_wakes_a_client_whole(
        proxy: ProxyProcess) -> None:
    text = "x" * (3 * FIRST_READ)  # the lot reads FIRST_READ bytes, the transport the rest
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        conn.execute("SELECT 1")
        wait_parked(proxy, 1)
        assert conn.execute("SELECT length(%s)", (text,)).fetchone() == (len(text),)
        wait_parked(proxy, 1)
        assert conn.execute(f"SELECT length('{text}')").fetchone() == (len(text),)


def test_asyncpg_statements_survive_parking(proxy: ProxyProcess) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(host=proxy.host, port=proxy.port, user="app",
                                     password="app", database="app")
        try:
            statement = await conn.prepare("SELECT $1::int * 2")
            assert await statement.fetchval(4) == 8
            await asyncio.to_thread(wait_parked, proxy, 1)
            assert await statement.fetchval(5) == 10
            async with conn.transaction():
                assert await conn.fetchval("SELECT 3") == 3
        finally:
            await conn.close()

    asyncio.run(run())


def parked_raw_clients(proxy: ProxyProcess, count: int) -> list[RawClient]:
    """``count`` clients logged in, used once, then left idle until parked."""
    clients = []
    for _ in range(count):
        client = RawClient.connect(proxy.host, proxy.port)
        client.login("app", "app", "app")
        client.query("SELECT 1")
        clients.append(client)
    wait_parked(proxy, count)
    return clients


def test_a_client_that_leaves_while_parked_is_gone(proxy: ProxyProcess) -> None:
    clients = parked_raw_clients(proxy, 5)
    expected = open_fds(proxy.pid) - 5  # a parked client holds one descriptor
    clients[0].send(b"X\x00\x00\x00\x04")  # Terminate
    for client in clients:
        client.close()
    wait_parked(proxy, 0)
    deadline = time.monotonic() + PARK_WAIT_S
    while open_fds(proxy.pid) > expected:
        assert time.monotonic() < deadline, f"{open_fds(proxy.pid)} fds, not {expected}"
        time.sleep(0.1)
    with admin(proxy) as console:
        assert [row[4] for row in console.execute("SHOW CLIENTS").fetchall()] == ["admin"]


def test_half_a_message_keeps_a_client_awake(proxy: ProxyProcess) -> None:
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app")
        query = b"Q\x00\x00\x00\x0eSELECT 42\x00"
        client.send(query[:7])
        time.sleep(2.0)  # four sweeps: parked by now if it could be
        assert parked_clients(proxy) == 0
        client.send(query[7:])
        assert rows_of(client.read_until(b"Z")) == [("42",)]


def test_session_mode_clients_keep_their_server_and_transport(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_mode="session",
                                      pool_size=2, extra_pool={"default_role": "primary"}))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        conn.execute("SELECT 1")
        time.sleep(2.0)
        assert parked_clients(proxy) == 0
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_parked_clients_hear_of_the_shutdown(proxy: ProxyProcess) -> None:
    clients = parked_raw_clients(proxy, 3)
    proxy.signal(signal.SIGINT)
    for client in clients:
        messages = client.read_until_closed()
        error = error_of(messages)
        assert error is not None and error.sqlstate == "57P01", messages
        client.close()
    assert proxy.wait(timeout=10) == 0


def test_a_query_and_terminate_together_wake_a_client_for_its_answer(
        proxy: ProxyProcess) -> None:
    [client] = parked_raw_clients(proxy, 1)
    with client:
        client.send(b"Q\x00\x00\x00\x0eSELECT 42\x00" + b"X\x00\x00\x00\x04")
        messages = client.read_until_closed()  # the answer, then the proxy closes
    assert rows_of(messages) == [("42",)]
    wait_parked(proxy, 0)
