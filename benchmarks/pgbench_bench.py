"""pgbench -S direct, through PgBouncer and through pgcat-py: TPS, latency, proxy CPU per xact.

Run: .venv/bin/python benchmarks/pgbench_bench.py [--quick] [--duration S] [--rounds N]
                                                  [--clients 16,64]
                                                  [--protocols simple,extended,prepared]
                                                  [--no-routed] [--compiled] [--tpcb]
                                                  [--workers N] [--one-worker]
                                                  [--reuse lifo|fifo] [--keep]

--tpcb runs pgbench's default TPC-B-like script (five statements in BEGIN ... END) instead of
-S; --clients 1 gives the latency a proxy adds to one client's transactions.

Builds a throwaway PostgreSQL primary and a streaming replica under /tmp (pgcat_py.localpg),
made plain (no shared_preload_libraries: the topology's pg_stat_statements would slow the
server and so flatter the proxies' ratios), loads pgbench scale 10 into `bench`, and puts
PgBouncer (transaction mode, pool 20, scram to the client) and pgcat-py (transaction mode,
pool_size 20, parser off) in front of the primary on free ports. A second pgcat-py, "routed",
has the parser and read/write splitting on with primary reads enabled and both servers in its
shard, so every `-S` read is parsed and load-balanced between primary and replica; each run
records which share of PostgreSQL's CPU time the replica took, to show the split happened. A
third, "parsed", has the routed pool's keys in front of the primary alone: PgBouncer's server
and pool size with every query parsed and classified, so parsed/PgBouncer is the cost of
read/write splitting apart from what a second PostgreSQL on the same cores does to the routed
figures. `--no-routed` leaves out the replica, the routed and the parsed proxies. Installs the
Debian `pgbouncer` package first if it is missing (root only). The method is
reference/environment.md §7: a cell is one (protocol, clients) pair, the protocol being pgbench
-M simple, extended or prepared; each round runs every cell once per target with the target
order rotated per round; TPS is the median over rounds, latency the mean, and a proxy's CPU per
transaction is its utime + stime from /proc/PID/stat over one pgbench run divided by the
transactions it processed. pgbench, PostgreSQL and the proxy share this machine's cores, so
other work on the machine shows up in every number: each run also records how busy the CPUs
were and roughly how much of that was other work (/proc/stat busy time minus the CPU time of
PostgreSQL, the proxies, pgbench, this script and kernel threads), so a disturbed run shows.
Each cell also splits the machine's CPU per transaction by who spent it (the proxy, PostgreSQL,
pgbench, the rest, idle) and says, from PgBouncer's runs, how much proxy CPU per transaction
1.0x and 1.2x PgBouncer's TPS would leave a proxy here (cpu_budget.py): on cores shared with
pgbench and PostgreSQL, a TPS target can be out of any proxy's reach.

PgBouncer 1.18 skips the prepared cells: in transaction mode a client's prepared statements
stay on the server connection it prepared them on, so pgbench -M prepared fails there
("prepared statement P_0 does not exist"); its column reads n/a, as do the ratios against it.
pgcat-py maps client statement names to shared server-side ones, so the pgcat-py targets run
them, and each prepared cell also reports pgcat-py's TPS over its own TPS in the extended cell
with as many clients: preparing once should beat parsing in every transaction. (`-S`, one
statement per transaction, is what lets -M prepared run with fewer threads than clients
through a transaction pooler: see pgbench().)

`--compiled` runs both pgcat-py with the relay compiled with mypyc (pgcat-py --compiled; see
pgcat_py.compiled) and stops if that build does not match the sources. Which relay each
pgcat-py runs is printed at the start and recorded in the results, read from the process's
mapped libraries.

Results are printed per cell and written to benchmarks/results/pgbench-<timestamp>.json.
`--one-worker` adds pgcat-py and the parsed pgcat-py with worker_threads = 1 to the same
rounds (the others run pgcat-py's default, or `--workers`): on a machine whose cores pgbench and
PostgreSQL share, whether a second worker pays for its cost per transaction is measured, not
assumed.

`--reuse` sets the order in which both proxies hand out idle server connections, the same
for both: lifo (the default; PgBouncer's own default, server_round_robin = 0, and pgcat-py
with server_round_robin = false) or fifo (server_round_robin on in both; pgcat's code default,
which pgcat-py follows). FIFO spreads transactions over every pooled connection, so each
wakes a PostgreSQL backend that has been idle longest: at one client that alone adds tens of
microseconds, whichever proxy does it. (Before this option pgcat-py ran FIFO and PgBouncer
LIFO.)

Everything started here is stopped on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from cpu_budget import BUDGET_HEAD, Budget, budget_text, measured, median, reference_text

from pgcat_py.compiled import COMPILED_KIND, build_problem, relay_kind_of
from pgcat_py.localpg import (
    APP_PASSWORD,
    APP_USER,
    LocalPgError,
    Topology,
    create_topology,
    free_port,
    query_value,
)
from pgcat_py.localpg.commands import (
    as_server_user,
    client_binary,
    give_to_server_user,
    log_tail,
    run_command,
    write_server_file,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
HOST = "127.0.0.1"
DATABASE = "bench"
SCALE = 10
POOL_SIZE = 20
PGBENCH_THREADS = 2
PARSED = "pgcat-py-parsed"
ROUTED = "pgcat-py-routed"
ONE_WORKER = "pgcat-py-1w"  # --one-worker: pgcat-py and parsed with worker_threads = 1
PARSED_ONE_WORKER = "pgcat-py-parsed-1w"
TARGETS = ("direct", "pgbouncer", "pgcat-py", PARSED, ROUTED, ONE_WORKER, PARSED_ONE_WORKER)
PROTOCOLS = ("simple", "extended", "prepared")  # pgbench -M
# (target, protocol) pairs that are not run, and why. PgBouncer 1.18 in transaction mode leaves
# a client's prepared statements on the server connection that prepared them, so the next
# transaction fails with "prepared statement P_0 does not exist".
NOT_RUN = {("pgbouncer", "prepared"): "1.18 cannot run -M prepared in transaction mode"}
WARMUP_CLIENTS = 8
START_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
KTHREADD = 2  # parent of the kernel's threads (softirq work for our loopback traffic)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and shows its output."""


@dataclass(frozen=True)
class Cell:
    protocol: str  # pgbench -M: one of PROTOCOLS
    clients: int

    def __str__(self) -> str:
        return f"-M {self.protocol}, {self.clients} clients"

    def not_run(self, target: str) -> str | None:
        """Why `target` skips this cell (None: it runs it)."""
        return NOT_RUN.get((target, self.protocol))


@dataclass(frozen=True)
class Run:
    """One recorded pgbench run against one target."""

    round: int
    position: int  # place of the target in this round's order (0 = first)
    protocol: str
    clients: int
    target: str
    tps: float
    latency_ms: float
    transactions: int
    failed: int
    load1: float  # 1-minute load average just before the run (our own processes included)
    busy_pct: float  # CPU used on the machine during the run, % of all CPUs
    others_cpu_pct: float  # the part of it other work took (about)
    cpu_user_us: float | None  # proxy CPU per transaction (None for direct)
    cpu_sys_us: float | None
    replica_cpu_pct: float | None  # the replica's part of PostgreSQL's CPU time (no replica: None)
    budget: Budget | None = None  # the machine's CPU per transaction, by who spent it


@dataclass(frozen=True)
class Settings:
    duration: int
    rounds: int
    clients: list[int]
    protocols: list[str]
    warmup: int
    keep: bool
    routed: bool  # measure the routed pgcat-py too (and build the replica it needs)
    compiled: bool = False  # pgcat-py with the relay compiled with mypyc
    tpcb: bool = False  # pgbench's default TPC-B-like script instead of -S
    workers: int | None = None  # pgcat-py's worker_threads (None: its default)
    reuse: str = "lifo"  # both proxies' order of idle server connections: lifo or fifo
    one_worker: bool = False  # also pgcat-py (and parsed) with worker_threads = 1

    @property
    def script(self) -> list[str]:
        """pgbench's script option: -S (select-only), or none (its TPC-B-like default)."""
        return [] if self.tpcb else ["-S"]


# --- command line ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 1 round, 5 s cells, 16 clients, simple protocol only")
    p.add_argument("--duration", type=int, help="seconds per pgbench run (default 15)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 2)")
    p.add_argument("--clients", help="comma-separated client counts (default 16,64)")
    p.add_argument("--protocols",
                   help="comma-separated pgbench -M modes (default simple,extended,prepared; "
                        "PgBouncer skips prepared)")
    p.add_argument("--routed", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure pgcat-py with read/write splitting over primary + replica "
                        "and over the primary alone (default: yes)")
    p.add_argument("--compiled", action="store_true",
                   help="run pgcat-py with the relay compiled with mypyc (build/compiled)")
    p.add_argument("--tpcb", action="store_true",
                   help="pgbench's default TPC-B-like script (BEGIN, three UPDATEs, a SELECT, "
                        "an INSERT, END) instead of -S")
    p.add_argument("--workers", type=int,
                   help="pgcat-py's worker_threads (default: pgcat-py's own default)")
    p.add_argument("--reuse", choices=("lifo", "fifo"), default="lifo",
                   help="the order both proxies reuse idle server connections in (default "
                        "lifo, PgBouncer's default)")
    p.add_argument("--one-worker", action="store_true",
                   help="also run pgcat-py (and the parsed one) with worker_threads = 1, in "
                        "the same rounds")
    p.add_argument("--keep", action="store_true", help="keep the /tmp base directory")
    args = p.parse_args(argv)
    quick = bool(args.quick)
    protocols = (args.protocols or ("simple" if quick else ",".join(PROTOCOLS))).split(",")
    if not set(protocols) <= set(PROTOCOLS):
        p.error(f"--protocols takes any of {', '.join(PROTOCOLS)}")
    return Settings(
        duration=args.duration or (5 if quick else 15),
        rounds=args.rounds or (1 if quick else 2),
        clients=[int(c) for c in (args.clients or ("16" if quick else "16,64")).split(",")],
        protocols=protocols,
        warmup=2 if quick else 5,
        keep=bool(args.keep),
        routed=bool(args.routed),
        compiled=bool(args.compiled),
        tpcb=bool(args.tpcb),
        workers=args.workers,
        reuse=str(args.reuse),
        one_worker=bool(args.one_worker),
    )


# --- PostgreSQL -----------------------------------------------------------------------------
# Appended to every node's postgresql.conf: the last setting in the file wins.
PLAIN_CONF = """
# --- benchmarks/pgbench_bench.py: a plain server ---
shared_preload_libraries = ''
"""


def make_plain(topology: Topology) -> dict[str, str]:
    """Restart every server without preloaded libraries; SHOW shared_preload_libraries per node.

    The topology preloads pg_stat_statements (track = all) for the test suite's routing checks.
    It costs PostgreSQL time on every statement, which lowers direct TPS and so flatters the
    proxies' ratios. Not ALTER SYSTEM: it writes this list setting's empty value as '""', a
    library named "" that the server then fails to load. Each node has its own copy of
    postgresql.conf (the replica's was taken by pg_basebackup), so each gets the line.
    """
    for node in topology.nodes():
        with (node.datadir / "postgresql.conf").open("a") as conf:
            conf.write(PLAIN_CONF)
    topology.stop()  # replicas first
    topology.start()  # primary first
    preload = {node.name: query_value(topology.pg_bin, node, "SHOW shared_preload_libraries")
               for node in topology.nodes()}
    if any(preload.values()):
        raise BenchError(f"PostgreSQL still preloads libraries after the restart: {preload}")
    return preload


def load_pgbench(topology: Topology) -> str:
    """`pgbench -i` into `bench` on the primary, replayed on the replicas; pgbench's path."""
    primary = topology.primary
    binary = client_binary(topology.pg_bin, "pgbench")
    replicas = "".join(f", replica on :{node.port}" for node in topology.replicas)
    print(f"primary on :{primary.port}{replicas}; pgbench -i -s {SCALE} {DATABASE}", flush=True)
    run_command([binary, "-i", "-q", "-s", str(SCALE), primary.dsn(dbname=DATABASE)],
                what="pgbench -i", log=primary.log_file)
    # the routed proxy reads from the replica: its tables must be there before the first run
    topology.wait_for_replicas(timeout=120)
    return binary


# --- PgBouncer ------------------------------------------------------------------------------
def ensure_pgbouncer() -> str:
    """The pgbouncer binary; apt-get installs the Debian package if it is missing."""
    found = _which_pgbouncer()
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("pgbouncer is not installed and only root can apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "pgbouncer"]):
        print(f"pgbouncer is missing; running: DEBIAN_FRONTEND=noninteractive {' '.join(argv)}",
              flush=True)
        if subprocess.run(argv, env=env, check=False).returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed")
    found = _which_pgbouncer()
    if not found:
        raise BenchError("apt-get installed pgbouncer but no pgbouncer binary was found")
    return found


def _which_pgbouncer() -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin"
    return shutil.which("pgbouncer", path=path)


def pgbouncer_ini(home: Path, port: int, server_port: int, extra: str = "") -> str:
    """reference/environment.md §5, on our ports; `extra` lines end [pgbouncer] (a key set
    twice takes the later value)."""
    return f"""\
[databases]
* = host={HOST} port={server_port}

[pgbouncer]
listen_addr = {HOST}
listen_port = {port}
unix_socket_dir = {home}
auth_type = scram-sha-256
auth_file = {home}/userlist.txt
pool_mode = transaction
default_pool_size = {POOL_SIZE}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
max_db_connections = 0
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits,options,search_path
admin_users = {APP_USER}
stats_users = {APP_USER}
logfile = {home}/pgbouncer.log
pidfile = {home}/pgbouncer.pid
log_connections = 0
log_disconnections = 0
{extra}"""


def start_pgbouncer(binary: str, base: Path, server_port: int, *, userlist: str | None = None,
                    extra_ini: str = "") -> tuple[int, int, Path]:
    """Start PgBouncer as postgres in BASE/pgbouncer; return (port, pid, home). `userlist`
    replaces the auth file's text (default: the app user's plain-text password)."""
    home = base / "pgbouncer"
    home.mkdir()
    give_to_server_user(home)
    port = free_port()
    if userlist is None:
        userlist = f'"{APP_USER}" "{APP_PASSWORD}"\n'
    write_server_file(home / "userlist.txt", userlist)
    write_server_file(home / "pgbouncer.ini", pgbouncer_ini(home, port, server_port, extra_ini))
    argv = as_server_user([binary, "-d", str(home / "pgbouncer.ini")])
    run_command(argv, what="starting pgbouncer", log=home / "pgbouncer.log")
    pidfile = home / "pgbouncer.pid"
    try:
        # the port can accept before the pidfile is written: wait for both
        wait_until_ready(port, lambda: _read_pid(pidfile) is not None, home / "pgbouncer.log")
    except BaseException:
        time.sleep(0.5)  # a pgbouncer that is still starting writes its pidfile soon
        pid = _read_pid(pidfile)
        if pid is not None:
            stop_pid(pid)
        raise
    pid = _read_pid(pidfile)
    assert pid is not None
    return port, pid, home


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def postmaster_pid(datadir: Path) -> int:
    """The first line of postmaster.pid."""
    return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])


def stop_pid(pid: int) -> None:
    """SIGTERM (immediate shutdown for PgBouncer and pgcat-py), then wait until it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while _is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a daemon's parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


# --- pgcat-py -------------------------------------------------------------------------------
# The unrouted pool: no parser, every transaction to the primary, as PgBouncer does.
UNROUTED_POOL = 'default_role = "primary"\n'
# The routed pool: every query parsed; reads may go to either server (load_balancing_mode
# stays at its default, random), so `-S` exercises parsing and the read/write split.
ROUTED_POOL = """\
default_role = "any"
query_parser_enabled = true
query_parser_read_write_splitting = true
primary_reads_enabled = true
"""


def pgcat_config(port: int, pool: str, servers: list[tuple[int, str]], general: str = "",
                 user: str = "") -> str:
    """One pool `bench` (transaction mode) over `servers`, (port, role) pairs on HOST;
    `general` and `user` are more TOML lines for [general] and for the pool's user."""
    server_list = ", ".join(f'["{HOST}", {port_}, "{role}"]' for port_, role in servers)
    return f"""\
[general]
host = "{HOST}"
port = {port}
admin_username = "admin"
admin_password = "admin"
{general}
[pools.{DATABASE}]
pool_mode = "transaction"
{pool}
[pools.{DATABASE}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = {POOL_SIZE}
{user}
[pools.{DATABASE}.shards.0]
database = "{DATABASE}"
servers = [{server_list}]
"""


def start_pgcat(base: Path, name: str, pool: str, servers: list[tuple[int, str]],
                general: str = "", user: str = "", compiled: bool = False
                ) -> tuple[int, subprocess.Popen[bytes], Path]:
    """Run `python -m pgcat_py BASE/NAME.toml` from this checkout; return (port, process, log).
    `general` and `user`: see pgcat_config; `compiled`: with --compiled."""
    port = free_port()
    config = base / f"{name}.toml"
    config.write_text(pgcat_config(port, pool, servers, general, user))
    log = base / "log" / f"{name}.log"
    argv = [sys.executable, "-m", "pgcat_py", str(config), "--log-level", "warning"]
    argv += ["--compiled"] if compiled else []
    with log.open("wb") as out:
        # own session: a terminal's Ctrl-C must not start a graceful shutdown mid-run
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until_ready(port, lambda: True, log, exited=lambda: process.poll() is not None)
    except BaseException:
        stop_pid(process.pid)
        process.wait()
        raise
    return port, process, log


def wait_until_ready(port: int, ready: Callable[[], bool], log: Path,
                     exited: Callable[[], bool] = lambda: False) -> None:
    """Poll until `port` accepts and `ready()` holds, for up to START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not exited():
        try:
            with socket.create_connection((HOST, port), timeout=1):
                if ready():
                    return
        except OSError:
            pass
        time.sleep(0.05)
    why = "the process exited" if exited() else f"not ready after {START_TIMEOUT_S} s"
    raise BenchError(f"{HOST}:{port}: {why}"
                     f"\n--- {log} ---\n{log_tail(log)}")


# --- measuring ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proc:
    """One process's line of /proc/PID/stat, times in clock ticks."""

    pid: int
    state: str
    ppid: int
    utime: int
    stime: int
    reaped: int  # cutime + cstime: children it has waited for (a postmaster's old backends)


def scan_processes() -> dict[int, Proc]:
    """Every process on the machine, from /proc/*/stat."""
    procs = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = path.read_text()
        except OSError:
            continue  # exited meanwhile
        f = stat[stat.rindex(")") + 2:].split()  # from field 3 (state) on
        pid = int(path.parent.name)
        procs[pid] = Proc(pid, f[0], int(f[1]), int(f[11]), int(f[12]), int(f[13]) + int(f[14]))
    return procs


def process_tree(procs: dict[int, Proc], root: int) -> list[Proc]:
    """`root` and its descendants (children found through their parent pid)."""
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            tree.append(procs[pid])
        todo += children.get(pid, [])
    return tree


def settle(postmasters: list[int]) -> None:
    """Wait (up to 3 s) until the backends of a finished run are gone and reaped.

    A direct run's backends exit after pgbench does; until the postmaster has reaped them,
    their CPU time is in neither their own /proc entry nor the postmaster's cutime.
    """
    deadline, previous = time.monotonic() + 3, None
    while time.monotonic() < deadline:
        procs = scan_processes()
        tree = [p for postmaster in postmasters for p in process_tree(procs, postmaster)]
        pids = {p.pid for p in tree}
        if pids == previous and all(p.state != "Z" for p in tree):
            return
        previous = pids
        time.sleep(0.1)


def machine_busy_ticks() -> int:
    """Busy time of all CPUs (first line of /proc/stat), in clock ticks.

    user + nice + system + irq + softirq: the kernel books a tick spent in softirq (our
    loopback traffic, a fifth of the machine here) as softirq in /proc/stat but as stime of
    the process it interrupted, so leaving softirq out would make other work look negative.
    """
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return user + nice + system + irq + softirq


@dataclass(frozen=True)
class CpuSnapshot:
    """What the CPU meters say at one moment; differences give one run's figures."""

    at: float
    busy: int  # whole machine
    ours: int  # PostgreSQL, the proxies, pgbench, this script, kernel threads
    proxy: dict[str, tuple[int, int]]  # target -> (utime, stime) of its process tree
    servers: list[int]  # CPU ticks of each PostgreSQL server's tree, in `postmasters` order
    waited: float  # CPU seconds of the children this script has waited for (pgbench)

    @classmethod
    def take(cls, pids: dict[str, int], postmasters: list[int]) -> CpuSnapshot:
        procs = scan_processes()
        proxy = {}
        ours = sum(p.utime + p.stime for p in procs.values() if p.ppid == KTHREADD)
        for target, pid in pids.items():
            tree = process_tree(procs, pid)
            proxy[target] = (sum(p.utime for p in tree), sum(p.stime for p in tree))
            ours += sum(p.utime + p.stime + p.reaped for p in tree)
        servers = [sum(p.utime + p.stime + p.reaped for p in process_tree(procs, postmaster))
                   for postmaster in postmasters]
        ours += sum(servers)
        mine = resource.getrusage(resource.RUSAGE_SELF)
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)  # pgbench, once it is done
        children = waited.ru_utime + waited.ru_stime
        ours += round((mine.ru_utime + mine.ru_stime + children) * CLK_TCK)
        return cls(time.monotonic(), machine_busy_ticks(), ours, proxy, servers, children)


def busy_percent(before: CpuSnapshot, after: CpuSnapshot, *, others_only: bool) -> float:
    """CPU used during a run (all of it, or other work's only), in % of all CPUs (about)."""
    used = after.busy - before.busy
    if others_only:
        used -= after.ours - before.ours  # may come out a little negative: measuring error
    capacity = (after.at - before.at) * CLK_TCK * (os.cpu_count() or 1)
    return used * 100 / capacity


def replica_percent(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    """The replicas' part of PostgreSQL's CPU time during a run, in % (None: no replica).

    Backends' CPU time in /proc is exact at any moment, unlike pg_stat_database, whose
    counters an idle pooled backend may hold back for up to 10 s: a routed run should show
    tens of %, every other run about 0 (the replica only idles in recovery).
    """
    used = [b - a for a, b in zip(before.servers, after.servers, strict=True)]
    if len(used) < 2 or sum(used) <= 0:
        return None
    return sum(used[1:]) * 100 / sum(used)


PGBENCH_LINES = {
    "tps": re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M),
    "latency_ms": re.compile(r"^latency average = ([\d.]+) ms", re.M),
    "transactions": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "failed": re.compile(r"^number of failed transactions: (\d+)", re.M),
}


def pgbench(binary: str, port: int, cell: Cell, duration: int, script: list[str]
            ) -> dict[str, float]:
    """One `pgbench -n` run (``script``: ["-S"], or [] for TPC-B); its parsed figures.

    -M prepared prepares synchronously, so a pgbench thread waiting for a server for one
    client cannot serve its other clients meanwhile; against a transaction pooler that
    deadlocks once those clients hold every server inside open transactions. `-S` is one
    statement per transaction, no BEGIN: a server is back in the pool as soon as the statement
    is answered, so `-j` may stay below `-c`.
    """
    argv = [binary, "-n", "-h", HOST, "-p", str(port), "-U", APP_USER, "-M", cell.protocol,
            "-c", str(cell.clients), "-j", str(PGBENCH_THREADS), "-T", str(duration), *script,
            DATABASE]
    env = {**os.environ, "PGPASSWORD": APP_PASSWORD}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                          timeout=duration + 60)
    output = done.stdout + done.stderr
    parsed = {key: pattern.search(output) for key, pattern in PGBENCH_LINES.items()}
    if done.returncode != 0 or parsed["tps"] is None or parsed["transactions"] is None:
        raise BenchError(f"pgbench failed (exit {done.returncode}): {' '.join(argv)}\n{output}")
    return {key: float(match.group(1)) if match else 0.0 for key, match in parsed.items()}


@dataclass
class Bench:
    """The running targets: their ports, the proxies' pids and the postmasters' pids."""

    pgbench: str
    ports: dict[str, int]  # target -> port, in TARGETS order
    pids: dict[str, int]
    postmasters: list[int]  # the primary's first, then the replica's
    script: list[str]  # pgbench's script option (Settings.script)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.ports)

    def measure(self, target: str, cell: Cell, duration: int, round_: int, position: int) -> Run:
        load1 = os.getloadavg()[0]
        before = CpuSnapshot.take(self.pids, self.postmasters)
        report = pgbench(self.pgbench, self.ports[target], cell, duration, self.script)
        settle(self.postmasters)
        after = CpuSnapshot.take(self.pids, self.postmasters)
        xacts = max(int(report["transactions"]), 1)
        user = system = None
        if target in self.pids:
            (user0, sys0), (user1, sys1) = before.proxy[target], after.proxy[target]
            user = (user1 - user0) * 1e6 / CLK_TCK / xacts
            system = (sys1 - sys0) * 1e6 / CLK_TCK / xacts
        return Run(round_, position, cell.protocol, cell.clients, target, report["tps"],
                   report["latency_ms"], int(report["transactions"]), int(report["failed"]),
                   load1, busy_percent(before, after, others_only=False),
                   busy_percent(before, after, others_only=True), user, system,
                   replica_percent(before, after),
                   run_budget(before, after, target, report["tps"], xacts))


def run_budget(before: CpuSnapshot, after: CpuSnapshot, target: str, tps: float,
               xacts: int) -> Budget:
    """Where the machine's CPU went during one run, per transaction (cpu_budget.py)."""
    proxy = sum(after.proxy.get(target, (0, 0))) - sum(before.proxy.get(target, (0, 0)))
    return measured(os.cpu_count() or 1, tps, xacts, after.busy - before.busy, proxy,
                    sum(after.servers) - sum(before.servers), after.waited - before.waited,
                    CLK_TCK)


def run_rounds(bench: Bench, settings: Settings) -> list[Run]:
    cells = [Cell(p, c) for p in settings.protocols for c in settings.clients]
    targets = bench.targets
    for target in targets:
        print(f"warm-up {target}: {settings.warmup} s", flush=True)
        pgbench(bench.pgbench, bench.ports[target], Cell("simple", WARMUP_CLIENTS),
                settings.warmup, bench.script)
    runs: list[Run] = []
    for round_ in range(settings.rounds):
        order = targets[round_ % len(targets):] + targets[:round_ % len(targets)]
        print(f"round {round_ + 1}/{settings.rounds}: order {', '.join(order)}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        for cell in cells:
            for position, target in enumerate(order):
                reason = cell.not_run(target)
                if reason is not None:
                    print(f"  {cell}, {target}: n/a ({reason})", flush=True)
                    continue
                run = bench.measure(target, cell, settings.duration, round_, position)
                runs.append(run)
                print(f"  {cell}, {target}: {_run_text(run)}", flush=True)
    return runs


def _run_text(run: Run) -> str:
    return (f"{run.tps:,.0f} tps, {run.latency_ms:.3f} ms"
            f"{_cpu_text(run.cpu_user_us, run.cpu_sys_us)}; CPUs {run.busy_pct:.0f}% busy, "
            f"{run.others_cpu_pct:.0f}% by others{_replica_text(run.replica_cpu_pct)}")


# --- reporting ------------------------------------------------------------------------------
LABELS = {"direct": "direct", "pgbouncer": "PgBouncer", "pgcat-py": "pgcat-py",
          PARSED: "parsed pgcat-py", ROUTED: "routed pgcat-py",
          ONE_WORKER: "pgcat-py, 1 worker", PARSED_ONE_WORKER: "parsed pgcat-py, 1 worker"}
SHORT = {**LABELS, PARSED: "parsed", ROUTED: "routed", ONE_WORKER: "pgcat-py 1w",
         PARSED_ONE_WORKER: "parsed 1w"}
# (target, reference) pairs reported where both were started (n/a in a cell one of them
# skipped); the Markdown table keeps the first three
RATIOS = (("pgcat-py", "pgbouncer"), (PARSED, "pgbouncer"), (ROUTED, "pgbouncer"),
          ("pgcat-py", "direct"), (PARSED, "direct"), (ROUTED, "direct"),
          (ROUTED, "pgcat-py"), ("pgbouncer", "direct"),
          (ONE_WORKER, "pgbouncer"), (PARSED_ONE_WORKER, "pgbouncer"))
MARKDOWN_RATIOS = RATIOS[:4]
# Targets whose -M prepared TPS is divided by their own -M extended TPS at as many clients:
# the statement mapping pays off when preparing once beats a Parse in every transaction.
VS_EXTENDED = ("pgcat-py", ROUTED)
MARKDOWN_VS_EXTENDED = VS_EXTENDED[:1]


@dataclass(frozen=True)
class TargetSummary:
    """One target in one cell: median TPS, mean latency, median proxy CPU µs/xact."""

    tps: float
    latency_ms: float
    failed: int
    others_cpu_pct: float  # the most any of its runs saw
    cpu_user_us: float | None
    cpu_sys_us: float | None
    replica_cpu_pct: float | None  # median replica part of PostgreSQL's CPU time
    budget: Budget | None = None  # median, field by field

    @property
    def cpu_us(self) -> float | None:
        if self.cpu_user_us is None or self.cpu_sys_us is None:
            return None
        return self.cpu_user_us + self.cpu_sys_us


@dataclass(frozen=True)
class CellSummary:
    protocol: str
    clients: int
    targets: dict[str, TargetSummary]  # the targets that ran this cell, in TARGETS order
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why it did not run
    # prepared cells only: target -> its TPS here / its TPS in the extended cell with as many
    # clients (None: no such cell was measured)
    vs_extended: dict[str, float | None] = field(default_factory=dict)

    def ratio(self, target: str, reference: str) -> float | None:
        """TPS of `target` over that of `reference`; None if either did not run this cell."""
        if target not in self.targets or reference not in self.targets:
            return None
        return self.targets[target].tps / self.targets[reference].tps

    def ratios(self, pairs: tuple[tuple[str, str], ...] = RATIOS
               ) -> list[tuple[str, str, float | None]]:
        """(target, reference, TPS ratio or None) for the pairs whose targets were both started:
        None where one of them skipped this cell."""
        known = self.targets.keys() | self.skipped.keys()
        return [(t, r, self.ratio(t, r)) for t, r in pairs if t in known and r in known]

    def to_json(self) -> dict[str, object]:
        targets = {name: {**asdict(t), "cpu_us": t.cpu_us} for name, t in self.targets.items()}
        ratios = {f"{_key(t)}_vs_{_key(r)}": value for t, r, value in self.ratios()}
        vs_extended = {f"{_key(t)}_prepared_vs_extended": value
                       for t, value in self.vs_extended.items()}
        return {"protocol": self.protocol, "clients": self.clients, "targets": targets,
                "skipped": self.skipped, **ratios, **vs_extended}


def _key(target: str) -> str:
    return target.replace("-", "_")  # "pgcat-py-routed" -> "pgcat_py_routed"


def summarize(runs: list[Run], targets: tuple[str, ...]) -> list[CellSummary]:
    """Per cell, in the order run: the figures of each target that ran it, and why the other
    `targets` (those started) did not."""
    cells = list(dict.fromkeys(Cell(r.protocol, r.clients) for r in runs))
    ran = {cell: _summarize_cell(cell, runs) for cell in cells}
    return [CellSummary(cell.protocol, cell.clients, ran[cell],
                        skipped={t: why for t in targets if (why := cell.not_run(t)) is not None},
                        vs_extended=_vs_extended(cell, ran))
            for cell in cells]


def _summarize_cell(cell: Cell, runs: list[Run]) -> dict[str, TargetSummary]:
    """The targets that ran `cell`, in TARGETS order."""
    mine = [r for r in runs if Cell(r.protocol, r.clients) == cell]
    return {target: _summarize_target([r for r in mine if r.target == target])
            for target in TARGETS if any(r.target == target for r in mine)}


def _summarize_target(runs: list[Run]) -> TargetSummary:
    """One target's runs of one cell (at least one)."""
    return TargetSummary(
        tps=statistics.median(r.tps for r in runs),
        latency_ms=statistics.fmean(r.latency_ms for r in runs),
        failed=sum(r.failed for r in runs),
        others_cpu_pct=max(r.others_cpu_pct for r in runs),
        cpu_user_us=_median_or_none([r.cpu_user_us for r in runs]),
        cpu_sys_us=_median_or_none([r.cpu_sys_us for r in runs]),
        replica_cpu_pct=_median_or_none([r.replica_cpu_pct for r in runs]),
        budget=median(budgets) if (budgets := [r.budget for r in runs if r.budget]) else None,
    )


def _vs_extended(cell: Cell, ran: dict[Cell, dict[str, TargetSummary]]
                 ) -> dict[str, float | None]:
    """For a prepared cell, each VS_EXTENDED target's TPS over its own in the extended cell
    with as many clients (None if that cell was not measured); {} for other cells."""
    if cell.protocol != "prepared":
        return {}
    prepared, extended = ran[cell], ran.get(Cell("extended", cell.clients), {})
    return {t: prepared[t].tps / extended[t].tps if t in extended else None
            for t in VS_EXTENDED if t in prepared}


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _cpu_text(user: float | None, system: float | None) -> str:
    if user is None or system is None:
        return ""
    return f", proxy CPU {user + system:.1f} µs/xact (user {user:.1f} + sys {system:.1f})"


def _replica_text(replica_pct: float | None) -> str:
    return "" if replica_pct is None else f", replica {replica_pct:.0f}% of PostgreSQL CPU"


def _ratio_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def server_note(preload: dict[str, str]) -> str:
    """One line on what PostgreSQL preloads, from SHOW shared_preload_libraries per node."""
    shown = ", ".join(f"{name} {value!r}" for name, value in preload.items())
    plain = "plain" if not any(preload.values()) else "NOT plain"
    return f"PostgreSQL {plain}: SHOW shared_preload_libraries = {shown}"


def print_tables(cells: list[CellSummary], settings: Settings, preload: dict[str, str]) -> None:
    print(f"\n{server_note(preload)}")
    for cell in cells:
        script = " ".join(settings.script) or "(TPC-B)"
        print(f"\npgbench {script} -M {cell.protocol} -c {cell.clients} -j {PGBENCH_THREADS}, "
              f"{settings.rounds} round(s) x {settings.duration} s, {settings.reuse} reuse")
        print(f"  {'target':<15} {'TPS (median)':>13} {'lat ms (mean)':>14} "
              f"{'CPU µs/xact':>12} {'(user + sys)':>14} {'others max':>11} {'replica':>8}")
        for name in TARGETS:
            if name in cell.targets:
                print(_target_row(name, cell.targets[name]))
            elif name in cell.skipped:
                print(f"  {name:<15} {'n/a':>13} ({cell.skipped[name]})")
        print("  " + "   ".join(_ratio_texts(cell)))
        print_budgets(cell)
    if any(t.replica_cpu_pct is not None for cell in cells for t in cell.targets.values()):
        print("\n(replica: its part of PostgreSQL's CPU time during the runs, median)")
    print("\n" + markdown_table(cells, preload))


# TPS multiples of PgBouncer's that issue 10 asks for: what CPU each leaves a proxy here
TARGET_RATIOS = (1.0, 1.2)


def print_budgets(cell: CellSummary) -> None:
    """Each target's CPU per transaction by who spent it, and what PgBouncer's leaves."""
    budgets = {name: t.budget for name, t in cell.targets.items() if t.budget is not None}
    if not budgets:
        return
    print(BUDGET_HEAD)
    for name, budget in budgets.items():
        print(budget_text(name, budget))
    if "pgbouncer" in budgets:
        print(reference_text("PgBouncer", budgets["pgbouncer"], TARGET_RATIOS))


def _target_row(name: str, t: TargetSummary) -> str:
    cpu = "-" if t.cpu_us is None else f"{t.cpu_us:.1f}"
    split = "" if t.cpu_us is None else f"({t.cpu_user_us:.1f} + {t.cpu_sys_us:.1f})"
    replica = "-" if t.replica_cpu_pct is None else f"{t.replica_cpu_pct:.0f}%"
    failed = f"  {t.failed} failed" if t.failed else ""
    return (f"  {name:<15} {t.tps:>13,.0f} {t.latency_ms:>14.3f} {cpu:>12} "
            f"{split:>14} {t.others_cpu_pct:>10.0f}% {replica:>8}{failed}")


def _ratio_texts(cell: CellSummary) -> list[str]:
    texts = [f"{SHORT[t]}/{SHORT[r]} {_ratio_text(value)}" for t, r, value in cell.ratios()]
    texts += [f"{SHORT[t]} prepared/extended {_ratio_text(value)}"
              for t, value in cell.vs_extended.items()]
    return texts


def markdown_table(cells: list[CellSummary], preload: dict[str, str]) -> str:
    """The same figures as one Markdown table, for the README and issue notes."""
    # every target started, whether it ran a given cell or not: a skipped one reads n/a there
    names = [t for t in TARGETS if any(t in c.targets or t in c.skipped for c in cells)]
    pairs = [(t, r) for t, r in MARKDOWN_RATIOS if t in names and r in names]
    vs_extended = [t for t in MARKDOWN_VS_EXTENDED if any(t in c.vs_extended for c in cells)]
    head = ["proto", "clients"]
    for name in names:
        head.append(f"{LABELS[name]} tps (lat ms)")
        if name != "direct":
            head.append("CPU µs/xact")
    head += [f"{SHORT[t]}/{SHORT[r]}" for t, r in pairs]
    head += [f"{SHORT[t]} prepared/extended" for t in vs_extended]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for cell in cells:
        cols = [cell.protocol, str(cell.clients), *_markdown_figures(cell, names)]
        cols += [_ratio_text(cell.ratio(t, r)) for t, r in pairs]
        cols += [_ratio_text(cell.vs_extended[t]) if t in cell.vs_extended else "-"
                 for t in vs_extended]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines + _markdown_notes(cells, preload, vs_extended))


def _markdown_figures(cell: CellSummary, names: list[str]) -> list[str]:
    """TPS (latency) per target, and CPU µs/xact per proxy; n/a where it skipped the cell."""
    cols = []
    for name in names:
        t = cell.targets.get(name)
        cols.append("n/a" if t is None else
                    f"{t.tps:,.0f} ({t.latency_ms:.3f})".replace(",", " "))
        if name != "direct":
            cols.append("n/a" if t is None or t.cpu_us is None else f"{t.cpu_us:.1f}")
    return cols


def _markdown_notes(cells: list[CellSummary], preload: dict[str, str],
                    vs_extended: list[str]) -> list[str]:
    others = max(t.others_cpu_pct for cell in cells for t in cell.targets.values())
    lines = [f"\nOther work on the machine took up to {others:.0f} % of the CPUs during a run. "
             f"{server_note(preload)}."]
    skipped = dict.fromkeys(f"{LABELS[t]} {why}" for c in cells for t, why in c.skipped.items())
    lines += [f"n/a: {text}." for text in skipped]
    unmatched = any(c.vs_extended.get(t, 0.0) is None for c in cells for t in vs_extended)
    lines += [f"{SHORT[t]} prepared/extended: {LABELS[t]}'s TPS with -M prepared over its TPS "
              f"with -M extended at as many clients"
              f"{' (n/a: no extended cell was run)' if unmatched else ''}." for t in vs_extended]
    lines += [f"-M {c.protocol} -c {c.clients}:{reference_text('PgBouncer', b, TARGET_RATIOS)[1:]}."
              for c in cells if (b := _reference_budget(c)) is not None]
    shares = [c.targets[ROUTED].replica_cpu_pct for c in cells if ROUTED in c.targets]
    present = [s for s in shares if s is not None]
    if present:
        lines.append(f"Routed pgcat-py: the replica took {min(present):.0f}–{max(present):.0f} % "
                     f"of PostgreSQL's CPU time (reads split between primary and replica).")
    return lines


def _reference_budget(cell: CellSummary) -> Budget | None:
    bouncer = cell.targets.get("pgbouncer")
    return None if bouncer is None else bouncer.budget


def write_results(runs: list[Run], cells: list[CellSummary], meta: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"pgbench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    document = {**meta, "runs": [asdict(r) for r in runs],
                "summary": [cell.to_json() for cell in cells]}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def describe_machine(pgbouncer_binary: str, settings: Settings) -> dict[str, object]:
    def output(argv: list[str]) -> str:
        """First line of a command's stdout ("" if none)."""
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
        lines = done.stdout.strip().splitlines()
        return lines[0] if lines else ""

    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": output(["git", "rev-parse", "HEAD"]),
        # the proxy measured is this checkout's working tree, uncommitted changes included
        "git_dirty": bool(output(["git", "status", "--porcelain", "--", "pgcat_py"])),
        "pgbouncer": output([pgbouncer_binary, "--version"]),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "settings": asdict(settings),
        "method": {"scale": SCALE, "pool_size": POOL_SIZE, "pgbench_threads": PGBENCH_THREADS,
                   "tps": "median over rounds", "latency": "mean over rounds",
                   "cpu": "median over rounds of (utime+stime delta)/transactions",
                   "routed_pool": ROUTED_POOL.splitlines(),
                   "not_run": {f"{target} -M {protocol}": why
                               for (target, protocol), why in NOT_RUN.items()}},
    }


# --- main -----------------------------------------------------------------------------------
def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwind through main's finally: stop everything


@dataclass
class Started:
    """What main has started so far: _stop_all stops it, after a failure too."""

    topology: Topology | None = None
    bouncer_pid: int | None = None
    pgcats: list[subprocess.Popen[bytes]] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    bouncer_binary = ensure_pgbouncer()
    meta = describe_machine(bouncer_binary, settings)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs", flush=True)
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-pgbench-"))
    base.chmod(0o755)  # the postgres OS user must reach its directories below
    started = Started()
    try:
        # the replica only serves the routed proxy; without it, no replica at all
        topology = create_topology(base, replicas=1 if settings.routed else 0, shards=0)
        started.topology = topology
        preload = make_plain(topology)
        meta["shared_preload_libraries"] = preload
        print(server_note(preload), flush=True)
        bench = start_targets(settings, bouncer_binary, topology, started)
        meta["relay"] = {target: relay_kind_of(pid) for target, pid in bench.pids.items()
                         if target.startswith("pgcat-py")}
        runs = run_rounds(bench, settings)
        meta["load_after"] = os.getloadavg()
        cells = summarize(runs, bench.targets)
        print_tables(cells, settings, preload)
        print(f"\nresults: {write_results(runs, cells, meta)}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    except (BenchError, LocalPgError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop_all(started, base, settings.keep)


def start_targets(settings: Settings, bouncer_binary: str, topology: Topology,
                  started: Started) -> Bench:
    """Load pgbench's tables, start the proxies (recorded in `started`); the targets to run."""
    pgbench_binary = load_pgbench(topology)
    primary = topology.primary
    fifo = settings.reuse == "fifo"
    bouncer_port, started.bouncer_pid, _ = start_pgbouncer(
        bouncer_binary, topology.base, primary.port,
        extra_ini="server_round_robin = 1\n" if fifo else "")
    ports = {"direct": primary.port, "pgbouncer": bouncer_port}
    pids = {"pgbouncer": started.bouncer_pid}
    pgcats = {"pgcat-py": (UNROUTED_POOL, [(primary.port, "primary")])}
    if settings.routed:
        replicas = [(node.port, "replica") for node in topology.replicas]
        pgcats[PARSED] = (ROUTED_POOL, [(primary.port, "primary")])
        pgcats[ROUTED] = (ROUTED_POOL, [(primary.port, "primary"), *replicas])
    if settings.one_worker:
        pgcats[ONE_WORKER] = pgcats["pgcat-py"]
        if settings.routed:
            pgcats[PARSED_ONE_WORKER] = pgcats[PARSED]
    for target, (pool, servers) in pgcats.items():
        general = f"server_round_robin = {'true' if fifo else 'false'}\n"
        workers = 1 if target in (ONE_WORKER, PARSED_ONE_WORKER) else settings.workers
        if workers is not None:
            general += f"worker_threads = {workers}\n"
        port, process, _ = start_pgcat(topology.base, target, pool, servers, general=general,
                                       compiled=settings.compiled)
        started.pgcats.append(process)
        ports[target], pids[target] = port, process.pid
        relay = relay_kind_of(process.pid)
        print(f"{target} relay: {relay}", flush=True)
        if settings.compiled and relay != COMPILED_KIND:
            raise BenchError(f"--compiled, but {target} runs {relay}: {build_problem()}")
    print(", ".join(f"{target} on :{ports[target]} (pid {pid})" for target, pid in pids.items()),
          flush=True)
    postmasters = [postmaster_pid(node.datadir) for node in [primary, *topology.replicas]]
    return Bench(pgbench_binary, ports, pids, postmasters, settings.script)


def _stop_all(started: Started, base: Path, keep: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
    for pgcat in started.pgcats:
        stop_pid(pgcat.pid)
        pgcat.wait()
    if started.bouncer_pid is not None:
        stop_pid(started.bouncer_pid)
    if started.topology is not None:
        started.topology.stop()
    if keep:
        print(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
