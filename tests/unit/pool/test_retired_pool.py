"""A pool a reload replaced (retired) keeps no connection: one that finishes opening after
the retire, with nobody left waiting for it, is closed, not parked idle where no sweep would
ever close it (found by benchmarks/soak.py: server connections leaked at each reload that
came while a replica was down)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest import mock

import pytest

from pgcat_py.backend.server import ServerTarget
from pgcat_py.pool.server_pool import PoolSettings, ServerPool

COUNTERS = ("xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time",
            "query_time", "errors")


def fake_server() -> mock.Mock:
    server = mock.Mock(spec_set=[*COUNTERS, "mirrors", "xact_buckets", "on_lost", "statements",
                                 "reset_counters", "terminate", "last_used"])
    for name in COUNTERS:
        setattr(server, name, 0)
    server.statements = SimpleNamespace(set_capacity=lambda capacity: None)
    return server


@pytest.mark.parametrize("retired", [True, False])
async def test_a_connection_opened_for_a_retired_pool_is_closed(retired: bool) -> None:
    pool = ServerPool(ServerTarget("127.0.0.1", 1, "db", "u", None, "primary", "s1"),
                      PoolSettings(pool_size=2, ban_time=30))
    server, opened = fake_server(), asyncio.Event()

    async def connect() -> mock.Mock:
        await opened.wait()
        return server

    pool._connect = connect  # type: ignore[method-assign]
    pool._start_open(mock.Mock())  # for a client that then went elsewhere
    if retired:
        pool.retire()
    opened.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert list(pool.idle) == ([] if retired else [server])
    assert server.terminate.called is retired
