"""Watching a fuzzed proxy: a bystander client, the admin console, the servers, the log.

`Observer` holds a bystander connection (user ``app``, which no corpus session uses) and an
admin console connection to one proxy process. `after_session` says what is wrong after a
fuzzed session (the proxy died, the session broke a protocol rule or hung, the bystander
got no answer, SHOW POOLS does not settle back to idle); `after_all` what is wrong once every
client left (clients or active servers left in SHOW POOLS, server backends stuck inside a
transaction, memory grown, tracebacks in the log). Both return problems as text, so the CI
test asserts on them and the long-run script records them and goes on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgcat_py.localpg import Topology
from tests.harness.proxy import ProxyProcess
from tests.harness.waiting import wait_for

from .replay import Outcome

SETTLE_S = 5.0
CONTROL_USER = "app"
RSS_GROWTH_LIMIT = 48 * 1024 * 1024
BAD_LOG_LINE = re.compile(r"Traceback|exception|Fatal error", re.IGNORECASE)
MB = 1024 * 1024
Row = dict[str, object]


def rss(pid: int) -> int:
    """The resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass
class Observer:
    proxy: ProxyProcess
    topology: Topology
    control: psycopg.Connection[tuple[object, ...]]
    admin: psycopg.Connection[tuple[object, ...]]
    sessions: int = 0
    warm_rss: int = 0  # the baseline, taken after a warm-up

    @classmethod
    def connect(cls, proxy: ProxyProcess, topology: Topology) -> Observer:
        base = f"host={proxy.host} port={proxy.port} sslmode=disable connect_timeout=10"
        control = psycopg.connect(f"{base} user={CONTROL_USER} password=app dbname=app",
                                  autocommit=True)
        # The admin console speaks the simple protocol only: no automatic prepare.
        admin = psycopg.connect(f"{base} user=admin password=admin dbname=pgbouncer",
                                autocommit=True, prepare_threshold=None)
        return cls(proxy, topology, control, admin)

    def close(self) -> None:
        self.control.close()
        self.admin.close()

    # --- SHOW ... ---------------------------------------------------------------------
    def show(self, command: str) -> list[Row]:
        cursor = self.admin.execute(command)
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def busy(self, control_clients: int) -> list[Row]:
        """Pools with an active server, an active or waiting client, or idle clients
        beyond the bystander."""
        busy = []
        for pool in self.show("SHOW POOLS"):
            idle_expected = control_clients if pool["user"] == CONTROL_USER else 0
            if (pool["sv_active"] or pool["cl_active"] or pool["cl_waiting"]
                    or pool["cl_idle"] != idle_expected):
                busy.append(pool)
        return busy

    def wait_for_startup(self, timeout: float = 60.0) -> None:
        """Until the proxy's own first questions to its servers (the write functions of
        the catalog, per pool: catalog.py) are answered: on a loaded machine they can
        hold a server longer than SETTLE_S, which the first session would be blamed for."""
        deadline, quiet_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:  # quiet for a second: every pool has asked
            if self.busy(control_clients=1):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 1.0:
                return
            time.sleep(0.05)
        raise AssertionError(f"the proxy never settled after starting: {self.busy(1)}")

    def settle(self, control_clients: int) -> list[Row]:
        """What is still busy after waiting up to SETTLE_S for nothing to be."""
        wait_for(lambda: not self.busy(control_clients), SETTLE_S)
        return self.busy(control_clients)

    def server_backends(self, states: tuple[str, ...] | None = None) -> list[str]:
        """Backends of database app on the primary and replicas (other than ours)."""
        out = []
        for node in (self.topology.primary, *self.topology.replicas):
            with psycopg.connect(node.superuser_dsn("app"), autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid, usename, state, left(query, 80) FROM pg_stat_activity "
                    "WHERE datname = 'app' AND pid <> pg_backend_pid() "
                    "AND (%s::text[] IS NULL OR state = ANY(%s::text[]))",
                    [states and list(states), states and list(states)]).fetchall()
            out += [f"{node.name}: {row}" for row in rows]
        return out

    def diagnosis(self) -> str:
        lines = ["SHOW SERVERS:", *map(str, self.show("SHOW SERVERS")),
                 "SHOW CLIENTS:", *map(str, self.show("SHOW CLIENTS")),
                 "pg_stat_activity:", *self.server_backends()]
        return "\n".join(lines)

    # --- verdicts ---------------------------------------------------------------------
    def after_session(self, case: object, outcome: Outcome) -> list[str]:
        self.sessions += 1
        if not self.proxy.is_running():
            return [f"proxy died after {case}\n{self.proxy.log_tail()}"]
        problems = list(outcome.problems)
        try:
            row = self.control.execute("SELECT 1").fetchone()
            if row != (1,):
                problems.append(f"bystander got {row}")
        except psycopg.Error as exc:
            problems.append(f"bystander failed: {exc!r}")
        busy = self.settle(control_clients=0 if self.control.closed else 1)
        if busy:
            problems.append(f"still busy {SETTLE_S} s later: {busy}\n{self.diagnosis()}")
        return problems

    def after_all(self) -> list[str]:
        """Close the bystander, then judge what is left."""
        problems = []
        now = rss(self.proxy.pid)
        self.control.close()
        busy = self.settle(control_clients=0)
        if busy:
            problems.append(f"clients or active servers left: {busy}\n{self.diagnosis()}")
        # A backend whose connection the proxy closed mid-query runs until it next writes.
        states = ("active", "idle in transaction", "idle in transaction (aborted)")
        wait_for(lambda: not self.server_backends(states), SETTLE_S)
        stuck = self.server_backends(states)
        if stuck:
            problems.append(f"server backends inside a transaction: {stuck}")
        if self.warm_rss and now - self.warm_rss > RSS_GROWTH_LIMIT:
            problems.append(f"proxy RSS grew {(now - self.warm_rss) // MB} MB after warm-up "
                            f"({self.warm_rss // MB} -> {now // MB} MB)")
        bad = [line for line in self.proxy.log_text().splitlines() if BAD_LOG_LINE.search(line)]
        if bad:
            problems.append("proxy log:\n" + "\n".join(bad[:40]))
        return problems
