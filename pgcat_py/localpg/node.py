"""One local PostgreSQL server: its address, its DSNs, and how to start, stop and query it.

A node's data dir is `BASE/<name>`, its log `BASE/log/<name>.log`, its unix socket in
`BASE/run`. Node-specific settings live in `node.conf`, included from postgresql.conf,
because pg_basebackup copies the primary's config files to a replica (environment.md §4).
Queries go through psql over the unix socket as the `postgres` superuser (trust), so this
module needs no driver: the demo runs without the test dependencies.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pgcat_py.localpg.commands import (
    LocalPgError,
    as_server_user,
    client_binary,
    run_command,
    write_server_file,
)

Role = Literal["primary", "replica"]
SUPERUSER = "postgres"
START_TIMEOUT_S = 120  # pg_ctl -t: crash recovery after an unclean stop can take a while


@dataclass(frozen=True)
class Node:
    """Where one server of a topology lives; all paths are absolute."""

    name: str  # "main_primary", "main_replica1", "shard1_primary", ...
    role: Role
    host: str
    port: int
    datadir: Path
    socket_dir: Path

    @property
    def cluster_name(self) -> str:
        """'main_replica1' -> 'main.replica1', the application_name in pg_stat_replication."""
        return self.name.replace("_", ".", 1)

    @property
    def log_file(self) -> Path:
        return self.datadir.parent / "log" / f"{self.name}.log"

    def dsn(self, user: str = "app", password: str = "app", dbname: str = "app") -> str:
        """A libpq URL over TCP; user and password URL-encoded (a space or '@' survives)."""
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        """key=value DSN for `postgres` over the unix socket (local trust, no password)."""
        parts = {"host": str(self.socket_dir), "port": str(self.port), "user": SUPERUSER}
        parts["dbname"] = dbname
        return " ".join(f"{key}={_conninfo_value(value)}" for key, value in parts.items())

    def node_conf(self) -> str:
        """The settings that differ between nodes built from the same config files."""
        return (
            f"port = {self.port}\n"
            f"unix_socket_directories = {_conf_string(str(self.socket_dir))}\n"
            f"cluster_name = {_conf_string(self.cluster_name)}\n"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "host": self.host,
            "port": self.port,
            "datadir": str(self.datadir),
            "socket_dir": str(self.socket_dir),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        role: Role = "replica" if data["role"] == "replica" else "primary"
        return cls(
            name=str(data["name"]),
            role=role,
            host=str(data["host"]),
            port=int(data["port"]),
            datadir=Path(data["datadir"]),
            socket_dir=Path(data["socket_dir"]),
        )


def write_node_conf(node: Node) -> None:
    write_server_file(node.datadir / "node.conf", node.node_conf())


def start_node(pg_bin: Path, node: Node) -> None:
    """pg_ctl start and wait until the server accepts connections."""
    argv = [str(pg_bin / "pg_ctl"), "-D", str(node.datadir), "-l", str(node.log_file)]
    argv += ["-w", "-t", str(START_TIMEOUT_S), "start"]
    run_command(as_server_user(argv), what=f"starting {node.name}", log=node.log_file)


def stop_node(pg_bin: Path, node: Node) -> None:
    """Fast shutdown (rolls back open transactions); does nothing if it is not running."""
    if not is_running(pg_bin, node):
        return
    argv = [str(pg_bin / "pg_ctl"), "-D", str(node.datadir), "-m", "fast", "-w"]
    argv += ["-t", str(START_TIMEOUT_S), "stop"]
    run_command(as_server_user(argv), what=f"stopping {node.name}", log=node.log_file)


def is_running(pg_bin: Path, node: Node) -> bool:
    """pg_ctl status exits 0 while the server runs (3: not running, 4: no data dir)."""
    if not (node.datadir / "PG_VERSION").exists():
        return False
    argv = as_server_user([str(pg_bin / "pg_ctl"), "-D", str(node.datadir), "status"])
    done = subprocess.run(argv, capture_output=True, check=False, start_new_session=True)
    return done.returncode == 0


def run_sql(pg_bin: Path, node: Node, sql: str, dbname: str = "postgres") -> str:
    """Run SQL (statements and psql meta-commands) as the superuser; unaligned output.

    The script goes through stdin, so psql sends each statement on its own: CREATE DATABASE
    cannot run inside the implicit transaction of a multi-statement query string.
    """
    argv = [client_binary(pg_bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    argv += ["-d", node.superuser_dsn(dbname), "-f", "-"]
    return run_command(argv, what=f"SQL on {node.name}", log=node.log_file, input_text=sql)


def query_value(pg_bin: Path, node: Node, sql: str, dbname: str = "postgres") -> str:
    """The single value a one-row, one-column query returns."""
    output = run_sql(pg_bin, node, sql, dbname).strip()
    if "\n" in output:
        raise LocalPgError(f"expected one value from {sql!r} on {node.name}, got {output!r}")
    return output


def _conf_string(value: str) -> str:
    """A postgresql.conf string literal: single quotes, embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _conninfo_value(value: str) -> str:
    """A libpq key=value value: quoted (backslash escapes) when it has spaces or quotes."""
    if value and not any(ch in value for ch in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
