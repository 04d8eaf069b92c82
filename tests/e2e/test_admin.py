"""The admin console as operators drive it (PgBouncer's and pgcat's behaviour checks):
SHOW POOLS/STATS/CLIENTS/SERVERS/BANS/CONFIG..., BAN/UNBAN, PAUSE/RESUME, KILL, SET and
RELOAD (also by SIGHUP), with psycopg on the `pgbouncer` and `pgcat` databases.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgcat_py.localpg import Topology, find_pg_bin, free_port
from pgcat_py.localpg.commands import client_binary
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(120)


def admin(proxy: ProxyProcess, dbname: str = "pgbouncer") -> psycopg.Connection[Any]:
    return psycopg.connect(dsn(proxy, user="admin", password="admin", dbname=dbname),
                           autocommit=True, prepare_threshold=None)


def show(conn: psycopg.Connection[Any], what: str) -> list[dict[str, Any]]:
    cur = conn.execute(f"SHOW {what}")
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    return proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=1,
                                     extra_general={"connect_timeout": 20000},
                                     extra_pool={"default_role": "primary"}))


@pytest.fixture
def console(proxy: ProxyProcess) -> Iterator[psycopg.Connection[Any]]:
    with admin(proxy) as conn:
        yield conn


def in_thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def sleep_query(proxy: ProxyProcess, seconds: float) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        conn.execute(f"SELECT pg_sleep({seconds})")


def test_show_pools_counts_active_and_waiting_clients(proxy: ProxyProcess,
                                                      console: psycopg.Connection[Any]) -> None:
    threads = [in_thread(sleep_query, proxy, 1.5) for _ in range(3)]
    assert wait_for(lambda: any(p["cl_active"] == 1 and p["cl_waiting"] == 2
                                for p in show(console, "POOLS")), timeout=10)
    pool = next(p for p in show(console, "POOLS") if p["database"] == "app")
    assert pool["sv_active"] == 1
    time.sleep(0.3)
    waited = next(p for p in show(console, "POOLS") if p["database"] == "app")
    assert waited["maxwait"] * 1_000_000 + waited["maxwait_us"] > 0
    for thread in threads:
        thread.join(10)
    pool = next(p for p in show(console, "POOLS") if p["database"] == "app")
    assert pool["cl_active"] == pool["cl_waiting"] == 0


def test_show_stats_counts_for_real(proxy: ProxyProcess,
                                    console: psycopg.Connection[Any]) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        for _ in range(10):
            conn.execute("SELECT pg_sleep(0.01)")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
    stats = {s["instance"]: s for s in show(console, "STATS")}
    primary = stats["app_shard_0_primary"]
    assert primary["total_xact_count"] >= 11 and primary["total_query_count"] >= 10
    assert primary["total_received"] > 0 and primary["total_sent"] > 0
    assert primary["total_query_time"] >= 100_000  # µs: ten 10 ms sleeps at least
    assert primary["total_xact_time"] >= primary["total_query_time"] // 2
    assert primary["total_errors"] >= 1
    totals = {s["instance"]: s for s in show(console, "STATS_TOTALS")}
    assert totals["app_shard_0_primary"]["xact_count"] == primary["total_xact_count"]
    averages = show(console, "STATS_AVERAGES")
    assert {"avg_xact_count", "avg_query_time", "avg_wait_time"} <= averages[0].keys()


def test_show_clients_and_servers_with_a_pinned_client(proxy: ProxyProcess,
                                                       console: psycopg.Connection[Any]
                                                       ) -> None:
    with psycopg.connect(dsn(proxy, application_name="pinner"), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242)")
        clients = show(console, "CLIENTS")
        pinned = next(c for c in clients if c["application_name"] == "pinner")
        assert pinned["pinned"] == "advisory_lock" and pinned["server"].startswith("app_")
        assert pinned["state"] == "active" and pinned["transaction_count"] >= 1  # it holds it
        assert any(c["user"] == "admin" for c in clients)
        servers = show(console, "SERVERS")
        assert [s["address_id"] for s in servers] == ["app_shard_0_primary"]
        assert servers[0]["transaction_count"] >= 1
        conn.execute("SELECT pg_advisory_unlock_all()")
    assert show(console, "LISTS")[0]["list"] == "databases"
    assert {"name": "app", "pool_mode": "transaction"} in show(console, "USERS")


def test_ban_unban_and_show_bans(proxy: ProxyProcess, console: psycopg.Connection[Any]) -> None:
    banned = console.execute("BAN 127.0.0.1 60").fetchall()
    assert ("app", "app", "replica", "127.0.0.1") in banned
    bans = show(console, "BANS")
    assert [b["role"] for b in bans] == ["replica"]  # a primary is never banned (pgcat)
    assert bans[0]["reason"] == "AdminBan(60)" and int(bans[0]["ban_remaining_seconds"]) >= 55
    with pytest.raises(psycopg.Error, match="integer"):
        console.execute("BAN 127.0.0.1 soon")
    assert console.execute("UNBAN 127.0.0.1").fetchall() == [("app", "app", "replica",
                                                             "127.0.0.1")]
    assert show(console, "BANS") == []


def test_pause_waits_for_transactions_and_holds_new_ones_until_resume(
        proxy: ProxyProcess, console: psycopg.Connection[Any]) -> None:
    inside = psycopg.connect(dsn(proxy))
    inside.execute("SELECT 1")  # a transaction is open, holding the server
    paused = threading.Event()
    in_thread(lambda: (admin(proxy).execute("PAUSE app"), paused.set()))
    time.sleep(0.5)
    assert not paused.is_set()  # PAUSE waits for the open transaction
    inside.commit()
    assert paused.wait(5)
    done = threading.Event()
    in_thread(lambda: (sleep_query(proxy, 0), done.set()))
    time.sleep(0.5)
    assert not done.is_set()  # a new transaction waits while paused
    assert next(p for p in show(console, "POOLS") if p["database"] == "app")["cl_waiting"] == 1
    console.execute("RESUME app")
    assert done.wait(5)
    inside.execute("SELECT 1")  # and the paused-then-resumed pool serves as before
    inside.close()


def test_kill_drops_the_clients_of_a_database(proxy: ProxyProcess,
                                              console: psycopg.Connection[Any]) -> None:
    victim = psycopg.connect(dsn(proxy), autocommit=True)
    victim.execute("SELECT 1")
    console.execute("KILL app")
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    console.execute("RESUME app")
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_set_pool_size_applies_without_a_restart(proxy: ProxyProcess,
                                                 console: psycopg.Connection[Any]) -> None:
    console.execute("SET pools.app.users.0.pool_size = 3")
    assert {d["pool_size"] for d in show(console, "DATABASES")} == {3}
    threads = [in_thread(sleep_query, proxy, 1) for _ in range(3)]
    assert wait_for(lambda: any(p["cl_active"] == 3 for p in show(console, "POOLS")),
                    timeout=10)
    for thread in threads:
        thread.join(10)
    with pytest.raises(psycopg.Error, match=r"pools\.app\.users\.0\.pool_size"):
        console.execute("SET pools.app.users.0.pool_size = 0")
    console.execute("SET client_encoding = 'UTF8'")  # what drivers send: acknowledged
    with pytest.raises(psycopg.Error, match="no such key"):
        console.execute("SET SHARD TO '0'")  # a client command, not a config key
    config = {row["key"]: row for row in show(console, "CONFIG")}
    assert config["pools.app.users.0.pool_size"]["value"] == "3"
    assert config["admin_password"]["value"] == "********"
    assert config["port"]["changeable"] == "no"
    assert not any(row["value"] in ("admin", "app") for row in config.values()
                   if row["key"].endswith("password"))


def test_reload_applies_a_changed_file_and_refuses_a_broken_one(
        pg_topology: Topology, proxy: ProxyProcess, console: psycopg.Connection[Any]) -> None:
    path = proxy.config_path
    good = path.read_text()
    path.write_text(good.replace("pool_size = 1", "pool_size = 4"))
    console.execute("RELOAD")
    assert {d["pool_size"] for d in show(console, "DATABASES")} == {4}
    path.write_text(good.replace("pool_size = 1", 'pool_size = "many"'))
    with pytest.raises(psycopg.Error) as refused:
        console.execute("RELOAD")
    message = str(refused.value)
    assert str(path) in message and "pools.app.users.0.pool_size" in message
    assert {d["pool_size"] for d in show(console, "DATABASES")} == {4}  # the old one serves
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sighup_reloads_and_an_open_transaction_finishes_on_its_old_server(
        proxy: ProxyProcess, console: psycopg.Connection[Any]) -> None:
    inside = psycopg.connect(dsn(proxy))
    pid = inside.execute("SELECT pg_backend_pid()").fetchone()
    path = proxy.config_path
    path.write_text(path.read_text().replace("pool_size = 1", "pool_size = 2"))
    proxy.signal(signal.SIGHUP)
    assert wait_for(lambda: {d["pool_size"] for d in show(console, "DATABASES")} == {2})
    assert proxy.is_running()
    assert inside.execute("SELECT pg_backend_pid()").fetchone() == pid  # same transaction
    inside.commit()
    new_pid = inside.execute("SELECT pg_backend_pid()").fetchone()
    inside.commit()
    assert new_pid != pid  # the next transaction is on the new pool
    path.write_text("not toml [")
    proxy.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload refused" in proxy.log_text())
    assert proxy.is_running()
    assert inside.execute("SELECT 3").fetchone() == (3,)
    inside.close()


def test_admin_console_answers_on_both_database_names(proxy: ProxyProcess) -> None:
    for name in ("pgcat", "pgbouncer"):
        with admin(proxy, name) as conn:
            row = conn.execute("SHOW VERSION").fetchone()
            assert row is not None and row[0].startswith("pgcat-py")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(proxy, dbname="pgbouncer"))  # app is no admin


def test_admin_shutdown_is_graceful_and_the_console_stays_usable(
        proxy: ProxyProcess, console: psycopg.Connection[Any]) -> None:
    """pgcat's shutdown checks (§10): SHUTDOWN answers t, a transaction may finish, new
    logins are refused at once but admin ones work, and the process exits at zero clients."""
    busy = psycopg.connect(dsn(proxy))
    busy.execute("SELECT 1")
    assert console.execute("SHUTDOWN").fetchone() == ("t",)
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="administrator command"):
        psycopg.connect(dsn(proxy))
    assert time.monotonic() - started < 1
    with admin(proxy) as late:
        assert show(late, "DATABASES")
    assert show(console, "POOLS")  # the existing admin session too
    assert busy.execute("SELECT 2").fetchone() == (2,)
    busy.commit()
    assert proxy.wait(10) == 0
    busy.close()


def test_admin_console_and_clients_over_the_unix_socket(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    """unix_socket_dir: PgBouncer's .s.PGSQL.<port>, found by psql and psycopg with -h DIR."""
    directory = tempfile.mkdtemp(prefix="pgcatpy-sock-")  # short: socket paths max 107 bytes
    try:
        proxy = proxy_runner(proxy_config(pg_topology, port=free_port(),
                                          extra_general={"unix_socket_dir": directory},
                                          extra_pool={"default_role": "primary"}))
        assert (Path(directory) / f".s.PGSQL.{proxy.port}").is_socket()
        over_socket = f"host={directory} port={proxy.port} sslmode=disable"
        with psycopg.connect(f"{over_socket} user=admin password=admin dbname=pgbouncer",
                             autocommit=True) as conn:
            assert show(conn, "POOLS")[0]["database"] == "app"
        with psycopg.connect(f"{over_socket} user=app password=app dbname=app") as conn:
            assert conn.execute("SELECT 5").fetchone() == (5,)
        psql = client_binary(find_pg_bin(), "psql")
        done = subprocess.run([psql, "-h", directory, "-p", str(proxy.port), "-U", "admin",
                               "-d", "pgcat", "-Atc", "SHOW VERSION"],
                              env={"PGPASSWORD": "admin", "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and done.stdout.startswith("pgcat-py"), done.stderr
        proxy.stop()
        assert not (Path(directory) / f".s.PGSQL.{proxy.port}").exists()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_pgbouncer_commands_totals_state_disable_enable_reconnect(
        proxy: ProxyProcess, console: psycopg.Connection[Any]) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        totals = {row["name"]: row["value"] for row in show(console, "TOTALS")}
        assert totals["total_xact_count"] >= 1 and "avg_query_time" in totals
        assert {row["key"]: row["value"] for row in show(console, "STATE")}["paused"] == "no"
        console.execute("RECONNECT app")
        assert conn.execute("SELECT pg_backend_pid()").fetchone() != pid  # a new server
        console.execute("DISABLE app")
        with pytest.raises(psycopg.OperationalError, match="does not allow connections"):
            psycopg.connect(dsn(proxy))
        assert conn.execute("SELECT 1").fetchone() == (1,)  # connected clients go on
        console.execute("ENABLE app")
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
