"""Worker processes on one port (worker_threads = 2): what a user sees does not change with
the number. The pool total holds over all workers, a cancel reaches its query whichever
worker accepts it, a ban seen by one worker applies in all, the admin console and the
exporter add up every worker, reload and signals reach them all, and a killed worker is
replaced.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(120)
POOL_SIZE = 10  # two workers: 5 + 5


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the supervisor's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def admin(proxy: ProxyProcess) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgbouncer"),
                           autocommit=True)


def show(conn: psycopg.Connection[Any], what: str) -> list[dict[str, Any]]:
    cur = conn.execute(f"SHOW {what}")
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def start(runner: ProxyRunner, topology: Topology, pool_size: int = POOL_SIZE,
          **extra_general: Any) -> ProxyProcess:
    return both_listening(runner(proxy_config(
        topology, port=free_port(), pool_size=pool_size,
        extra_general={"worker_threads": 2, "connect_timeout": 20000, **extra_general},
        extra_pool={"default_role": "primary"})))


def both_listening(proxy: ProxyProcess) -> ProxyProcess:
    assert wait_for(lambda: all(f"(worker {i} of 2)" in proxy.log_text() for i in (0, 1))
                    and len(children(proxy.pid)) == 2), proxy.log_tail()
    return proxy


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    return start(proxy_runner, pg_topology)


def test_the_pool_total_holds_over_all_workers(pg_topology: Topology,
                                               proxy: ProxyProcess) -> None:
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(pg_topology.primary.superuser_dsn("app"), autocommit=True) as pg:
            while not stop.is_set():
                row = pg.execute("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE application_name = 'pool_total'").fetchone()
                seen.append(row[0] if row else 0)
                time.sleep(0.02)

    def client() -> None:
        with psycopg.connect(dsn(proxy, application_name="pool_total"),
                             autocommit=True) as conn:
            for _ in range(3):
                conn.execute("SELECT pg_sleep(0.2)")

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    watcher.join(10)
    assert 5 < max(seen) <= POOL_SIZE  # both workers served, never past the total


def running_sleeps(topology: Topology) -> int:
    with psycopg.connect(topology.primary.superuser_dsn("app"), autocommit=True) as pg:
        row = pg.execute("SELECT count(*) FROM pg_stat_activity "
                         "WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'").fetchone()
    return row[0] if row else 0


def test_cancel_reaches_the_query_whichever_worker_accepts_it(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    # A share of 8 per worker: the kernel may give one worker six of the eight clients, and
    # a client waiting for its worker's share has no query running to cancel.
    proxy = start(proxy_runner, pg_topology, pool_size=16)
    conns = [psycopg.connect(dsn(proxy), autocommit=True) for _ in range(8)]
    try:
        errors: list[BaseException] = []

        def sleep(conn: psycopg.Connection[Any]) -> None:
            try:
                conn.execute("SELECT pg_sleep(20)")
            except psycopg.Error as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sleep, args=(c,)) for c in conns]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10  # a cancel before its query started would be lost
        while running_sleeps(pg_topology) < 8:
            assert time.monotonic() < deadline, f"{running_sleeps(pg_topology)} of the queries ran"
            time.sleep(0.05)
        started = time.monotonic()
        for conn in conns:
            conn.cancel()
        for thread in threads:
            thread.join(15)
        assert time.monotonic() - started < 10
        assert len(errors) == 8
        assert all(isinstance(e, psycopg.errors.QueryCanceled) for e in errors), errors
    finally:
        for conn in conns:
            conn.close()


def test_admin_console_and_metrics_add_up_every_worker(pg_topology: Topology,
                                                       proxy_runner: ProxyRunner) -> None:
    port = 20000 + free_port() % 12000  # prometheus_exporter_port is an i16, as in pgcat
    proxy = start(proxy_runner, pg_topology, enable_prometheus_exporter=True,
                  prometheus_exporter_port=port)
    conns = [psycopg.connect(dsn(proxy), autocommit=True) for _ in range(12)]
    try:
        for conn in conns:
            for _ in range(5):
                conn.execute("SELECT 1")
        with admin(proxy) as console:
            clients = [c for c in show(console, "CLIENTS") if c["user"] == "app"]
            assert len(clients) == 12  # both workers' clients, whichever one answers
            primary = next(s for s in show(console, "STATS")
                           if s["instance"] == "app_shard_0_primary")
            assert primary["total_query_count"] >= 60
            database = next(d for d in show(console, "DATABASES")
                            if d["name"] == "app_shard_0_primary")
            assert database["pool_size"] == POOL_SIZE  # the shares add up to the total
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10
                                      ).read().decode()
        line = next(li for li in text.splitlines()
                    if li.startswith("pgcat_databases_pool_size{")
                    and 'role="primary"' in li)
        assert float(line.rsplit(" ", 1)[1]) == POOL_SIZE
    finally:
        for conn in conns:
            conn.close()


def test_a_ban_seen_by_one_worker_applies_in_all(pg_topology: Topology,
                                                 proxy_runner: ProxyRunner) -> None:
    dead = free_port()  # a replica nobody listens on
    text = proxy_config(pg_topology, port=free_port(), pool_size=POOL_SIZE,
                        extra_general={"worker_threads": 2, "connect_timeout": 2000},
                        extra_pool={"default_role": "replica"})
    text = text.replace(f'"127.0.0.1", {pg_topology.replicas[0].port}, "replica"',
                        f'"127.0.0.1", {dead}, "replica"')
    proxy = both_listening(proxy_runner(text))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)  # failed over to the primary
    assert wait_for(lambda: "banned by another worker" in proxy.log_text()), proxy.log_tail()


def test_reload_and_signals_reach_every_worker_and_a_killed_one_is_replaced(
        proxy: ProxyProcess) -> None:
    path = proxy.config_path
    path.write_text(path.read_text().replace(f"pool_size = {POOL_SIZE}", "pool_size = 12"))
    proxy.signal(signal.SIGHUP)
    with admin(proxy) as console:
        assert wait_for(lambda: {d["pool_size"] for d in show(console, "DATABASES")} == {12})
    workers = children(proxy.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert wait_for(lambda: len(children(proxy.pid)) == 2
                    and workers[0] not in children(proxy.pid), timeout=15), proxy.log_tail()
    for _ in range(10):
        with psycopg.connect(dsn(proxy), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    busy = psycopg.connect(dsn(proxy))
    busy.execute("SELECT 1")  # inside a transaction
    proxy.signal(signal.SIGINT)
    time.sleep(0.5)
    assert busy.execute("SELECT 2").fetchone() == (2,)  # may finish its transaction
    busy.commit()
    assert proxy.wait(15) == 0
    busy.close()
