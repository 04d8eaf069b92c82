"""The soak's pgcat-py and PostgreSQL: the proxy's config and process, its reloads, the
replica's crash, the soak's tables.

pgcat-py runs from this checkout (`python -m pgcat_py`) in front of the primary and the
replica: pool `app`, transaction mode, the parser with read/write splitting on, ban_time
10 s, pool idle_timeout 10 s. Each reload flips one value: a SIGHUP one
`client_stall_timeout` in [general] (the pools keep their connections), an admin RELOAD one
the pool's `idle_timeout` (the pool is rebuilt).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pgbench_bench import stop_pid, wait_until_ready
from soak_load import SCHEMA

from pgcat_py.localpg import Topology, free_port
from pgcat_py.localpg.commands import as_server_user, run_command

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
POOL = "app"
IDLE_TIMEOUT_MS = 10_000


# --- pgcat-py -----------------------------------------------------------------------------
@dataclass
class Proxy:
    topology: Topology
    pool_size: int
    workers: int  # worker_threads
    config: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    general_variant: int = 0  # flipped by each SIGHUP reload
    pool_variant: int = 0  # flipped by each admin RELOAD

    def config_text(self) -> str:
        servers = ", ".join(f'["{HOST}", {node.port}, "{role}"]' for node, role in
                            ((self.topology.primary, "primary"),
                             *((r, "replica") for r in self.topology.replicas)))
        return f"""\
[general]
host = "{HOST}"
port = {self.port}
admin_username = "admin"
admin_password = "admin"
worker_threads = {self.workers}
ban_time = 10
client_stall_timeout = {60_000 - 1_000 * self.general_variant}

[pools.{POOL}]
pool_mode = "transaction"
query_parser_enabled = true
query_parser_read_write_splitting = true
idle_timeout = {IDLE_TIMEOUT_MS + 1_000 * self.pool_variant}

[pools.{POOL}.users.0]
username = "app"
password = "app"
pool_size = {self.pool_size}

[pools.{POOL}.shards.0]
database = "app"
servers = [{servers}]
"""

    def start(self) -> None:
        self.config.write_text(self.config_text())
        log = self.config.with_suffix(".log")
        argv = [sys.executable, "-m", "pgcat_py", str(self.config), "--log-level", "warning"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        process = self.process
        wait_until_ready(self.port, lambda: True, log, exited=lambda: process.poll() is not None)

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def dsn(self, user: str = "app", password: str = "app", dbname: str = POOL) -> str:
        return (f"host={HOST} port={self.port} user={user} password={password} dbname={dbname} "
                "sslmode=disable connect_timeout=10")

    @property
    def admin_dsn(self) -> str:
        return self.dsn("admin", "admin", "pgbouncer")

    def reload(self, number: int, rebuild: bool) -> None:
        if rebuild:
            self.pool_variant ^= 1
            self.config.write_text(self.config_text())
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                conn.execute("RELOAD")
        else:
            self.general_variant ^= 1
            self.config.write_text(self.config_text())
            assert self.process is not None
            self.process.send_signal(signal.SIGHUP)


# --- the replica --------------------------------------------------------------------------
def kill_replica(topology: Topology) -> None:
    """An immediate stop: the postmaster and backends quit at once, like a crash."""
    node = topology.replicas[0]
    argv = [str(topology.pg_bin / "pg_ctl"), "-D", str(node.datadir), "-m", "immediate", "-w",
            "stop"]
    run_command(as_server_user(argv), what=f"killing {node.name}", log=node.log_file)


def prepare_database(topology: Topology) -> None:
    with psycopg.connect(topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(SCHEMA)
    topology.wait_for_replicas(timeout=60)
