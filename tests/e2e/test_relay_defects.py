"""Regression tests for defects of the relay that let one client's state or failure reach
another: a session advisory lock left on a pooled server, servers leaked by clients that
leave while their server is being set up, partial messages after a server died, and a
Query whose answer was dropped because a Terminate followed it in the same packet.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.startup import StartupMessage
from tests.harness.faultproxy import FaultProxy
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, describe, error_of, rows_of
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(90)

CONNECTION_FAILURE = "08006"


def start(runner: ProxyRunner, topology: Topology, *, pool_mode: str = "transaction",
          pool_size: int = 2, primary_port: int | None = None,
          **pool: str | int | bool) -> ProxyProcess:
    """A proxy whose pool `app` has only the primary (or what stands in for it)."""
    text = proxy_config(topology, port=free_port(), pool_mode=pool_mode, pool_size=pool_size,
                        extra_pool={"default_role": "primary", **pool})
    if primary_port is not None:
        text = text.replace(f"{topology.primary.port}, \"primary\"",
                            f"{primary_port}, \"primary\"")
    text = text.replace(
        f', ["127.0.0.1", {topology.replicas[0].port}, "replica"]', "")
    return runner(text)


def advisory_locks(topology: Topology, key: int) -> int:
    with psycopg.connect(topology.primary.superuser_dsn("app"), autocommit=True) as su:
        row = su.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                         "AND objid = %s AND granted", [key]).fetchone()
    assert row is not None
    return int(row[0])


def connect(proxy: ProxyProcess, autocommit: bool = True
            ) -> psycopg.Connection[tuple[object, ...]]:
    """psycopg without server-side prepared statements (those are the next issue's)."""
    return psycopg.connect(dsn(proxy), autocommit=autocommit, prepare_threshold=None)


def pid_of(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


# --- advisory locks never outlive their client -------------------------------------------
@pytest.mark.parametrize("call", ["pg_advisory_lock(%s)", "PG_Advisory_Lock_Shared(%s)",
                                  "pg_try_advisory_lock(%s)"])
def test_session_advisory_lock_pins_its_client_and_dies_with_it(
        pg_topology: Topology, proxy_runner: ProxyRunner, call: str) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=2)
    key = 4200 + len(call)
    with connect(proxy) as holder:
        holder.execute(f"SELECT {call}", [key])
        pid = pid_of(holder)
        with connect(proxy) as other:
            for _ in range(6):  # never lands on the holder's server session
                assert pid_of(other) != pid
                assert other.execute("SELECT 1").fetchone() == (1,)
        assert pid_of(holder) == pid  # the holder keeps its server while it holds the lock
        assert advisory_locks(pg_topology, key) == 1
    # The holder left: its lock goes with it, from the pooled server too.
    assert wait_for(lambda: advisory_locks(pg_topology, key) == 0)
    with connect(proxy) as later:
        assert later.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone() == (True,)
        later.execute("SELECT pg_advisory_unlock_all()")


def test_session_advisory_lock_is_released_after_a_session_mode_client(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, pool_mode="session", pool_size=1)
    with connect(proxy) as holder:
        holder.execute("SELECT pg_advisory_lock(4242)")
    assert wait_for(lambda: advisory_locks(pg_topology, 4242) == 0)
    with connect(proxy) as later:  # the same, only server
        assert later.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)


def test_transaction_level_advisory_lock_does_not_pin(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=1)
    with connect(proxy) as first, \
            connect(proxy) as second:
        first.execute("SELECT pg_advisory_xact_lock(4243)")
        # pool_size 1: the second client is served only if the first gave its server back.
        assert second.execute("SELECT 2").fetchone() == (2,)
        assert first.execute("SELECT 1").fetchone() == (1,)


# --- clients that leave while their server is being set up leak nothing ---------------------
def logged_in_with_own_settings(proxy: ProxyProcess, name: str) -> RawClient:
    """A raw client whose settings no pooled server has, so the proxy must sync them on
    whichever server it gets before relaying."""
    client = RawClient.connect(proxy.host, proxy.port)
    client.send(StartupMessage({"user": "app", "database": "app", "application_name": name,
                                "options": f"-c statement_timeout={1000 + len(name)}"}
                               ).encode())
    messages = client.authenticate("app", "app")
    assert messages[-1][0] == ord("Z"), describe(messages)
    return client


def reset(client: RawClient) -> None:
    """Close with an RST, as a crashing client or a load balancer does."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def test_clients_resetting_while_queued_or_syncing_leak_no_server(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=3, connect_timeout=3000)
    for round_ in range(8):
        clients = [logged_in_with_own_settings(proxy, f"leaver_{round_}_{i}") for i in range(40)]
        for client in clients:  # most queue: servers are handed over as others finish
            client.send(fe.Query("SELECT 1").encode())
        for client in clients[round_ % 2::2]:  # the others reset while it goes on
            reset(client)
        time.sleep(0.001 * round_)
        for client in clients[1 - round_ % 2::2]:
            reset(client)
    # Every one of the pool_size servers must come back: hold all three at once.
    conns = [connect(proxy, autocommit=False) for _ in range(3)]
    try:
        for conn in conns:
            assert conn.execute("SELECT 1").fetchone() == (1,)  # each holds a transaction
    finally:
        for conn in conns:
            conn.close()
    assert "Traceback" not in proxy.log_text(), proxy.log_tail()


# --- a server dying mid-result never leaves its client with part of a message ---------------
@pytest.fixture
def fault_proxy(pg_topology: Topology) -> Iterator[FaultProxy]:
    with FaultProxy(pg_topology.primary.port) as faults:
        yield faults


@pytest.mark.parametrize("cut_after", [100_003, 250_001, 777_777])
def test_server_dying_mid_result_ends_the_client_stream_at_a_message_boundary(
        pg_topology: Topology, proxy_runner: ProxyRunner, fault_proxy: FaultProxy,
        cut_after: int) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=1, primary_port=fault_proxy.port)
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app")
        assert rows_of(client.query("SELECT 'warm'")) == [("warm",)]
        fault_proxy.cut_server_stream_after(cut_after)
        client.send(fe.Query("SELECT repeat('x', 333) FROM generate_series(1, 5000)").encode())
        messages = client.read_until(b"Z")
        assert client.leftover == b"", f"{len(client.leftover)} bytes of a partial message"
        error = error_of(messages)
        assert error is not None and error.sqlstate == CONNECTION_FAILURE, describe(messages[-3:])
        # Outside a transaction nothing was lost with the server: the session goes on.
        assert messages[-1] == (ord("Z"), b"I"), describe(messages[-3:])
        fault_proxy.cut_server_stream_after(None)
        assert rows_of(client.query("SELECT 'on'")) == [("on",)]
    fault_proxy.cut_server_stream_after(None)
    with connect(proxy) as conn:  # a new server, all is well
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_psycopg_sees_a_clean_error_when_the_server_dies_mid_result(
        pg_topology: Topology, proxy_runner: ProxyRunner, fault_proxy: FaultProxy) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=1, primary_port=fault_proxy.port)
    with connect(proxy, autocommit=False) as conn:
        conn.execute("SELECT 1")
        fault_proxy.cut_server_stream_after(123_457)
        with pytest.raises(psycopg.OperationalError) as caught:
            conn.execute("SELECT repeat('y', 500) FROM generate_series(1, 4000)").fetchall()
    text = str(caught.value)
    assert "lost synchronization" not in text and "do not agree" not in text, text
    assert caught.value.sqlstate == CONNECTION_FAILURE, text


def test_server_dying_inside_a_transaction_ends_the_client_with_fatal_08006(
        pg_topology: Topology, proxy_runner: ProxyRunner, fault_proxy: FaultProxy) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=1, primary_port=fault_proxy.port)
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app")
        assert rows_of(client.query("BEGIN; SELECT 'in'")) == [("in",)]
        fault_proxy.cut_server_stream_after(50_001)
        client.send(fe.Query("SELECT repeat('x', 333) FROM generate_series(1, 5000)").encode())
        messages = client.read_until_closed()
    assert client.leftover == b""
    error = error_of(messages)
    assert error is not None and (error.sqlstate, error.severity) == (CONNECTION_FAILURE,
                                                                      "FATAL")


# --- Query then Terminate in one packet: the Query still gets its answer -------------------
@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_query_sent_with_terminate_gets_its_answer(
        pg_topology: Topology, proxy_runner: ProxyRunner, pool_mode: str) -> None:
    proxy = start(proxy_runner, pg_topology, pool_mode=pool_mode, pool_size=1)
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app")
        client.send(fe.Query("SELECT 'last words'").encode() + fe.Terminate().encode())
        messages = client.read_until_closed()
    assert rows_of(messages) == [("last words",)], describe(messages)
    assert messages[-1] == (ord("Z"), b"I")
    with connect(proxy) as conn:  # its server came back
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_pinned_server_is_reset_even_with_cleanup_off(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, pool_size=1, cleanup_server_connections=False)
    with connect(proxy) as holder:
        holder.execute("SELECT pg_advisory_lock(4244)")
    assert wait_for(lambda: advisory_locks(pg_topology, 4244) == 0)
    with connect(proxy) as later:
        assert later.execute("SELECT pg_try_advisory_lock(4244)").fetchone() == (True,)
