"""Memory per client stays bounded (DESIGN invariant 4): big messages stream, not pile up."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import proxy_config

from .conftest import ProxyRunner, dsn

MB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has ever had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


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
