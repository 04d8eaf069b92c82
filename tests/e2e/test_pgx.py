"""pgx v4 (Go) through transaction mode, 12 connections on pool_size 2 so servers rotate.

pgx v4 is the driver of Permify and many Go services. Its two statement cache modes, read
from the connection string: `prepare` (its default: a named statement per query, Parsed
once per client connection, then only Bind/Execute) and `describe` (Permify's guide for
poolers: the unnamed statement, Parse/Describe then Parse/Bind/Execute). Each connection runs
parameterised queries of several result types, a multi-row query, a write in an explicit
transaction and a pipelined batch (SendBatch: Bind/Execute for four queries, one Sync).
pgx also sends conn-string keys it does not know as startup parameters: a client's
`plan_cache_mode=force_custom_plan` must be in force on every server it lands on.

The client is tests/clients/go/pgxclient, built by scripts/install-go-clients from Debian's
golang-go and golang-github-jackc-pgx-v4-dev (no Go module download); it checks every answer
itself and exits non-zero on the first wrong one. Without apt or those packages: skipped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, TomlValue, proxy_config

from .conftest import ProxyRunner

pytestmark = pytest.mark.timeout(420)

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install-go-clients"
CLIENT = ROOT / "tests" / "clients" / "go" / "bin" / "pgxclient"
INSTALL_TIMEOUT_S = 600
CLIENT_DEADLINE_S = 150  # the client's own -timeout, with a clear message
RUN_TIMEOUT_S = CLIENT_DEADLINE_S + 30
CONNS = 12
ROUNDS = 30
POOL_SIZE = 2
WRITES_PER_ROUND = 2  # one INSERT in a transaction, one in the batch

PRIMARY_ONLY: Mapping[str, TomlValue] = {"default_role": "primary"}
# reads on the replica or the primary, writes and transactions on the primary
ROUTED: Mapping[str, TomlValue] = {"query_parser_enabled": True,
                                   "query_parser_read_write_splitting": True}
# the proxy keeps 3 of pgx's 7 named statements per server: they are evicted and re-prepared
EVICTING: Mapping[str, TomlValue] = {**PRIMARY_ONLY, "prepared_statements_cache_size": 3}
ROUTINGS = {"primary": PRIMARY_ONLY, "routed": ROUTED, "evicting": EVICTING}


@pytest.fixture(scope="module")
def pgxclient() -> Path:
    """The built client; skips when the packages cannot be installed (no apt, no network)."""
    try:
        done = subprocess.run([str(INSTALL)], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{INSTALL.name} took more than {INSTALL_TIMEOUT_S} s (apt mirror?)")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        pytest.skip(f"{INSTALL.name} failed with {done.returncode}: {tail}")
    assert CLIENT.is_file(), f"{INSTALL.name} succeeded but left no {CLIENT}"
    return CLIENT


def start(pg_topology: Topology, proxy_runner: ProxyRunner, routing: str) -> ProxyProcess:
    text = proxy_config(pg_topology, port=free_port(), pool_mode="transaction",
                        pool_size=POOL_SIZE, extra_general={"connect_timeout": 30000},
                        extra_pool=ROUTINGS[routing])
    return proxy_runner(text)


@pytest.fixture
def writes_table(pg_topology: Topology, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty table for the client's writes, made on the primary, dropped afterwards."""
    test = request.node.name.removeprefix("test_pgx_")
    name = "pgx_" + "".join(c if c.isalnum() else "_" for c in test)[:50]
    ident = sql.Identifier(name)
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, client int NOT NULL,"
                             " round int NOT NULL, source text NOT NULL,"
                             " plan_cache_mode text NOT NULL)").format(ident))
    yield name
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))


def pgx_url(proxy: ProxyProcess, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in
                     {"sslmode": "disable", "connect_timeout": "10", **params}.items())
    return f"postgres://app:app@{proxy.host}:{proxy.port}/app?{query}"


def run_pgx(client: Path, proxy: ProxyProcess, url: str, table: str,
            plan_cache_mode: str) -> dict[str, Any]:
    """Runs the client; fails with its output and the proxy's log; its JSON summary."""
    argv = [str(client), "-dsn", url, "-conns", str(CONNS), "-rounds", str(ROUNDS),
            "-table", table, "-plan-cache-mode", plan_cache_mode,
            "-timeout", f"{CLIENT_DEADLINE_S}s"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"pgxclient still running after {RUN_TIMEOUT_S} s\n"
                    f"--- stdout ---\n{exc.stdout!r}\n--- stderr ---\n{exc.stderr!r}\n"
                    f"--- proxy log ---\n{proxy.log_tail(60)}")
    report = (f"pgxclient {url} exited with {done.returncode}\n--- stdout ---\n{done.stdout}"
              f"--- stderr ---\n{done.stderr}--- proxy log ---\n{proxy.log_tail(60)}")
    assert done.returncode == 0, report
    assert proxy.is_running(), report
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"pgxclient: {summary}")
    assert summary["conns"] == CONNS and summary["rounds"] == ROUNDS, report
    assert summary["inserts"] == CONNS * ROUNDS * WRITES_PER_ROUND, report
    return summary


def check_writes(pg_topology: Topology, table: str, plan_cache_mode: str) -> None:
    """Every write committed once, on the primary, with the client's plan_cache_mode."""
    query = sql.SQL("SELECT source, plan_cache_mode, count(*), count(DISTINCT (client, round))"
                    " FROM {} GROUP BY 1, 2 ORDER BY 1, 2").format(sql.Identifier(table))
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        rows = conn.execute(query).fetchall()
    writes = CONNS * ROUNDS
    assert rows == [("batch", plan_cache_mode, writes, writes),
                    ("tx", plan_cache_mode, writes, writes)]


@pytest.mark.parametrize("routing", list(ROUTINGS))
@pytest.mark.parametrize("cache_mode", ["prepare", "describe"])
def test_pgx_statement_cache_modes(pgxclient: Path, pg_topology: Topology,
                                   proxy_runner: ProxyRunner, writes_table: str,
                                   cache_mode: str, routing: str) -> None:
    proxy = start(pg_topology, proxy_runner, routing)
    url = pgx_url(proxy, statement_cache_mode=cache_mode)
    summary = run_pgx(pgxclient, proxy, url, writes_table, plan_cache_mode="auto")
    servers = 1 + len(pg_topology.replicas) if routing == "routed" else 1
    # 12 clients shared at most pool_size servers per node, and they did move between them
    assert len(summary["backend_pids"]) <= POOL_SIZE * servers, summary
    assert summary["clients_moved"] >= 1, summary
    check_writes(pg_topology, writes_table, "auto")


@pytest.mark.parametrize("cache_mode", ["prepare", "describe"])
def test_pgx_plan_cache_mode_startup_parameter(pgxclient: Path, pg_topology: Topology,
                                               proxy_runner: ProxyRunner, writes_table: str,
                                               cache_mode: str) -> None:
    """pgx sends plan_cache_mode as a startup parameter; every query, read on the replica or
    on the primary, in a transaction or a batch, reports it."""
    proxy = start(pg_topology, proxy_runner, "routed")
    url = pgx_url(proxy, statement_cache_mode=cache_mode, plan_cache_mode="force_custom_plan")
    summary = run_pgx(pgxclient, proxy, url, writes_table, plan_cache_mode="force_custom_plan")
    assert summary["clients_moved"] >= 1, summary
    check_writes(pg_topology, writes_table, "force_custom_plan")
