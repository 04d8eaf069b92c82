"""A running set of local nodes: the main primary, its streaming replicas, shard primaries.

The topology is saved as `BASE/topology.json` when it is created, so a later process (the
demo's second run) can load it and start the same servers again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgcat_py.localpg.commands import LocalPgError, PgBinariesNotFound, find_pg_bin, log_tail
from pgcat_py.localpg.node import Node, is_running, query_value, start_node, stop_node

TOPOLOGY_FILE = "topology.json"
TOPOLOGY_FORMAT = 1
REPLAY_POLL_S = 0.02


@dataclass
class Topology:
    """Nodes under one base directory; `shards[k]` is the primary of shard k (own cluster)."""

    base: Path
    primary: Node
    replicas: list[Node]
    shards: list[Node]
    pg_bin: Path = field(default_factory=find_pg_bin)
    host_auth: str = "scram-sha-256"

    def nodes(self) -> list[Node]:
        """Every node: the main primary, its replicas, then the shard primaries."""
        return [self.primary, *self.replicas, *self.shards]

    def stop(self) -> None:
        """Fast shutdown, replicas first (a stopped primary would make them retry); idempotent."""
        errors: list[str] = []
        for node in [*self.replicas, self.primary, *self.shards]:
            try:
                stop_node(self.pg_bin, node)
            except LocalPgError as exc:
                errors.append(str(exc))
        if errors:
            raise LocalPgError("\n\n".join(errors))

    def start(self) -> None:
        """Start every node that is not running: primaries first, so replicas find them."""
        for node in [self.primary, *self.shards, *self.replicas]:
            if not is_running(self.pg_bin, node):
                start_node(self.pg_bin, node)

    def wait_for_replicas(self, timeout: float = 30) -> None:
        """Block until every replica has replayed everything written on the primary so far.

        The insert position, not pg_current_wal_lsn() (the write position): with
        synchronous_commit off a commit can sit in WAL buffers, behind the write position,
        until the WAL writer gets to it (every wal_writer_delay).
        """
        lsn = query_value(self.pg_bin, self.primary, "SELECT pg_current_wal_insert_lsn()")
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            check = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
            while query_value(self.pg_bin, replica, check) != "t":
                if time.monotonic() > deadline:
                    raise LocalPgError(
                        f"{replica.name} did not replay up to {lsn} within {timeout} s\n"
                        f"--- tail of {replica.log_file} ---\n{log_tail(replica.log_file)}"
                    )
                time.sleep(REPLAY_POLL_S)

    def save(self) -> Path:
        path = self.base / TOPOLOGY_FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TOPOLOGY_FORMAT,
            "base": str(self.base),
            "pg_bin": str(self.pg_bin),
            "host_auth": self.host_auth,
            "primary": self.primary.to_json(),
            "replicas": [node.to_json() for node in self.replicas],
            "shards": [node.to_json() for node in self.shards],
        }


def has_topology(base: Path) -> bool:
    return (base / TOPOLOGY_FILE).is_file()


def load_topology(base: Path) -> Topology:
    """The topology saved under `base`; its servers are not started by loading."""
    path = base / TOPOLOGY_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LocalPgError(f"cannot read {path}: {exc}") from exc
    if data.get("format") != TOPOLOGY_FORMAT:
        raise LocalPgError(f"{path}: unknown format {data.get('format')!r}")
    return Topology(
        base=Path(data["base"]),
        primary=Node.from_json(data["primary"]),
        replicas=[Node.from_json(item) for item in data["replicas"]],
        shards=[Node.from_json(item) for item in data["shards"]],
        pg_bin=_saved_or_found_pg_bin(str(data["pg_bin"])),
        host_auth=str(data["host_auth"]),
    )


def _saved_or_found_pg_bin(saved: str) -> Path:
    """Reuse the binaries that made the data dirs; a data dir only runs with its major."""
    if (Path(saved) / "pg_ctl").is_file():
        return Path(saved)
    found = find_pg_bin()
    if found.parent.name != Path(saved).parent.name:
        raise PgBinariesNotFound(f"the topology was made by {saved}, which is gone")
    return found
