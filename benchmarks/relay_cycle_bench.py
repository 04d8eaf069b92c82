"""Python cost of one pooled transaction through the relay, with no sockets.

A client session and a server connection with in-memory transports run pgbench -S's
exchange (Query -> RowDescription, DataRow, CommandComplete, ReadyForQuery) in a loop:
checkout, relay both ways, release. What it prints is the proxy's own user-space work per
transaction, apart from the kernel and the event loop; run it before and after touching
the hot path (`.venv/bin/python benchmarks/relay_cycle_bench.py`). `--routed` runs the same
exchange through a pool with the parser and read/write splitting on, over a primary and a
replica, with a new literal in every query (as pgbench -S sends them), so each transaction
pays for the router (the lexer, the shape cache, the choice between two servers).
`--extended` sends pgbench -M extended's batch instead (Parse of the unnamed statement, Bind,
Describe, Execute, Sync; the server answers ParseComplete, BindComplete, RowDescription,
DataRow, CommandComplete, ReadyForQuery), the query text the same each time, as pgbench
sends it.
`--tpcb` runs pgbench's TPC-B-like transaction instead (BEGIN, three UPDATEs, a SELECT, an
INSERT and END, each a Query answered before the next is sent): six statements relayed while
the server stays linked to the client, one checkout and one release; unrouted only (a routed
pool would hold the BEGIN back and send it with the first UPDATE).
`--compiled` runs the relay compiled with mypyc (pgcat_py.compiled; it stops if the build does
not match the sources); the first line printed says which relay ran. `-n` sets the number of
transactions: with valgrind, the instructions of two runs with different `-n`, subtracted,
are the relay's per transaction without start-up (see README, Performance).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from pgcat_py.compiled import build_problem, relay_kind, use_compiled
from pgcat_py.protocol.frontend import Bind, Describe, Execute, Parse, Query, Sync
from pgcat_py.workers.layout import SINGLE

if TYPE_CHECKING:
    from pgcat_py.backend.server import ServerConnection
    from pgcat_py.conn import SocketOptions
    from pgcat_py.frontend.session import ClientSession
    from pgcat_py.stats import Stats

# The relay's modules are imported in the functions below, after --compiled chose the build.
QUERY = Query("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;").encode()
EXTENDED = (Parse("", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;").encode()
            + Bind("", "", params=(b"12345",)).encode() + Describe("P", "").encode()
            + Execute("").encode() + Sync().encode())


# pgbench's default script, one Query a statement, and the server's answer to each
TPCB_STEPS = (
    ("BEGIN;", "BEGIN", False),
    ("UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 12345;", "UPDATE 1",
     False),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", "SELECT 1", True),
    ("UPDATE pgbench_tellers SET tbalance = tbalance + -1234 WHERE tid = 7;", "UPDATE 1", False),
    ("UPDATE pgbench_branches SET bbalance = bbalance + -1234 WHERE bid = 1;", "UPDATE 1", False),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 12345, -1234, "
     "CURRENT_TIMESTAMP);", "INSERT 0 1", False),
    ("END;", "COMMIT", False),
)


def tpcb_exchange() -> list[tuple[bytes, bytes]]:
    """(Query, answer) per statement of one TPC-B transaction: ReadyForQuery 'T' inside it,
    'I' after END."""
    from pgcat_py.protocol import backend as be

    steps = []
    for index, (sql, tag, rows) in enumerate(TPCB_STEPS):
        answer = (be.RowDescription((be.Field("abalance", 23),)).encode()
                  + be.DataRow((b"0",)).encode()) if rows else b""
        status = "I" if index == len(TPCB_STEPS) - 1 else "T"
        answer += be.CommandComplete(tag).encode() + be.ReadyForQuery(status).encode()
        steps.append((Query(sql).encode(), answer))
    return steps


def response(extended: bool = False) -> bytes:
    from pgcat_py.protocol import backend as be

    before = be.Bare("1").encode() + be.Bare("2").encode() if extended else b""
    return before + (be.RowDescription((be.Field("abalance", 23),)).encode()
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
    worker = SINGLE

    def __init__(self, socket_options: SocketOptions, stats: Stats) -> None:
        self.socket_options, self.stats = socket_options, stats

    def client_connected(self, session: ClientSession) -> None:
        pass


def build(routed: bool) -> tuple[ClientSession, list[ServerConnection]]:
    from pgcat_py.backend.server import ServerConnection, ServerTarget
    from pgcat_py.conn import SocketOptions
    from pgcat_py.frontend.session import ClientSession
    from pgcat_py.frontend.states import State
    from pgcat_py.pool.cluster import Cluster, ClusterSettings
    from pgcat_py.pool.server_pool import PoolSettings, ServerPool
    from pgcat_py.router import Router, RouterSettings
    from pgcat_py.stats import Stats

    servers, pools = [], []
    for role in ("primary", "replica") if routed else ("primary",):
        target = ServerTarget("127.0.0.1", 5432, "bench", "app", "app", role)
        pool = ServerPool(target, PoolSettings(pool_size=1))
        server = ServerConnection(target)
        server.transport = NullTransport()  # type: ignore[assignment]
        pool.idle.append(server)
        servers.append(server)
        pools.append(pool)
    router = Router(RouterSettings(default_role="primary", query_parser_enabled=routed,
                                   read_write_splitting=routed, primary_reads_enabled=routed))
    cluster = Cluster(ClusterSettings("bench", "app", default_role="primary"), [pools], router)
    client = ClientSession(Ctx(SocketOptions(), Stats()))  # type: ignore[arg-type]
    client.transport = NullTransport()  # type: ignore[assignment]
    client.cluster = cluster
    client.routes_vary = router.varies
    client.holds_begins = cluster.has_choice
    client.state = State.IDLE
    return client, servers


def queries(routed: bool, n: int, extended: bool = False) -> list[bytes]:
    if extended:
        return [EXTENDED] * n
    if not routed:
        return [QUERY] * n
    return [Query(f"SELECT abalance FROM pgbench_accounts WHERE aid = {i % 100_000};").encode()
            for i in range(n)]


async def main(routed: bool, n: int = 200_000, extended: bool = False) -> None:
    from pgcat_py.frontend.states import State

    client, _servers = build(routed)
    work, answer = queries(routed, n, extended), response(extended)
    for query in work[:1000]:  # warm-up
        client.data_received(query)
        server = client.server
        assert server is not None
        server.data_received(answer)
    assert client.server is None and client.state is State.IDLE, "did not release"
    started = time.perf_counter()
    for query in work:
        client.data_received(query)
        client.server.data_received(answer)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    kind = ("routed" if routed else "unrouted") + (", extended" if extended else "")
    print(f"{elapsed / n * 1e6:.2f} us of Python per pooled transaction, {kind} ({n} transactions)")


async def main_tpcb(n: int) -> None:
    """--tpcb: n TPC-B transactions through an unrouted pool."""
    from pgcat_py.frontend.states import State

    client, _servers = build(routed=False)
    steps = tpcb_exchange()
    for _ in range(min(n, 1000)):  # warm-up
        run_tpcb(client, steps)
    assert client.server is None and client.state is State.IDLE, "did not release"
    started = time.perf_counter()
    for _ in range(n):
        run_tpcb(client, steps)
    elapsed = time.perf_counter() - started
    print(f"{elapsed / n * 1e6:.2f} us of Python per pooled TPC-B transaction "
          f"({len(steps)} statements), unrouted ({n} transactions)")


def run_tpcb(client: ClientSession, steps: list[tuple[bytes, bytes]]) -> None:
    for query, answer in steps:
        client.data_received(query)
        client.server.data_received(answer)  # type: ignore[union-attr]


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--routed", action="store_true", help="parser and read/write splitting on")
    cli.add_argument("--compiled", action="store_true", help="the relay compiled with mypyc")
    cli.add_argument("--extended", action="store_true", help="pgbench -M extended's batch")
    cli.add_argument("--tpcb", action="store_true", help="pgbench's TPC-B-like transaction")
    cli.add_argument("-n", type=int, default=200_000, help="transactions (default 200000)")
    args = cli.parse_args()
    if args.tpcb and (args.routed or args.extended):
        sys.exit("--tpcb runs unrouted, simple protocol only")
    if args.compiled and not use_compiled():
        sys.exit(f"--compiled: {build_problem()} (python -m pgcat_py.compiled_build)")
    print(f"relay: {relay_kind()}")
    asyncio.run(main_tpcb(args.n) if args.tpcb else main(args.routed, args.n, args.extended))
