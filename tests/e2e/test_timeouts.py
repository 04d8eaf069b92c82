"""Timeouts operators expect: idle_client_in_transaction_timeout (PostgreSQL's FATAL 25P03,
the server back in the pool) and a checkout that waited too long saying how long."""

from __future__ import annotations

import time

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    return proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=1,
        extra_general={"idle_client_in_transaction_timeout": 500, "connect_timeout": 300},
        extra_pool={"default_role": "primary"}))


def test_idle_in_transaction_past_the_timeout_ends_the_session(proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(proxy)) as quick:
        quick.execute("SELECT 1")
        time.sleep(0.2)  # well within the timeout
        quick.execute("SELECT 2")
        quick.commit()
    idle = psycopg.connect(dsn(proxy))
    idle.execute("SELECT 1")
    time.sleep(1.5)
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        idle.execute("SELECT 1")
    idle.close()
    with psycopg.connect(dsn(proxy), autocommit=True) as other:  # the one server is free
        assert other.execute("SELECT 3").fetchone() == (3,)


def test_a_checkout_that_waited_too_long_says_how_long(proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(proxy)) as holder:
        holder.execute("SELECT 1")  # holds the only server, inside a transaction
        with psycopg.connect(dsn(proxy), autocommit=True) as waiter, \
                pytest.raises(psycopg.Error, match=r"waited 0\.\d s for a server of app_"):
            waiter.execute("SELECT 1")


def test_a_users_statement_timeout_is_postgresqls_own(pg_topology: Topology,
                                                      proxy_runner: ProxyRunner) -> None:
    """pgcat times statements on the pooler side, then bans the server and drops the client
    (#622); here the user's statement_timeout is PostgreSQL's: 57014, the session goes on."""
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=2,
        users=({"username": "app", "password": "app", "statement_timeout": 200},),
        extra_pool={"default_role": "primary"}))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(2)")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("200ms",)
        conn.execute("SET statement_timeout = 0")  # the client's own wins
        assert conn.execute("SELECT pg_sleep(0.4), 1").fetchone() == ("", 1)
        conn.execute("RESET statement_timeout")  # back to the user's, as for ALTER ROLE SET
        assert conn.execute("SHOW statement_timeout").fetchone() == ("200ms",)
    with psycopg.connect(dsn(proxy, options="'-c statement_timeout=0'"),
                         autocommit=True) as own:
        assert own.execute("SELECT pg_sleep(0.4), 2").fetchone() == ("", 2)


def test_checkout_failure_limit_closes_a_client_after_n_failures(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=1,
        extra_general={"connect_timeout": 200},
        extra_pool={"default_role": "primary", "checkout_failure_limit": 2}))
    with psycopg.connect(dsn(proxy)) as holder:
        holder.execute("SELECT 1")  # holds the only server
        with psycopg.connect(dsn(proxy), autocommit=True) as client:
            with pytest.raises(psycopg.Error, match="AllServersDown"):
                client.execute("SELECT 1")  # the first failure: an error, still connected
            with pytest.raises(psycopg.OperationalError, match=r"limit reached \(2 / 2\)"):
                client.execute("SELECT 1")
            assert client.closed or client.broken
