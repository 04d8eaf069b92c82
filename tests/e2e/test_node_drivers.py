"""Node.js drivers through transaction mode, many clients on 2 servers so they rotate.

node-postgres (`pg`) with named prepared statements (Parse once per client connection, then
only Bind/Execute) and postgres.js (prepared statements by default, pipelining, Flush,
`sql.begin`, `sql.batch`, a reserved connection). The drivers live in tests/clients/node at
the versions of its package-lock.json and are installed by scripts/install-node-clients; the
scripts that drive them check every answer themselves and exit non-zero on the first wrong one.
Without node/npm, or when the npm registry cannot be reached, these tests are skipped.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config

from .conftest import ProxyRunner

pytestmark = pytest.mark.timeout(420)

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "clients" / "node"
INSTALL = ROOT / "scripts" / "install-node-clients"
INSTALL_TIMEOUT_S = 300
SCRIPT_TIMEOUT_S = 180  # each script also has its own deadline (150 s) with a clear message
CLIENTS = 12
ROUNDS = 30
POOL_SIZE = 2


@pytest.fixture(scope="module")
def node_clients() -> Path:
    """tests/clients/node with its node_modules installed; skips without node/npm/registry."""
    try:
        done = subprocess.run([str(INSTALL)], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{INSTALL.name} took more than {INSTALL_TIMEOUT_S} s (npm registry?)")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        pytest.skip(f"{INSTALL.name} failed with {done.returncode}: {tail}")
    return NODE_DIR


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    """Transaction mode, pool_size 2, everything on the primary (the scripts write)."""
    text = proxy_config(pg_topology, port=free_port(), pool_mode="transaction",
                        pool_size=POOL_SIZE, extra_general={"connect_timeout": 30000},
                        extra_pool={"default_role": "primary"})
    return proxy_runner(text)


@pytest.fixture
def writes_table(pg_topology: Topology, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty table for the script's transactions, made on the primary, dropped after."""
    name = f"node_{request.node.name.removeprefix('test_')}"
    ident = sql.Identifier(name)
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, client int NOT NULL,"
                             " round int NOT NULL, note text)").format(ident))
    yield name
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))


def run_node(node_dir: Path, script: str, proxy: ProxyProcess, table: str) -> str:
    """Runs a driver script against the proxy; fails with its output and the proxy's log."""
    argv = ["node", script, f"--host={proxy.host}", f"--port={proxy.port}",
            f"--clients={CLIENTS}", f"--rounds={ROUNDS}", f"--table={table}"]
    try:
        done = subprocess.run(argv, cwd=node_dir, capture_output=True, text=True,
                              timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} still running after {SCRIPT_TIMEOUT_S} s\n"
                    f"--- stdout ---\n{exc.stdout!r}\n--- stderr ---\n{exc.stderr!r}\n"
                    f"--- proxy log ---\n{proxy.log_tail(60)}")
    report = (f"{script} exited with {done.returncode}\n--- stdout ---\n{done.stdout}"
              f"--- stderr ---\n{done.stderr}--- proxy log ---\n{proxy.log_tail(60)}")
    assert done.returncode == 0, report
    assert proxy.is_running(), report
    print(done.stdout)  # the OK line, shown with pytest -s / -rP
    return done.stdout


def server_backends(out: str) -> int:
    """How many server backends (pg_backend_pid) the script saw, from its OK line."""
    found = re.search(r"(\d+) server backends", out)
    assert found, out
    return int(found[1])


def test_pg_named_statements(node_clients: Path, proxy: ProxyProcess, writes_table: str) -> None:
    out = run_node(node_clients, "pg_named.js", proxy, writes_table)
    assert out.startswith(f"OK pg_named: {CLIENTS} clients x {ROUNDS} rounds"), out
    assert 1 <= server_backends(out) <= POOL_SIZE, out  # 12 clients shared 2 servers


def test_postgresjs(node_clients: Path, proxy: ProxyProcess, writes_table: str) -> None:
    out = run_node(node_clients, "postgresjs.mjs", proxy, writes_table)
    assert out.startswith(f"OK postgresjs: {CLIENTS} connections x {ROUNDS} rounds"), out
    assert 1 <= server_backends(out) <= POOL_SIZE, out
