"""auth_query end to end: users pgcat.toml does not list log in with the secret PostgreSQL
stores, md5 or SCRAM, and the proxy logs in to PostgreSQL as them (pass-the-hash md5, or
the ClientKey a SCRAM client's proof gave up). psql, psycopg 3 and asyncpg as clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from pgcat_py.backend.auth_query import REFETCH_INTERVAL
from pgcat_py.localpg import Topology, free_port
from pgcat_py.localpg.commands import write_server_file
from pgcat_py.localpg.node import Node
from tests.harness.proxy import ProxyProcess, TomlValue, proxy_config, start_proxy

from .conftest import dsn

LOOKUP_USER, LOOKUP_PASSWORD = "aq_lookup", "lookup_pass"
# user -> (password, how PostgreSQL stores it); the *_moving ones get new passwords
ROLES = {"aq_md5": ("md5_secret", "md5"), "aq_scram": ("scram_secret", "scram-sha-256"),
         "aq_moving_md5": ("old_md5", "md5"), "aq_moving_scram": ("old_scram", "scram-sha-256"),
         "aq_listed": ("listed_secret", "scram-sha-256"),
         "aq_reloaded": ("reloaded_secret", "scram-sha-256")}
# pgcat's case: a listed user without a password
LISTED: dict[str, TomlValue] = {"username": "aq_listed", "pool_size": 1}
LOOKUP_FUNCTION = """
CREATE FUNCTION public.aq_user_lookup(name text, OUT usename name, OUT passwd text)
RETURNS SETOF record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
$$ SELECT usename, passwd FROM pg_shadow WHERE usename = name $$;
REVOKE ALL ON FUNCTION public.aq_user_lookup(text) FROM public;
GRANT EXECUTE ON FUNCTION public.aq_user_lookup(text) TO aq_lookup;
"""
AUTH_QUERY = "SELECT * FROM public.aq_user_lookup('$1')"  # pgcat's spec does the same


def _md5_hba(node: Node) -> None:
    """md5-stored roles need an md5 pg_hba line (the topology's generic one is SCRAM)."""
    hba = node.datadir / "pg_hba.conf"
    lines = [f"host all {user} 127.0.0.1/32 md5" for user, (_, kind) in ROLES.items()
             if kind == "md5"]
    text = hba.read_text()
    if lines[0] not in text:
        write_server_file(hba, "\n".join(lines) + "\n" + text)
    with psycopg.connect(node.superuser_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def set_password(topology: Topology, user: str, password: str, kind: str) -> None:
    with psycopg.connect(topology.primary.superuser_dsn(), autocommit=True) as conn:
        conn.execute(f"SET password_encryption = '{kind}'")
        conn.execute(f"ALTER ROLE {user} PASSWORD '{password}'")


@pytest.fixture(scope="module")
def roles(pg_topology: Topology) -> Topology:
    with psycopg.connect(pg_topology.primary.superuser_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {LOOKUP_USER} LOGIN PASSWORD '{LOOKUP_PASSWORD}'")
        for user, (password, kind) in ROLES.items():
            conn.execute(f"SET password_encryption = '{kind}'")
            conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT CONNECT ON DATABASE app TO {LOOKUP_USER}, {', '.join(ROLES)}")
    with psycopg.connect(pg_topology.primary.superuser_dsn("app"), autocommit=True) as conn:
        conn.execute(LOOKUP_FUNCTION)
    for node in (pg_topology.primary, *pg_topology.replicas):
        _md5_hba(node)
    pg_topology.wait_for_replicas()
    return pg_topology


def aq_config(topology: Topology, lookup_password: str = LOOKUP_PASSWORD,
              extra: str = "") -> str:
    pool: dict[str, TomlValue] = {
        "default_role": "primary", "auth_query": AUTH_QUERY, "auth_query_user": LOOKUP_USER,
        "auth_query_password": lookup_password, "auth_query_pool_size": 2}
    users: tuple[dict[str, TomlValue], ...] = ({"username": "app", "password": "app"}, LISTED)
    return proxy_config(topology, port=free_port(), pool_size=2, extra_pool=pool, users=users,
                        extra_general={"worker_threads": 1}) + extra


@pytest.fixture(scope="module")
def aq_proxy(roles: Topology, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ProxyProcess]:
    proxy = start_proxy(aq_config(roles), tmp_path_factory.mktemp("aq_proxy"))
    yield proxy
    proxy.stop()


@pytest.mark.parametrize(("user", "method"), [("aq_md5", "md5"),
                                              ("aq_scram", "scram-sha-256"),
                                              ("aq_listed", "scram-sha-256")])
def test_unlisted_user_logs_in_with_the_stored_secret(aq_proxy: ProxyProcess, user: str,
                                                      method: str) -> None:
    # require_auth: libpq refuses any other method, so the proxy's challenge follows the
    # secret: md5 for an md5 hash, SCRAM for a verifier.
    password = ROLES[user][0]
    with psycopg.connect(dsn(aq_proxy, user=user, password=password,
                             require_auth=method)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)


def test_psql_logs_in_and_queries(aq_proxy: ProxyProcess, roles: Topology) -> None:
    env = {**os.environ, "PGPASSWORD": ROLES["aq_scram"][0]}
    out = subprocess.run(
        [str(roles.pg_bin / "psql"), "-X", "-At", "-h", aq_proxy.host, "-p",
         str(aq_proxy.port), "-U", "aq_scram", "-d", "app", "-c", "SELECT current_user, 1+1"],
        env=env, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "aq_scram|2"


async def _busy_client(port: int, user: str) -> set[int]:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=user, database="app",
                                 password=ROLES[user][0], ssl=False,
                                 statement_cache_size=0)
    try:
        pids = set()
        for _ in range(10):
            async with conn.transaction():
                pids.add(await conn.fetchval("SELECT pg_backend_pid()"))
                await conn.fetchval("SELECT pg_sleep(0.005)")
        return pids
    finally:
        await conn.close()


@pytest.mark.parametrize("user", ["aq_md5", "aq_scram"])
def test_transaction_mode_shares_auth_query_pool_size_servers(aq_proxy: ProxyProcess,
                                                              user: str) -> None:
    async def run() -> set[int]:
        results = await asyncio.gather(*(_busy_client(aq_proxy.port, user) for _ in range(6)))
        return set().union(*results)

    pids = asyncio.run(run())
    assert 1 <= len(pids) <= 2  # six clients, auth_query_pool_size = 2 servers


def test_show_pools_lists_the_users_created_at_login(aq_proxy: ProxyProcess) -> None:
    for user in ("aq_md5", "aq_scram"):
        psycopg.connect(dsn(aq_proxy, user=user, password=ROLES[user][0])).close()
    admin = dsn(aq_proxy, user="admin", password="admin", dbname="pgcat")
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute("SHOW POOLS").fetchall()
    users = {(row[0], row[1]) for row in rows}
    assert {("app", "aq_md5"), ("app", "aq_scram"), ("app", "app")} <= users


def _login_error(proxy: ProxyProcess, user: str, password: str, dbname: str = "app"
                 ) -> asyncpg.PostgresError:
    """The error of a failed login, from asyncpg (libpq's keeps no SQLSTATE at connect)."""
    async def run() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=proxy.port, user=user,
                                     password=password, database=dbname, ssl=False)
        await conn.close()

    with pytest.raises(asyncpg.PostgresError) as caught:
        asyncio.run(run())
    return caught.value


@pytest.mark.parametrize("user", ["aq_md5", "aq_scram", "aq_nobody"])
def test_wrong_password_and_unknown_user_are_the_same_28P01(aq_proxy: ProxyProcess,
                                                            user: str) -> None:
    error = _login_error(aq_proxy, user, "wrong")
    assert error.sqlstate == "28P01"
    assert str(error) == f'password authentication failed for user "{user}"'
    with pytest.raises(psycopg.OperationalError,
                       match=f'password authentication failed for user "{user}"'):
        psycopg.connect(dsn(aq_proxy, user=user, password="wrong"))


def _terminate_backends(topology: Topology, user: str) -> None:
    """Make the proxy open new server connections as ``user`` (with the current secret)."""
    with psycopg.connect(topology.primary.superuser_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE usename = %s", (user,))


def _query_as(proxy: ProxyProcess, user: str, password: str) -> str:
    with psycopg.connect(dsn(proxy, user=user, password=password)) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def test_md5_password_changed_in_postgresql_works_at_once(aq_proxy: ProxyProcess,
                                                          roles: Topology) -> None:
    user = "aq_moving_md5"
    assert _query_as(aq_proxy, user, "old_md5") == user  # cached now
    set_password(roles, user, "new_md5", "md5")
    _terminate_backends(roles, user)
    time.sleep(REFETCH_INTERVAL)  # a lookup just ran: the next one waits that long
    # The cached hash fails, the lookup runs again, the same response matches the new one.
    assert _query_as(aq_proxy, user, "new_md5") == user
    assert _login_error(aq_proxy, user, "old_md5").sqlstate == "28P01"


def test_scram_password_changed_in_postgresql_works_after_one_refusal(
        aq_proxy: ProxyProcess, roles: Topology) -> None:
    user = "aq_moving_scram"
    assert _query_as(aq_proxy, user, "old_scram") == user
    set_password(roles, user, "new_scram", "scram-sha-256")
    _terminate_backends(roles, user)
    time.sleep(REFETCH_INTERVAL)
    # The first proof is bound to the old salt: refused, and the verifier is read again.
    try:
        first = _query_as(aq_proxy, user, "new_scram")
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
        first = _query_as(aq_proxy, user, "new_scram")
    assert first == user
    # New server connections log in with the new ClientKey.
    _terminate_backends(roles, user)
    assert _query_as(aq_proxy, user, "new_scram") == user


@pytest.fixture
def broken_lookup_proxy(roles: Topology, tmp_path: Path) -> Iterator[ProxyProcess]:
    """auth_query_password wrong in pool app; pool gone's primary does not exist."""
    gone = f"""
[pools.gone]
auth_query = "{AUTH_QUERY}"
auth_query_user = "{LOOKUP_USER}"
auth_query_password = "{LOOKUP_PASSWORD}"
connect_timeout = 1000
[pools.gone.users.0]
username = "app"
password = "app"
pool_size = 1
[pools.gone.shards.0]
database = "app"
servers = [["127.0.0.1", {free_port()}, "primary"]]
"""
    proxy = start_proxy(aq_config(roles, lookup_password="wrong", extra=gone), tmp_path)
    yield proxy
    proxy.stop()


def test_failing_auth_query_is_a_clear_error_and_the_proxy_serves_on(
        broken_lookup_proxy: ProxyProcess) -> None:
    proxy = broken_lookup_proxy
    for database in ("app", "gone"):
        error = _login_error(proxy, "aq_md5", "md5_secret", dbname=database)
        assert error.sqlstate == "08006", str(error)
        assert "auth_query" in str(error)
    # Listed users of the same pool, and everybody else, are served as before.
    with psycopg.connect(dsn(proxy)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert proxy.process.poll() is None
    assert "auth_query of pool app" in proxy.log_text()


MADE = "auth_query: pool app has a connection pool for user {} now"


def _admin(proxy: ProxyProcess) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgcat"),
                           autocommit=True)


def _pool_users(proxy: ProxyProcess) -> set[str]:
    with _admin(proxy) as admin:
        return {str(row[1]) for row in admin.execute("SHOW POOLS").fetchall()}


def test_reloads_keep_or_remake_the_pool_of_an_unlisted_user(roles: Topology,
                                                             tmp_path: Path) -> None:
    user, password = "aq_reloaded", ROLES["aq_reloaded"][0]
    with start_proxy(aq_config(roles), tmp_path) as proxy, \
            psycopg.connect(dsn(proxy, user=user, password=password),
                            autocommit=True) as client:
        assert client.execute("SELECT current_user").fetchone() == (user,)
        config = proxy.config_path.read_text()
        # Another pool added: pool app and its users' connection pools stay as they are.
        proxy.config_path.write_text(config + "[pools.more]\n[pools.more.users.0]\n"
                                     'username = "app"\npassword = "app"\npool_size = 1\n'
                                     '[pools.more.shards.0]\ndatabase = "app"\n'
                                     f'servers = [["127.0.0.1", {roles.primary.port}, '
                                     '"primary"]]\n')
        with _admin(proxy) as admin:
            admin.execute("RELOAD")
        assert user in _pool_users(proxy)
        assert client.execute("SELECT current_user").fetchone() == (user,)
        assert proxy.log_text().count(MADE.format(user)) == 1  # kept, not made again
        # Pool app changed: the client moves to a new pool at its next transaction, made
        # from the secret its login left (no new login needed).
        proxy.config_path.write_text(config.replace("[pools.app]\n",
                                                    "[pools.app]\nidle_timeout = 30000\n"))
        with _admin(proxy) as admin:
            admin.execute("RELOAD")
        assert client.execute("SELECT current_user").fetchone() == (user,)
        assert user in _pool_users(proxy)
        assert proxy.log_text().count(MADE.format(user)) == 2


def test_a_reload_with_the_right_auth_query_password_lets_users_in(
        broken_lookup_proxy: ProxyProcess) -> None:
    proxy = broken_lookup_proxy
    assert _login_error(proxy, "aq_scram", "scram_secret").sqlstate == "08006"
    config = proxy.config_path.read_text()
    proxy.config_path.write_text(config.replace('auth_query_password = "wrong"',
                                                f'auth_query_password = "{LOOKUP_PASSWORD}"'))
    with _admin(proxy) as admin:
        admin.execute("RELOAD")
    assert _query_as(proxy, "aq_scram", "scram_secret") == "aq_scram"
