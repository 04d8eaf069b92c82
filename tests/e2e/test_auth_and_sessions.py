"""Auth on both sides of the proxy, startup parameters, and clean servers between clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config, start_proxy

from .conftest import AUTH_USERS, dsn


@pytest.fixture(scope="module")
def auth_proxy(pg_topology: Topology, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ProxyProcess]:
    text = proxy_config(pg_topology, port=free_port(), users=AUTH_USERS, pool_size=2,
                        extra_pool={"default_role": "primary"})
    proxy = start_proxy(text, tmp_path_factory.mktemp("auth_proxy"))
    yield proxy
    proxy.stop()


@pytest.fixture
def single_server_proxy(pg_topology: Topology, tmp_path: Path) -> Iterator[ProxyProcess]:
    """Transaction mode with ONE server connection, so consecutive clients share it."""
    text = proxy_config(pg_topology, port=free_port(), pool_size=1,
                        extra_pool={"default_role": "primary"})
    proxy = start_proxy(text, tmp_path)
    yield proxy
    proxy.stop()


# client auth at the proxy / server auth at PostgreSQL (pg_hba of the topology):
#   app: md5 / scram-sha-256, md5_user: md5 / md5, scram_user: scram / scram,
#   trust_user: trust / trust
@pytest.mark.parametrize(("user", "password"), [
    ("app", "app"), ("md5_user", "md5_pass"), ("scram_user", "scram_pass"),
    ("trust_user", None)])
def test_each_auth_method_logs_in(auth_proxy: ProxyProcess, user: str,
                                  password: str | None) -> None:
    with psycopg.connect(dsn(auth_proxy, user=user, password=password)) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)


@pytest.mark.parametrize("user", ["app", "md5_user", "scram_user"])
def test_wrong_password_is_28P01(auth_proxy: ProxyProcess, user: str) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dsn(auth_proxy, user=user, password="wrong"))
    assert "28P01" in str(info.value) or "password authentication failed" in str(info.value)


def test_scram_client_sees_sasl(auth_proxy: ProxyProcess) -> None:
    # libpq refuses md5 when told to require SCRAM: proves the proxy really speaks SCRAM.
    with psycopg.connect(dsn(auth_proxy, user="scram_user", password="scram_pass",
                             require_auth="scram-sha-256")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_admin_console_login(auth_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(auth_proxy, user="admin", password="admin", dbname="pgcat"),
                         autocommit=True) as conn:
        version = conn.execute("SHOW VERSION").fetchone()
        assert version is not None and "pgcat-py" in version[0]
        pools = conn.execute("SHOW POOLS").fetchall()
        assert any(row[0] == "app" and row[1] == "app" for row in pools)


def test_startup_parameters_reach_the_server(tx_proxy: ProxyProcess,
                                             pg_topology: Topology) -> None:
    params = {"application_name": "e2e_app",
              "options": "'-c search_path=e2e_schema,public -c work_mem=5MB'"}
    query = ("select current_setting('application_name'), current_setting('search_path'), "
             "current_setting('work_mem')")
    direct_options = {k: v.strip("'") for k, v in params.items()}
    with psycopg.connect(pg_topology.primary.dsn(), **direct_options) as direct:
        expected = direct.execute(query).fetchone()
    with psycopg.connect(dsn(tx_proxy, **params)) as conn:
        assert conn.execute(query).fetchone() == expected
        assert expected == ("e2e_app", "e2e_schema,public", "5MB")
        assert conn.info.parameter_status("application_name") == "e2e_app"


def test_arbitrary_startup_parameter_reaches_the_server(tx_proxy: ProxyProcess) -> None:
    # pgx (Permify) sends plan_cache_mode in the startup packet; PgBouncer refuses it.
    # asyncpg's server_settings go into the startup packet the same way.
    async def main() -> str:
        conn = await asyncpg.connect(host=tx_proxy.host, port=tx_proxy.port, user="app",
                                     password="app", database="app", ssl=False,
                                     statement_cache_size=0,
                                     server_settings={"plan_cache_mode": "force_custom_plan"})
        try:
            value: str = await conn.fetchval("select current_setting('plan_cache_mode')")
            return value
        finally:
            await conn.close()

    assert asyncio.run(main()) == "force_custom_plan"


def test_startup_parameters_follow_the_client_across_servers(
        single_server_proxy: ProxyProcess) -> None:
    a = psycopg.connect(dsn(single_server_proxy, options="'-c statement_timeout=1234'",
                            application_name="client_a"), autocommit=True)
    b = psycopg.connect(dsn(single_server_proxy, application_name="client_b"), autocommit=True)
    with a, b:
        for _ in range(3):  # both share the one server connection, turn by turn
            assert a.execute("select current_setting('statement_timeout'), "
                             "current_setting('application_name')").fetchone() == (
                                 "1234ms", "client_a")
            assert b.execute("select current_setting('statement_timeout'), "
                             "current_setting('application_name')").fetchone() == (
                                 "0", "client_b")


def test_set_application_name_persists_across_transactions(
        single_server_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(single_server_proxy), autocommit=True) as conn:
        conn.execute("set application_name to 'renamed'")
        with psycopg.connect(dsn(single_server_proxy), autocommit=True) as other:
            assert other.execute("show application_name").fetchone() != ("renamed",)
        assert conn.execute("show application_name").fetchone() == ("renamed",)


def test_session_set_does_not_leak_to_the_next_client(single_server_proxy: ProxyProcess) -> None:
    # pgcat's transaction-mode semantics: a plain SET lasts until the server is given back,
    # and the server is reset (RESET ALL) before anyone else gets it.
    with psycopg.connect(dsn(single_server_proxy), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set statement_timeout to 4321")
            assert conn.execute("show statement_timeout").fetchone() == ("4321ms",)
        conn.execute("set lock_timeout to 999")
    with psycopg.connect(dsn(single_server_proxy), autocommit=True) as conn:
        assert conn.execute("show statement_timeout").fetchone() == ("0",)
        assert conn.execute("show lock_timeout").fetchone() == ("0",)


def test_prepared_statement_does_not_leak_to_the_next_client(
        single_server_proxy: ProxyProcess) -> None:
    # Each client PREPAREs the same name on the one shared server: without DEALLOCATE ALL at
    # check-in the second gets "prepared statement already exists".
    for _ in range(3):
        with psycopg.connect(dsn(single_server_proxy)) as conn, conn.transaction():
            conn.execute("prepare leak_q (int) as select $1")
            assert conn.execute("execute leak_q(7)").fetchone() == (7,)


def test_unknown_startup_parameter_is_refused_like_postgresql(tx_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(tx_proxy, options="'-c no_such_setting=1'")) as conn, \
            pytest.raises(psycopg.Error) as info:
        conn.execute("select 1")
    assert "no_such_setting" in str(info.value)


def test_cancel_request_with_unknown_key_is_a_no_op(tx_proxy: ProxyProcess) -> None:
    import socket

    from pgcat_py.protocol.startup import CancelRequest
    with socket.create_connection((tx_proxy.host, tx_proxy.port), timeout=5) as sock:
        sock.sendall(CancelRequest(12345, 67890).encode())
        assert sock.recv(100) == b""  # closed without a word, like PostgreSQL
    with psycopg.connect(dsn(tx_proxy)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
