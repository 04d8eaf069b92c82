"""Building a topology from nothing: initdb, config, roles and databases, replicas.

The steps are the verified ones of reference/environment.md §4. Primaries (the main one and
each shard) are independent clusters, so their initdb runs concurrently; replicas follow,
each a pg_basebackup of the main primary with its own replication slot. A failed step stops
every server this call started and raises with the tail of the relevant log.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pgcat_py.localpg.commands import (
    LocalPgError,
    as_server_user,
    check_traversable,
    find_pg_bin,
    give_to_server_user,
    run_command,
    write_server_file,
)
from pgcat_py.localpg.node import Node, Role, run_sql, start_node, stop_node, write_node_conf
from pgcat_py.localpg.roles import hba_conf, setup_sql
from pgcat_py.localpg.topology import Topology

HOST = "127.0.0.1"
REPLICATION_PASSWORD = "replicator"
PORT_ATTEMPTS = 3  # a free port can be taken by another process before the server binds it

# Appended to every primary's postgresql.conf (replicas copy it). Test ground only: no
# durability. pg_stat_statements lets routing tests count the queries each server ran.
# With synchronous_commit off, WAL reaches replicas when the WAL writer flushes it:
# a short wal_writer_delay keeps replication lag in tests at milliseconds.
SERVER_CONF = """
# --- pgcat_py.localpg ---
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = '128MB'
wal_level = 'replica'
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_keep_size = '256MB'
password_encryption = 'scram-sha-256'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
fsync = off
synchronous_commit = off
full_page_writes = off
wal_writer_delay = '10ms'
include_if_exists = 'node.conf'
"""


@dataclass(frozen=True)
class _Build:
    """What every node-building step needs to know."""

    pg_bin: Path
    host_auth: str
    fixed_ports: bool


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def create_topology(
    base: Path,
    *,
    replicas: int = 1,
    shards: int = 2,
    ports: list[int] | None = None,
    host_auth: str = "scram-sha-256",
) -> Topology:
    """Create and start a main primary with `replicas` replicas and `shards` shard primaries.

    `ports`, if given, are in `Topology.nodes()` order: primary, replicas, shards.
    """
    base = base.resolve()
    build = _Build(find_pg_bin(), host_auth, fixed_ports=ports is not None)
    planned = _plan_nodes(base, replicas, shards, ports)
    planned_primaries = [node for node in planned if node.role == "primary"]
    planned_replicas = [node for node in planned if node.role == "replica"]
    _prepare_base(base, planned)
    try:
        primaries = _in_parallel(lambda node: _make_primary(build, node), planned_primaries)
        main = primaries[0]
        made = _in_parallel(lambda node: _make_replica(build, main, node), planned_replicas)
    except BaseException:
        _stop_quietly(build.pg_bin, planned)
        raise
    topology = Topology(base, main, made, primaries[1:], build.pg_bin, host_auth)
    topology.save()
    return topology


def _plan_nodes(base: Path, replicas: int, shards: int, ports: list[int] | None) -> list[Node]:
    names = ["main_primary", *(f"main_replica{i}" for i in range(1, replicas + 1))]
    names += [f"shard{k}_primary" for k in range(1, shards + 1)]
    if ports is not None and len(ports) != len(names):
        raise ValueError(f"{len(names)} nodes ({', '.join(names)}) but {len(ports)} ports")
    chosen = list(ports) if ports is not None else free_ports(len(names))
    return [
        Node(name, _role_of(name), HOST, port, datadir=base / name, socket_dir=base / "run")
        for name, port in zip(names, chosen, strict=True)
    ]


def _role_of(name: str) -> Role:
    return "replica" if "_replica" in name else "primary"


def free_ports(count: int) -> list[int]:
    """`count` different free ports (the kernel may hand out the same one twice)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port()
        if port not in chosen:
            chosen.append(port)
    return chosen


def _prepare_base(base: Path, planned: Sequence[Node]) -> None:
    """Make base, run/ and log/ for the server user; clear half-made data dirs."""
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    check_traversable(base)
    for sub in (base / "run", base / "log"):
        sub.mkdir(exist_ok=True)
    give_to_server_user(base, base / "run", base / "log")
    for node in planned:
        if (node.datadir / "PG_VERSION").exists():
            raise LocalPgError(f"{node.datadir} already holds a cluster; load or remove it first")
        if node.datadir.exists():
            shutil.rmtree(node.datadir)  # a leftover of a failed run (environment.md §4)


def _make_primary(build: _Build, planned: Node) -> Node:
    argv = [str(build.pg_bin / "initdb"), "-D", str(planned.datadir), "-U", "postgres"]
    argv += ["-E", "UTF8", "--locale=C", "--no-sync", "--auth-local=trust"]
    argv += [f"--auth-host={build.host_auth}"]
    run_command(as_server_user(argv), what=f"initdb of {planned.name}")
    with (planned.datadir / "postgresql.conf").open("a") as conf:
        conf.write(SERVER_CONF)
    write_server_file(planned.datadir / "pg_hba.conf", hba_conf(build.host_auth))
    node = _start_on_a_free_port(build, planned)
    run_sql(build.pg_bin, node, setup_sql(REPLICATION_PASSWORD))
    return node


def _make_replica(build: _Build, primary: Node, planned: Node) -> Node:
    """pg_basebackup -R -C -S: streams the primary, writes primary_conninfo, makes a slot."""
    argv = ["env", f"PGPASSWORD={REPLICATION_PASSWORD}", str(build.pg_bin / "pg_basebackup")]
    argv += ["-h", primary.host, "-p", str(primary.port), "-U", "replicator"]
    argv += ["-D", str(planned.datadir), "-R", "-X", "stream", "-c", "fast"]
    argv += ["-C", "-S", planned.name, "--no-sync", "-w"]
    what = f"pg_basebackup for {planned.name}"
    run_command(as_server_user(argv), what=what, log=primary.log_file)
    return _start_on_a_free_port(build, planned)


def _start_on_a_free_port(build: _Build, planned: Node) -> Node:
    """Start; if another process took the port meanwhile, pick a new one (unless fixed)."""
    node = planned
    for attempt in range(1, PORT_ATTEMPTS + 1):
        write_node_conf(node)
        try:
            start_node(build.pg_bin, node)
            return node
        except LocalPgError as exc:
            port_taken = "Address already in use" in str(exc)
            if build.fixed_ports or not port_taken or attempt == PORT_ATTEMPTS:
                raise
            node = replace(node, port=free_port())
    raise AssertionError("unreachable")


def _in_parallel(make: Callable[[Node], Node], planned: Sequence[Node]) -> list[Node]:
    """Run `make` for every node at once; wait for all, then raise the first failure."""
    if not planned:
        return []
    with ThreadPoolExecutor(max_workers=len(planned)) as pool:
        futures = [pool.submit(make, node) for node in planned]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]


def _stop_quietly(pg_bin: Path, planned: Sequence[Node]) -> None:
    """Best-effort cleanup after a failure: the original error is the one to report.

    A node may have moved to another port, but pg_ctl finds it by its data dir.
    """
    for node in sorted(planned, key=lambda n: n.role != "replica"):
        with contextlib.suppress(LocalPgError):
            stop_node(pg_bin, node)
