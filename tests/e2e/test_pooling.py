"""Pool behaviour seen from outside: sizes, timeouts, limits, modes and shutdown.

Each test logs in as a role of its own, so counting that role's backends in
pg_stat_activity counts exactly this proxy's server connections.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, TomlValue, proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

_role_numbers = itertools.count()


@pytest.fixture
def role(pg_topology: Topology) -> Iterator[str]:
    """A fresh login role (password = name) on the primary, dropped afterwards."""
    name = f"pool_role_{next(_role_numbers)}_{int(time.time() * 1000) % 100000}"
    with psycopg.connect(pg_topology.primary.superuser_dsn("postgres"), autocommit=True) as su:
        su.execute(f"create role {name} login password '{name}'")
    yield name
    with psycopg.connect(pg_topology.primary.superuser_dsn("postgres"), autocommit=True) as su:
        su.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s",
                   [name])
        for _ in range(50):
            try:
                su.execute(f"drop role {name}")
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.1)


def backends(topology: Topology, role: str) -> int:
    with psycopg.connect(topology.primary.superuser_dsn("postgres")) as su:
        row = su.execute("select count(*) from pg_stat_activity where usename = %s",
                         [role]).fetchone()
    assert row is not None
    return int(row[0])


def start(runner: ProxyRunner, topology: Topology, role: str, *, pool_size: int = 2,
          user: Mapping[str, TomlValue] | None = None, **kwargs: object) -> ProxyProcess:
    users = [{"username": role, "password": role, **(user or {})}]
    text = proxy_config(topology, port=free_port(), pool_size=pool_size, users=users,
                        **kwargs)  # type: ignore[arg-type]
    return runner(text)


PRIMARY_ONLY = {"default_role": "primary"}


def test_min_pool_size_opens_connections_up_front(pg_topology: Topology, role: str,
                                                  proxy_runner: ProxyRunner) -> None:
    start(proxy_runner, pg_topology, role, pool_size=4, user={"min_pool_size": 3},
          extra_pool=PRIMARY_ONLY)
    assert wait_for(lambda: backends(pg_topology, role) == 3)


def test_pool_size_caps_server_connections(pg_topology: Topology, role: str,
                                           proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=2, extra_pool=PRIMARY_ONLY)

    async def client() -> None:
        async with await psycopg.AsyncConnection.connect(
                dsn(proxy, user=role, password=role), autocommit=True) as conn:
            await conn.execute("select pg_sleep(0.2)")

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(10)))

    asyncio.run(main())
    assert backends(pg_topology, role) == 2


def test_idle_timeout_closes_idle_server_connections(pg_topology: Topology, role: str,
                                                     proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=3,
                  user={"idle_timeout": 500}, extra_pool=PRIMARY_ONLY)
    with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
        conn.execute("select 1")
        assert backends(pg_topology, role) == 1
        assert wait_for(lambda: backends(pg_topology, role) == 0, timeout=8)
        assert conn.execute("select 2").fetchone() == (2,)  # a new one opens on demand


def test_server_lifetime_recycles_connections(pg_topology: Topology, role: str,
                                              proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=1,
                  user={"server_lifetime": 300}, extra_pool=PRIMARY_ONLY)
    with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
        first = conn.execute("select pg_backend_pid()").fetchone()
        time.sleep(0.6)
        second = conn.execute("select pg_backend_pid()").fetchone()
    assert first != second


def test_max_client_conn_refuses_with_53300(pg_topology: Topology, role: str,
                                            proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, extra_general={"max_client_conn": 2},
                  extra_pool=PRIMARY_ONLY)
    conns = [psycopg.connect(dsn(proxy, user=role, password=role)) for _ in range(2)]
    try:
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(dsn(proxy, user=role, password=role))
        assert "too many clients" in str(info.value)
    finally:
        for conn in conns:
            conn.close()
    with psycopg.connect(dsn(proxy, user=role, password=role)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_checkout_waits_connect_timeout_then_errors(pg_topology: Topology, role: str,
                                                    proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=1,
                  user={"connect_timeout": 300}, extra_pool=PRIMARY_ONLY)
    holder = psycopg.connect(dsn(proxy, user=role, password=role))
    holder.execute("select 1")  # holds the only server: inside a transaction
    try:
        with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as info:
                conn.execute("select 1")
            assert "could not get connection from the pool" in str(info.value)
            holder.rollback()
            assert conn.execute("select 3").fetchone() == (3,)  # usable after the error
    finally:
        holder.close()


def test_reserve_pool_serves_clients_that_waited_too_long(pg_topology: Topology, role: str,
                                                          proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=1,
                  user={"connect_timeout": 3000},
                  extra_pool={**PRIMARY_ONLY, "reserve_pool_size": 1,
                              "reserve_pool_timeout": 200})
    holder = psycopg.connect(dsn(proxy, user=role, password=role))
    holder.execute("select 1")
    try:
        with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
            started = time.monotonic()
            assert conn.execute("select 4").fetchone() == (4,)
            assert time.monotonic() - started < 2.5
        assert backends(pg_topology, role) == 2
    finally:
        holder.close()


def test_pool_mode_per_user_overrides_the_pool(pg_topology: Topology, role: str,
                                               proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=2, pool_mode="transaction",
                  user={"pool_mode": "session"}, extra_pool=PRIMARY_ONLY)
    with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
        pids = {conn.execute("select pg_backend_pid()").fetchone() for _ in range(5)}
        # session mode: a named prepared statement lives across "transactions"
        conn.execute("prepare keep (int) as select $1 * 2")
        assert conn.execute("execute keep(21)").fetchone() == (42,)
    assert len(pids) == 1


def test_listen_notify_in_session_mode(session_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(session_proxy), autocommit=True) as listener, \
            psycopg.connect(dsn(session_proxy), autocommit=True) as notifier:
        listener.execute("listen e2e_channel")
        got: list[str] = []

        def listen() -> None:
            for note in listener.notifies(timeout=5):
                got.append(note.payload)
                break

        thread = threading.Thread(target=listen)
        thread.start()
        time.sleep(0.2)
        notifier.execute("notify e2e_channel, 'hello'")
        thread.join(10)
    assert got == ["hello"]


def test_sigint_shuts_down_gracefully(pg_topology: Topology, role: str,
                                      proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, extra_general={"shutdown_timeout": 5000},
                  extra_pool=PRIMARY_ONLY)
    idle = psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True)
    busy = psycopg.connect(dsn(proxy, user=role, password=role))
    busy.execute("select 1")  # inside a transaction
    proxy.signal(signal.SIGINT)
    time.sleep(0.3)
    with pytest.raises(psycopg.OperationalError):
        idle.execute("select 1")  # idle clients are told 57P01 and closed
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(proxy, user=role, password=role))  # new logins refused
    assert busy.execute("select 2").fetchone() == (2,)  # the transaction may finish
    busy.commit()
    assert proxy.wait(5) == 0  # last client gone: the process exits
    busy.close()
    idle.close()


def test_sigint_gives_up_on_a_stuck_client_after_shutdown_timeout(
        pg_topology: Topology, role: str, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, extra_general={"shutdown_timeout": 700},
                  extra_pool=PRIMARY_ONLY)
    stuck = psycopg.connect(dsn(proxy, user=role, password=role))
    stuck.execute("select 1")  # holds a transaction open and never ends it
    try:
        started = time.monotonic()
        proxy.signal(signal.SIGINT)
        assert proxy.wait(10) == 0
        assert time.monotonic() - started >= 0.6
    finally:
        stuck.close()


def test_sigterm_during_a_graceful_shutdown_exits_at_once(
        pg_topology: Topology, role: str, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, extra_general={"shutdown_timeout": 60000},
                  extra_pool=PRIMARY_ONLY)
    stuck = psycopg.connect(dsn(proxy, user=role, password=role))
    stuck.execute("select 1")
    try:
        proxy.signal(signal.SIGINT)
        time.sleep(0.3)
        assert proxy.is_running()  # still draining: the transaction may finish
        started = time.monotonic()
        proxy.signal(signal.SIGTERM)
        assert proxy.wait(5) == 0
        assert time.monotonic() - started < 3
    finally:
        stuck.close()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read socket timers")
def test_tcp_keepalives_apply_to_client_and_server_sockets(
        pg_topology: Topology, role: str, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, extra_pool=PRIMARY_ONLY,
                  extra_general={"tcp_keepalives_idle": 120, "tcp_keepalives_interval": 7})
    def sockets(filter_: str) -> str:
        return subprocess.run(["ss", "-tnoHp", "state", "established", filter_],
                              capture_output=True, text=True, check=True).stdout

    with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
        conn.execute("select 1")
        # ss shows the retransmit timer while bytes are unacknowledged: wait for quiet.
        assert wait_for(lambda: "keepalive,2min" in sockets(f"( sport = :{proxy.port} )")
                        or "keepalive,1min" in sockets(f"( sport = :{proxy.port} )"),
                        timeout=5), sockets(f"( sport = :{proxy.port} )")

        def server_sockets_keepalive() -> bool:
            ours = [line for line in sockets(f"( dport = :{pg_topology.primary.port} )")
                    .splitlines() if f"pid={proxy.pid}," in line]
            return bool(ours) and all("timer:(keepalive" in line for line in ours)

        assert wait_for(server_sockets_keepalive, timeout=5)


def test_a_server_killed_while_idle_is_never_handed_out(
        pg_topology: Topology, role: str, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology, role, pool_size=1, extra_pool=PRIMARY_ONLY)
    with psycopg.connect(dsn(proxy, user=role, password=role), autocommit=True) as conn:
        first = conn.execute("select pg_backend_pid()").fetchone()
        assert first is not None
        with psycopg.connect(pg_topology.primary.superuser_dsn("postgres"),
                             autocommit=True) as su:
            su.execute("select pg_terminate_backend(%s)", [first[0]])
        time.sleep(0.2)  # the FATAL and the close reach the proxy
        second = conn.execute("select pg_backend_pid()").fetchone()
    assert second is not None and second != first
