"""Failover through the real proxy: a replica dies under load and comes back, every replica
is down, the primary is promoted away. Each test breaks a topology of its own (pg_base).

A replica is killed with an immediate shutdown (no goodbye to its clients, as after a
crash); reads that were in flight on it may fail, every later one must succeed, and after
ban_time the replica takes reads again.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, create_topology, free_port
from pgcat_py.localpg.commands import as_server_user
from pgcat_py.localpg.node import Node, start_node
from tests.harness.faultproxy import FaultProxy
from tests.harness.proxy import ProxyProcess, proxy_config

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(180)

ROUTED = {"query_parser_enabled": True, "query_parser_read_write_splitting": True}
READERS = 8
BAN_TIME_S = 2


def kill(topo: Topology, node: Node) -> None:
    """An immediate shutdown: like a crash, nobody is told."""
    argv = [str(topo.pg_bin / "pg_ctl"), "-D", str(node.datadir), "-m", "immediate", "-w",
            "stop"]
    subprocess.run(as_server_user(argv), check=True, capture_output=True)


def start(runner: ProxyRunner, topo: Topology, **pool: object) -> ProxyProcess:
    text = proxy_config(topo, port=free_port(), pool_size=4,
                        extra_general={"ban_time": BAN_TIME_S, "connect_timeout": 2000},
                        extra_pool={**ROUTED, **pool})  # type: ignore[dict-item]
    return runner(text)


def connect(proxy: ProxyProcess) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=None)


def read_port(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT inet_server_port()").fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


class Readers:
    """READERS threads reading in a loop until stopped; counts ports and failures."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self.proxy = proxy
        self.ports: collections.Counter[int] = collections.Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(READERS)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        conn = connect(self.proxy)
        try:
            while not self._stop.is_set():
                try:
                    self.ports[read_port(conn)] += 1
                except psycopg.Error as exc:
                    self.failures.append(str(exc).splitlines()[0])
                    if conn.closed:
                        conn = connect(self.proxy)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def test_killed_replica_costs_at_most_the_reads_in_flight_then_comes_back(
        pg_base: Path, proxy_runner: ProxyRunner) -> None:
    topo = create_topology(pg_base, replicas=2, shards=0)
    proxy = start(proxy_runner, topo)
    victim, survivor = topo.replicas
    readers = Readers(proxy)
    try:
        time.sleep(1.0)
        kill(topo, victim)
        time.sleep(2.0)
        failures_after_kill = len(readers.failures)
        seen = readers.ports.copy()
        time.sleep(1.0)
        during = readers.ports - seen
    finally:
        readers.stop()
    assert failures_after_kill <= READERS, readers.failures
    assert len(readers.failures) == failures_after_kill, readers.failures  # none later
    assert during[survivor.port] > 0 and during[victim.port] == 0, during
    # Back after ban_time: it takes reads again.
    start_node(topo.pg_bin, victim)
    deadline = time.monotonic() + 10 * BAN_TIME_S
    with connect(proxy) as conn:
        while read_port(conn) != victim.port:
            assert time.monotonic() < deadline, "the restarted replica never got a read"
            time.sleep(0.05)


def test_reads_fall_back_to_the_primary_when_every_replica_is_down(
        pg_base: Path, proxy_runner: ProxyRunner) -> None:
    topo = create_topology(pg_base, replicas=2, shards=0)
    proxy = start(proxy_runner, topo)
    with connect(proxy) as conn:
        assert read_port(conn) != topo.primary.port
        for replica in topo.replicas:
            kill(topo, replica)
        ports = []
        for _ in range(20):
            try:
                ports.append(read_port(conn))
            except psycopg.Error:
                ports.append(0)  # a read that was on its way to a dead replica
        assert ports[-15:] == [topo.primary.port] * 15, ports


def test_no_failover_to_the_primary_when_it_is_turned_off(
        pg_base: Path, proxy_runner: ProxyRunner) -> None:
    topo = create_topology(pg_base, replicas=1, shards=0)
    proxy = start(proxy_runner, topo, replica_to_primary_failover_enabled=False)
    kill(topo, topo.replicas[0])
    with connect(proxy) as conn:
        for _ in range(3):
            with pytest.raises(psycopg.Error):
                read_port(conn)
        conn.execute("SET SERVER ROLE TO 'primary'")  # the client may still choose it
        assert read_port(conn) == topo.primary.port


def test_promoted_replica_is_followed_as_the_primary(
        pg_base: Path, proxy_runner: ProxyRunner) -> None:
    topo = create_topology(pg_base, replicas=1, shards=0)
    with psycopg.connect(topo.primary.dsn(), autocommit=True) as direct:
        direct.execute("CREATE TABLE promoted (id int)")
    proxy = start(proxy_runner, topo)
    old, new = topo.primary, topo.replicas[0]
    with connect(proxy) as conn:
        conn.execute("INSERT INTO promoted VALUES (0)")
    topo.wait_for_replicas()  # row 0 must be on the replica before it is promoted
    promote = [str(topo.pg_bin / "pg_ctl"), "-D", str(new.datadir), "-w", "promote"]
    subprocess.run(as_server_user(promote), check=True, capture_output=True)
    kill(topo, old)
    deadline = time.monotonic() + 20
    written, last_error = False, ""
    while not written:
        assert time.monotonic() < deadline, f"{last_error}\n{proxy.log_tail()}"
        try:
            with connect(proxy) as conn:
                row = conn.execute("INSERT INTO promoted VALUES (1) "
                                   "RETURNING inet_server_port()").fetchone()
                assert row == (new.port,)
                written = True
        except psycopg.Error as exc:
            last_error = str(exc)
            time.sleep(0.2)
    with connect(proxy) as conn:  # reads are served too (by the new primary, the only one up)
        assert conn.execute("SELECT count(*) FROM promoted").fetchone() == (2,)


def test_health_check_bans_a_hung_replica_before_a_client_waits_on_it(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    replica = pg_topology.replicas[0]
    with FaultProxy(replica.port) as faults:
        text = proxy_config(pg_topology, port=free_port(), pool_size=2,
                            extra_general={"healthcheck_delay": 200, "healthcheck_timeout": 300,
                                           "ban_time": 30},
                            extra_pool=ROUTED)
        proxy = proxy_runner(text.replace(f"{replica.port}, \"replica\"",
                                          f"{faults.port}, \"replica\""))
        with connect(proxy) as conn:
            assert read_port(conn) == replica.port  # through the fault proxy
            time.sleep(0.5)  # the pooled connection is now older than healthcheck_delay
            faults.stall(True)
            started = time.monotonic()
            assert read_port(conn) == pg_topology.primary.port  # banned, read fails over
            assert time.monotonic() - started < 3
            assert read_port(conn) == pg_topology.primary.port  # stays banned
            faults.stall(False)
    assert "health check failed" in proxy.log_text()
