"""Python cost of one pooled transaction through the relay, with no sockets.

A client session and a server connection with in-memory transports run pgbench -S's
exchange (Query -> RowDescription, DataRow, CommandComplete, ReadyForQuery) in a loop:
checkout, relay both ways, release. What it prints is the proxy's own user-space work per
transaction, apart from the kernel and the event loop; run it before and after touching
the hot path (`.venv/bin/python benchmarks/relay_cycle_bench.py`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pgcat_py.backend.server import ServerConnection, ServerTarget
from pgcat_py.conn import SocketOptions
from pgcat_py.frontend.session import ClientSession, State
from pgcat_py.pool.cluster import Cluster, ClusterSettings
from pgcat_py.pool.server_pool import PoolSettings, ServerPool
from pgcat_py.protocol import backend as be
from pgcat_py.protocol.frontend import Query
from pgcat_py.router import Route

QUERY = Query("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;").encode()
RESPONSE = (be.RowDescription((be.Field("abalance", 23),)).encode()
            + be.DataRow((b"0",)).encode() + be.CommandComplete("SELECT 1").encode()
            + be.READY_IDLE)


class NullTransport:
    """Accepts writes and flow-control calls, does nothing."""

    def write(self, data: bytes) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Ctx:
    shutting_down = False
    client_login_timeout = 60.0
    socket_options = SocketOptions()

    def __init__(self, route: Route) -> None:
        self._route = route

    def route(self, session: ClientSession) -> Route:
        return self._route

    def client_connected(self, session: ClientSession) -> None:
        pass


def build() -> tuple[ClientSession, ServerConnection]:
    target = ServerTarget("127.0.0.1", 5432, "bench", "app", "app")
    pool = ServerPool(target, PoolSettings(pool_size=1))
    server = ServerConnection(target)
    server.transport = NullTransport()  # type: ignore[assignment]
    pool.idle.append(server)
    cluster = Cluster(ClusterSettings("bench", "app", default_role="primary"), [[pool]])
    route = Route(0, "primary", "bench")
    cluster.fixed_route = route
    client = ClientSession(Ctx(route))  # type: ignore[arg-type]
    client.transport = NullTransport()  # type: ignore[assignment]
    client.cluster = cluster
    client.state = State.IDLE
    return client, server


async def main(n: int = 200_000) -> None:
    client, server = build()
    for _ in range(1000):  # warm-up
        client.data_received(QUERY)
        server.data_received(RESPONSE)
    assert client.server is None and client.state is State.IDLE, "did not release"
    started = time.perf_counter()
    for _ in range(n):
        client.data_received(QUERY)
        server.data_received(RESPONSE)
    elapsed = time.perf_counter() - started
    print(f"{elapsed / n * 1e6:.2f} us of Python per pooled transaction ({n} transactions)")


if __name__ == "__main__":
    asyncio.run(main())
