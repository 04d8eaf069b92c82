"""Limits a hostile or broken client meets (issue 14): connections past max_client_conn
are refused at accept; a client that stalls in the middle of a message it sends, or stops
reading, is closed after client_stall_timeout and its server discarded, so it cannot hold
a pooled server forever."""

from __future__ import annotations

import os
import socket
import time

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.wire import i32
from tests.harness.proxy import proxy_config
from tests.harness.rawclient import RawClient

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)


def test_connections_beyond_max_client_conn_are_refused_at_once(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    # PgBouncer answers a connection over max_client_conn at accept time ("no more
    # connections allowed (max_client_conn)"). pgcat-py counts the limit only when a
    # StartupMessage arrives (frontend/login.py), so connections that never send one are
    # all kept, each with its fd and session, until client_login_timeout (60 s by default).
    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=2,
                                      extra_general={"max_client_conn": 20},
                                      extra_pool={"default_role": "primary"}))
    baseline = len(os.listdir(f"/proc/{proxy.pid}/fd"))
    flood = [socket.create_connection((proxy.host, proxy.port)) for _ in range(500)]
    try:
        time.sleep(1.0)
        held = len(os.listdir(f"/proc/{proxy.pid}/fd")) - baseline
        assert held <= 20 + 5, f"{held} connections held for max_client_conn = 20"
    finally:
        for sock in flood:
            sock.close()


def test_a_client_stalled_mid_message_does_not_hold_a_pooled_server_forever(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    # A message too big for the idle buffer (256 KB) starts a transaction on its header and
    # streams to a server (frontend/idle.py, process_idle). A client that then stops
    # sending holds that server with no limit: idle_client_in_transaction_timeout
    # (app.py, _end_idle_transactions) only looks at servers inside a transaction
    # (status != 'I'). With pool_size 1, nobody else is ever served again.
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=1,
        extra_general={"connect_timeout": 1000, "client_stall_timeout": 1000},
        extra_pool={"default_role": "primary"}))
    with RawClient.connect(proxy.host, proxy.port) as hog:
        hog.login("app", "app")
        hog.send(b"Q" + i32(10_000_000) + b"SELECT '" + b"x" * 300_000)  # and no more
        time.sleep(3)
        with psycopg.connect(dsn(proxy), autocommit=True) as other:
            assert other.execute("SELECT 1").fetchone() == (1,)


def test_a_client_that_stops_reading_does_not_hold_a_pooled_server_forever(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    # Backpressure works (test_limits.py): the proxy stops reading the server, which then
    # waits in ClientWrite. But nothing ever ends that wait: PostgreSQL does not act on
    # a cancel or statement_timeout while blocked on a client write, and the proxy has no
    # limit of its own (idle_client_in_transaction_timeout, app.py, skips servers with
    # a reply pending). With pool_size 1, nobody else is ever served again.
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=1,
        extra_general={"connect_timeout": 1000, "client_stall_timeout": 1000},
        extra_pool={"default_role": "primary"}))
    with RawClient.connect(proxy.host, proxy.port) as sleeper:
        sleeper.login("app", "app")
        sleeper.send(fe.Query("SELECT repeat('x', 1000) FROM generate_series(1, 50000)"
                              ).encode())
        time.sleep(3)  # reads nothing
        with psycopg.connect(dsn(proxy), autocommit=True) as other:
            assert other.execute("SELECT 1").fetchone() == (1,)
