"""Memory per client stays bounded (DESIGN invariant 4): big messages stream, not pile up,
and an idle client costs the proxy a few KiB at most."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import proxy_config
from tests.harness.rawclient import RawClient

from .conftest import ProxyRunner, dsn

MB = 1024 * 1024
KIB = 1024
IDLE_CLIENTS = 500
# benchmarks/idle_memory_bench.py measures about 1.2 KiB per idle parked client (10 000);
# this bound is generous, to catch what brings back a per-client dict or buffer.
IDLE_CLIENT_BOUND = 8 * KIB


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has ever had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def rss(pid: int) -> int:
    """VmRSS: resident memory now, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_64mb_first_message_streams_through(pg_topology: Topology,
                                              proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=1,
                                      extra_pool={"default_role": "primary"}))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        conn.execute("select 1")
        before = peak_rss(proxy.pid)
        big = "x" * (64 * MB)
        # Simple protocol, no parameters: the whole text is one 64 MB Query message.
        row = conn.execute(f"select length('{big}')".encode()).fetchone()  # type: ignore[call-overload]
        assert row == (64 * MB,)
        grown = peak_rss(proxy.pid) - before
    assert grown < 16 * MB, f"proxy peak memory grew by {grown // MB} MB for a 64 MB query"


def test_an_idle_client_costs_a_few_kib(pg_topology: Topology,
                                        proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=2,
                                      extra_general={"worker_threads": 1},
                                      extra_pool={"default_role": "primary"}))

    def idle_client() -> RawClient:
        client = RawClient.connect(proxy.host, proxy.port)
        client.login("app", "app", "app")
        client.query("select 1")  # used once, as a pooled application connection is
        return client

    for client in [idle_client() for _ in range(20)]:  # every code path has run once
        client.close()
    before = rss(proxy.pid)
    clients = [idle_client() for _ in range(IDLE_CLIENTS)]
    try:
        per_client = (rss(proxy.pid) - before) / IDLE_CLIENTS
    finally:
        for client in clients:
            client.close()
    assert per_client < IDLE_CLIENT_BOUND, f"{per_client:.0f} bytes per idle client"
