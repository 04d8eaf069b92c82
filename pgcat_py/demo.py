"""`pgcat-py demo`: a local topology served by the proxy, the README's first command.

Creates (or, on a later run, restarts) a main primary with one streaming replica and two
shard primaries under `base`, loads pgbench's tables into `bench`, makes a `data` table on
each shard that PostgreSQL itself partitions by hash (so a row on the wrong shard would be
refused), writes `base/pgcat.toml` with read/write splitting and automatic sharding on,
prints how to connect and three lines that show routing, and runs the proxy on it.
However the proxy ends (Ctrl-C, SIGTERM, an exception), every PostgreSQL server started
here is stopped again.
"""

from __future__ import annotations

import importlib
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pgcat_py.localpg import (
    APP_PASSWORD,
    APP_USER,
    Topology,
    create_topology,
    find_pg_bin,
    free_port,
    has_topology,
    load_topology,
    port_is_free,
)
from pgcat_py.localpg.commands import client_binary, run_command
from pgcat_py.localpg.node import run_sql
from sharding import pg_bigint_hash

# primary, replica, shard 1, shard 2: the layout of reference/environment.md §4
DEMO_PORTS = (15432, 15433, 15442, 15452)
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
ADMIN_DATABASE = "pgcat"
DEMO_KEY = 7  # the sharding key of the demo's third routing line (not on the default shard)
EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_SIGINT = 128 + signal.SIGINT


def run_demo(
    base: Path = Path("demo-data"), port: int = 6432, *, server_ports: list[int] | None = None
) -> int:
    """Serve a demo topology through the proxy until it stops; return its exit code.

    `server_ports` (primary, replica, shard 1, shard 2) replace DEMO_PORTS for a new topology.
    """
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    topology: Topology | None = None
    try:
        topology = open_topology(base.resolve(), server_ports)
        _load_pgbench_tables(topology)
        _create_demo_tables(topology)
        config_path = topology.base / "pgcat.toml"
        config_path.write_text(build_demo_config(topology, port))
        print(connection_help(topology, port, config_path), flush=True)
        return _proxy_runner()(config_path)
    except KeyboardInterrupt:
        return EXIT_SIGINT
    finally:
        if topology is not None:
            topology.stop()
        signal.signal(signal.SIGTERM, previous)


def open_topology(base: Path, server_ports: list[int] | None = None) -> Topology:
    """Restart the topology saved under `base`, or create one there."""
    if has_topology(base):
        topology = load_topology(base)
        topology.start()
        return topology
    _remove_leftovers(base)
    return create_topology(base, replicas=1, shards=2, ports=server_ports or _demo_ports())


def build_demo_config(topology: Topology, port: int) -> str:
    """pgcat.toml for the demo: pools `app` and `bench` (primary + replica) and `sharded`."""
    general = f"""\
# Written by `pgcat-py demo`; rewritten on every run.
[general]
host = "127.0.0.1"
port = {port}
admin_username = "{ADMIN_USER}"
admin_password = "{ADMIN_PASSWORD}"
"""
    pools = [_replicated_pool(topology, "app"), _replicated_pool(topology, "bench")]
    return "\n".join([general, *pools, _sharded_pool(topology)])


def connection_help(topology: Topology, port: int, config_path: Path) -> str:
    proxy = f"127.0.0.1:{port}"
    servers = ", ".join(f"{node.name} :{node.port}" for node in topology.nodes())
    return f"""\
pgcat-py demo: PostgreSQL is running ({servers}); data in {topology.base}
Connect through the proxy on {proxy}:
  psql postgresql://{APP_USER}:{APP_PASSWORD}@{proxy}/app
  psql postgresql://{APP_USER}:{APP_PASSWORD}@{proxy}/sharded
  PGPASSWORD={APP_PASSWORD} pgbench -h 127.0.0.1 -p {port} -U {APP_USER} -S -T 10 bench
{routing_help(topology, port)}
Admin console:
  psql postgresql://{ADMIN_USER}:{ADMIN_PASSWORD}@{proxy}/{ADMIN_DATABASE} -c 'SHOW POOLS'
  psql postgresql://{ADMIN_USER}:{ADMIN_PASSWORD}@{proxy}/{ADMIN_DATABASE} -c 'SHOW ROUTES'
Config: {config_path}. Ctrl-C stops the proxy and the PostgreSQL servers."""


def routing_help(topology: Topology, port: int, key: int = DEMO_KEY) -> str:
    """Three lines to paste: a read on the replica, a write on the primary, a key on its
    shard; each prints the port of the server that answered."""
    url = f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}"
    replica = topology.replicas[0].port if topology.replicas else topology.primary.port
    shard = pg_bigint_hash(key, len(topology.shards))
    lines = [
        "Routing (each line prints the port of the server that answered):",
        f"  # a read goes to the replica ({replica}):",
        f"  psql {url}/app -Atc 'SELECT inet_server_port()'",
        f"  # a write goes to the primary ({topology.primary.port}):",
        f"  psql {url}/app -Atc 'INSERT INTO demo_writes DEFAULT VALUES"
        " RETURNING inet_server_port()'",
        f"  # sharding key {key} lands on shard {shard} ({topology.shards[shard].port}):",
        f"  psql {url}/sharded -Atc 'INSERT INTO data (id) VALUES ({key})"
        " RETURNING inet_server_port()'",
    ]
    return "\n".join(lines)


def _replicated_pool(topology: Topology, database: str) -> str:
    """A pool over the main primary and its replica: reads to the replica, the rest (and
    whatever the parser cannot vouch for) to the primary."""
    servers = [(topology.primary.port, "primary")]
    servers += [(replica.port, "replica") for replica in topology.replicas]
    return f"""\
[pools.{database}]
pool_mode = "transaction"
default_role = "primary"
query_parser_enabled = true
query_parser_read_write_splitting = true
primary_reads_enabled = false

[pools.{database}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = 10

[pools.{database}.shards.0]
database = "{database}"
servers = {_servers(servers)}
"""


def _sharded_pool(topology: Topology) -> str:
    shards = "\n".join(
        f'[pools.sharded.shards.{index}]\ndatabase = "app"\n'
        f"servers = {_servers([(shard.port, 'primary')])}\n"
        for index, shard in enumerate(topology.shards)
    )
    return f"""\
[pools.sharded]
pool_mode = "transaction"
default_role = "primary"
query_parser_enabled = true
query_parser_read_write_splitting = true
sharding_function = "pg_bigint_hash"
automatic_sharding_key = "data.id"

[pools.sharded.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = 10

{shards}"""


def _servers(entries: list[tuple[int, str]]) -> str:
    return "[" + ", ".join(f'["127.0.0.1", {port}, "{role}"]' for port, role in entries) + "]"


def _demo_ports() -> list[int]:
    """The documented ports where they are free; any free port where one is taken."""
    chosen: list[int] = []
    for wanted in DEMO_PORTS:
        port = wanted if port_is_free(wanted) else free_port()
        while port in chosen:
            port = free_port()
        chosen.append(port)
    return chosen


def _remove_leftovers(base: Path) -> None:
    """Drop what a failed first run left behind: our node dirs, sockets and logs only."""
    if not base.is_dir():
        return
    for path in base.iterdir():
        if path.is_dir() and (path.name in ("run", "log") or _is_node_dir_name(path.name)):
            shutil.rmtree(path)


def _is_node_dir_name(name: str) -> bool:
    return name.endswith("_primary") or "_replica" in name


def _load_pgbench_tables(topology: Topology) -> None:
    """pgbench -i -s 1 on `bench` through the primary, then let the replica catch up."""
    pgbench = client_binary(find_pg_bin(), "pgbench")
    argv = [pgbench, "-i", "-q", "-s", "1", topology.primary.dsn(dbname="bench")]
    run_command(argv, what="pgbench -i on bench", log=topology.primary.log_file)
    topology.wait_for_replicas()


def _create_demo_tables(topology: Topology) -> None:
    """demo_writes on the main primary; on each shard a `data` table partitioned like
    pgcat-py's pg_bigint_hash, holding only that shard's partition."""
    pg_bin = find_pg_bin()
    run_sql(pg_bin, topology.primary, f"""
CREATE TABLE IF NOT EXISTS demo_writes (id serial PRIMARY KEY, at timestamptz DEFAULT now());
ALTER TABLE demo_writes OWNER TO {APP_USER};
""", dbname="app")
    count = len(topology.shards)
    for index, shard in enumerate(topology.shards):
        run_sql(pg_bin, shard, f"""
CREATE TABLE IF NOT EXISTS data (id bigint NOT NULL, value text) PARTITION BY HASH (id);
CREATE TABLE IF NOT EXISTS data_{index} PARTITION OF data
    FOR VALUES WITH (MODULUS {count}, REMAINDER {index});
ALTER TABLE data OWNER TO {APP_USER};
ALTER TABLE data_{index} OWNER TO {APP_USER};
""", dbname="app")
    topology.wait_for_replicas()


def _proxy_runner() -> Callable[[Path], int]:
    """pgcat_py.app.run, imported only when needed (the demo module imports without it)."""
    run: Callable[[Path], int] = importlib.import_module("pgcat_py.app").run
    return run


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM before the proxy takes over its own signals: unwind so servers get stopped."""
    raise SystemExit(EXIT_SIGTERM)


if __name__ == "__main__":
    sys.exit(run_demo())
