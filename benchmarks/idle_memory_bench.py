"""Proxy memory per idle logged-in client: pgcat-py (one worker) and PgBouncer 1.18.

Run: .venv/bin/python benchmarks/idle_memory_bench.py [--clients 10000] [--auth md5]
                                                      [--no-query] [--targets ...] [--keep]

Builds a throwaway PostgreSQL primary under /tmp (pgcat_py.localpg) and puts in front of it
PgBouncer 1.18 (the pgbench_bench.py config: transaction mode, default_pool_size 20, with
auth_type md5 or scram-sha-256 and max_client_conn raised) and pgcat-py (transaction mode,
pool_size 20, worker_threads = 1, the user's auth_type likewise), one at a time. For each:
a warm-up (50 clients log in, SELECT 1, leave: the pool is open and every code path has run
once), then VmRSS of the proxy's process tree from /proc; then N clients log in (200 at a
time, from one asyncio process with raw sockets: benchmarks/pgwire_client.py), each runs one
SELECT 1 (unless --no-query: just logged in) and stays connected and idle; after a 2 s pause
VmRSS again. Per client = (after - before) / N, in bytes and KiB, also split into RssAnon
(the heap) and the rest. Then the clients leave and VmRSS is read once more: what the proxy
keeps after they have gone.

Raises this process's soft RLIMIT_NOFILE to the hard limit (the proxies inherit it; pgcat-py
raises its own from max_client_conn). Results are printed and written to
benchmarks/results/idle-memory-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from login_bench import raise_open_files, raising_open_files
from pgbench_bench import (
    DATABASE,
    HOST,
    POOL_SIZE,
    REPO,
    RESULTS_DIR,
    UNROUTED_POOL,
    BenchError,
    _exit_on_sigterm,
    ensure_pgbouncer,
    process_tree,
    scan_processes,
    start_pgbouncer,
    start_pgcat,
    stop_pid,
)
from pgwire_client import Client, Target, connect

from pgcat_py.compiled import relay_kind_of
from pgcat_py.localpg import (
    APP_PASSWORD,
    APP_USER,
    LocalPgError,
    Topology,
    create_topology,
    query_value,
)
from pgcat_py.localpg.commands import client_binary

TARGETS = ("pgcat-py", "pgbouncer")
BATCH = 200  # logins in flight at a time
WARMUP_CLIENTS = 50
SETTLE_S = 2.0
# pgcat-py parks a client that stayed idle through a sweep interval (frontend/parking.py),
# 1 000 per sweep: the measure waits until SHOW LISTS counts them all parked, this long at most.
PARKED_WAIT_S = 60.0
LOGIN_TIMEOUT_S = 60.0
KIB = 1024


@dataclass(frozen=True)
class Memory:
    """VmRSS and RssAnon of a process tree, in bytes."""

    rss: int
    anon: int

    @classmethod
    def of_tree(cls, pid: int) -> Memory:
        rss = anon = 0
        for proc in process_tree(scan_processes(), pid):
            fields = _status(proc.pid)
            rss += fields.get("VmRSS", 0)
            anon += fields.get("RssAnon", 0)
        return cls(rss, anon)


def _status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status, in bytes."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[name] = int(parts[0]) * KIB
    return out


@dataclass(frozen=True)
class Result:
    target: str
    clients: int
    connected: int
    failed: int
    first_error: str
    before: Memory
    after: Memory
    after_close: Memory
    login_s: float
    parked: int | None  # pgcat-py: clients parked when measured, and after how long
    parked_s: float | None

    @property
    def per_client(self) -> float:
        return (self.after.rss - self.before.rss) / max(self.connected, 1)

    @property
    def anon_per_client(self) -> float:
        return (self.after.anon - self.before.anon) / max(self.connected, 1)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "rss_per_client": self.per_client,
                "anon_per_client": self.anon_per_client}


@dataclass(frozen=True)
class Settings:
    clients: int
    auth: str
    query: bool
    targets: list[str]
    keep: bool
    compiled: bool = False


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10_000, help="idle clients (default 10000)")
    p.add_argument("--auth", choices=["md5", "scram-sha-256"], default="md5")
    p.add_argument("--query", action=argparse.BooleanOptionalAction, default=True,
                   help="each client runs SELECT 1 once before idling (default: yes)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"comma-separated, of {', '.join(TARGETS)}")
    p.add_argument("--keep", action="store_true", help="keep the /tmp base directory")
    p.add_argument("--compiled", action="store_true",
                   help="run pgcat-py with the relay compiled with mypyc (build/compiled)")
    args = p.parse_args(argv)
    targets = args.targets.split(",")
    if not set(targets) <= set(TARGETS):
        p.error(f"--targets takes any of {', '.join(TARGETS)}")
    return Settings(args.clients, args.auth, bool(args.query), targets, bool(args.keep),
                    bool(args.compiled))


# --- clients --------------------------------------------------------------------------------
async def _open(target: Target, count: int, query: bool, errors: list[str]) -> list[Client]:
    """`count` logged-in clients, BATCH logins in flight at a time."""
    slots = asyncio.Semaphore(BATCH)

    async def one() -> Client | None:
        async with slots:
            try:
                async with asyncio.timeout(LOGIN_TIMEOUT_S):
                    client = await connect(target)
                    if query:
                        await client.select_1()
                return client
            except Exception as exc:  # reported, not raised: the others still count
                errors.append(f"{type(exc).__name__}: {exc}")
                return None

    results = await asyncio.gather(*(one() for _ in range(count)))
    return [c for c in results if c is not None]


def parked_clients(psql: str, port: int) -> int:
    """pgcat-py's parked_clients (SHOW LISTS on its admin console)."""
    argv = [psql, "-h", HOST, "-p", str(port), "-U", "admin", "-XAt", "-c", "SHOW LISTS",
            "pgcat"]
    done = subprocess.run(argv, env={**os.environ, "PGPASSWORD": "admin"},
                          capture_output=True, text=True, check=True)
    lists = dict(line.split("|") for line in done.stdout.splitlines())
    return int(lists["parked_clients"])


async def _all_parked(psql: str, port: int, clients: int) -> tuple[int, float]:
    """Wait until `clients` are parked (or PARKED_WAIT_S); how many were, and when."""
    started = time.monotonic()
    while True:
        parked = parked_clients(psql, port)
        waited = time.monotonic() - started
        if parked >= clients or waited > PARKED_WAIT_S:
            return parked, waited
        await asyncio.sleep(0.5)


async def _measure(name: str, port: int, pid: int, settings: Settings,
                   psql: str | None) -> Result:
    target = Target(HOST, port, APP_USER, APP_PASSWORD, DATABASE)
    errors: list[str] = []
    for client in await _open(target, WARMUP_CLIENTS, True, errors):
        client.close()
    if errors:
        raise BenchError(f"warm-up against {name} failed: {errors[0]}")
    await asyncio.sleep(SETTLE_S)
    before = Memory.of_tree(pid)
    started = time.monotonic()
    clients = await _open(target, settings.clients, settings.query, errors)
    login_s = time.monotonic() - started
    parked, parked_s = await _all_parked(psql, port, len(clients)) if psql else (None, None)
    await asyncio.sleep(SETTLE_S)
    after = Memory.of_tree(pid)
    for client in clients:
        client.close()
    await asyncio.sleep(SETTLE_S)
    after_close = Memory.of_tree(pid)
    return Result(name, settings.clients, len(clients), len(errors),
                  errors[0] if errors else "", before, after, after_close, login_s, parked,
                  parked_s)


# --- targets --------------------------------------------------------------------------------
@dataclass
class Started:
    topology: Topology | None = None
    bouncer_pid: int | None = None
    pgcats: list[subprocess.Popen[bytes]] = field(default_factory=list)


def bouncer_userlist(topology: Topology, auth: str) -> str:
    """md5: the plain password (PgBouncer does md5 from it); SCRAM: the role's secret, so that
    PgBouncer does not compute a verifier per login."""
    if auth == "md5":
        return f'"{APP_USER}" "{APP_PASSWORD}"\n'
    secret = query_value(topology.pg_bin, topology.primary,
                         f"SELECT rolpassword FROM pg_authid WHERE rolname = '{APP_USER}'")
    return f'"{APP_USER}" "{secret}"\n'


def run_target(name: str, settings: Settings, topology: Topology, started: Started,
               bouncer_binary: str) -> Result:
    primary = topology.primary
    if name == "pgbouncer":
        extra = f"auth_type = {settings.auth}\nmax_client_conn = {settings.clients + 100}\n"
        port, pid, _ = start_pgbouncer(raising_open_files(bouncer_binary, topology.base),
                                       topology.base, primary.port,
                                       userlist=bouncer_userlist(topology, settings.auth),
                                       extra_ini=extra)
        started.bouncer_pid = pid
    else:
        general = f"worker_threads = 1\nmax_client_conn = {settings.clients + 100}\n"
        port, process, _ = start_pgcat(topology.base, name, UNROUTED_POOL,
                                       [(primary.port, "primary")], general=general,
                                       user=f'auth_type = "{settings.auth}"\n',
                                       compiled=settings.compiled)
        started.pgcats.append(process)
        pid = process.pid
        name = f"{name} ({relay_kind_of(pid)})"
    print(f"{name} on :{port} (pid {pid})", flush=True)
    try:
        psql = None if name == "pgbouncer" else client_binary(topology.pg_bin, "psql")
        return uvloop.run(_measure(name, port, pid, settings, psql))
    finally:
        if name == "pgbouncer":
            stop_pid(pid)
            started.bouncer_pid = None
        else:
            stop_pid(pid)


# --- report ---------------------------------------------------------------------------------
def print_result(r: Result) -> None:
    failed = f", {r.failed} failed ({r.first_error})" if r.failed else ""
    parked = "" if r.parked is None else f"; {r.parked} parked {r.parked_s:.1f} s later"
    print(f"{r.target}: {r.connected} idle clients in {r.login_s:.1f} s{failed}{parked}\n"
          f"  VmRSS {r.before.rss / KIB ** 2:.1f} -> {r.after.rss / KIB ** 2:.1f} MiB "
          f"(after they left: {r.after_close.rss / KIB ** 2:.1f} MiB); RssAnon "
          f"{r.before.anon / KIB ** 2:.1f} -> {r.after.anon / KIB ** 2:.1f} MiB\n"
          f"  per idle client: {r.per_client:,.0f} B = {r.per_client / KIB:.2f} KiB "
          f"(heap {r.anon_per_client:,.0f} B)", flush=True)


def write_results(results: list[Result], meta: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"idle-memory-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({**meta, "results": [r.to_json() for r in results]},
                               indent=2) + "\n")
    return path


def describe(settings: Settings, bouncer_binary: str, nofile: int) -> dict[str, object]:
    def output(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
        return (done.stdout.strip().splitlines() or [""])[0]

    return {"started": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": output(["git", "rev-parse", "HEAD"]),
            "git_dirty": bool(output(["git", "status", "--porcelain", "--", "pgcat_py"])),
            "pgbouncer": output([bouncer_binary, "--version"]),
            "python": sys.version.split()[0], "settings": asdict(settings),
            "rlimit_nofile": nofile, "pool_size": POOL_SIZE, "batch": BATCH}


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    nofile = raise_open_files(settings.clients + 200)
    bouncer_binary = ensure_pgbouncer()
    meta = describe(settings, bouncer_binary, nofile)
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-idle-"))
    base.chmod(0o755)  # the postgres OS user must reach its directories below
    started = Started()
    results = []
    try:
        started.topology = create_topology(base, replicas=0, shards=0)
        for name in settings.targets:
            result = run_target(name, settings, started.topology, started, bouncer_binary)
            print_result(result)
            results.append(result)
        print(f"\nresults: {write_results(results, meta)}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    except (BenchError, LocalPgError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for pgcat in started.pgcats:
            stop_pid(pgcat.pid)
            pgcat.wait()
        if started.bouncer_pid is not None:
            stop_pid(started.bouncer_pid)
        if started.topology is not None:
            started.topology.stop()
        if settings.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
