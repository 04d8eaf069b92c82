"""N SCRAM-SHA-256 logins at once: direct, through PgBouncer and through pgcat-py.

Run: .venv/bin/python benchmarks/login_bench.py [--clients 1000] [--rounds 3]
                                                [--workers 1,2] [--keep]

Builds a throwaway plain PostgreSQL primary under /tmp (the helpers of pgbench_bench.py) with
max_connections raised above N, and puts in front of it, each on a free port: PgBouncer 1.18
(transaction mode, default_pool_size 20, auth_type scram-sha-256 with the role's SCRAM secret
from pg_authid in userlist.txt, max_client_conn and listen_backlog raised; one process) and
one pgcat-py per --workers value (transaction mode, pool_size 20, the user's auth_type
scram-sha-256, worker_threads as given; its verifier is computed once, at config load).

One burst: N clients connect at the same moment from one asyncio (uvloop) process, each logs
in with SCRAM-SHA-256 (benchmarks/pgwire_client.py: its PBKDF2 is computed once per salt, as
the 2 cores are shared), then each sends SELECT 1, then all close. Reported per burst: the
wall time until all N were logged in (the figure compared), until all had their SELECT 1
answered, the median and 99th percentile login time, the target's CPU time (its process tree;
for direct, the postmaster's with its reaped backends) and this client's CPU time. Meanwhile a
separate process (pgwire_client.py probe) logs in and runs SELECT 1 every 10 ms: the slowest
probe started during the login burst says how long a new client waited, which is how long the
accept loop was unresponsive (baseline: the median probe before the burst). Each burst also
records roughly how much of the machine other work took (pgbench_bench.py's method: /proc/stat
busy time minus PostgreSQL, the proxies, this process and kernel threads; the prober counts
as other work), since the 2 cores are shared: around 0 % (±2) is a clean burst.

Each round runs one burst per target, the order rotated per round; figures are medians over
rounds. Results are printed and written to benchmarks/results/login-<timestamp>.json.
Everything started here is stopped on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from pgbench_bench import (
    CLK_TCK,
    DATABASE,
    HOST,
    PLAIN_CONF,
    POOL_SIZE,
    REPO,
    RESULTS_DIR,
    UNROUTED_POOL,
    BenchError,
    CpuSnapshot,
    _exit_on_sigterm,
    busy_percent,
    ensure_pgbouncer,
    make_plain,
    postmaster_pid,
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

PROBE = Path(__file__).with_name("pgwire_client.py")
PROBE_INTERVAL_S = 0.01
PROBE_BASELINE_S = 0.5  # probes before the burst
PROBE_AFTER_S = 0.3
LOGIN_TIMEOUT_S = 120.0
LISTEN_BACKLOG = 2048  # pgcat-py's (app.py create_server); PgBouncer's default is 128
WARMUP_CLIENTS = 50


@dataclass(frozen=True)
class Burst:
    """One burst of N logins against one target."""

    round: int
    target: str
    clients: int
    failed: int
    first_error: str
    all_logged_in_s: float  # from the first connect to the last login
    all_selected_s: float  # from the first connect to the last SELECT 1 answered
    login_p50_s: float
    login_p99_s: float
    target_cpu_s: float
    client_cpu_s: float
    probe_baseline_s: float | None  # median probe before the burst
    probe_max_s: float | None  # slowest probe started during the login burst
    probes_during: int
    probe_failures: int
    load1: float
    others_cpu_pct: float  # CPU other work took during the burst, % of all CPUs (about)


@dataclass(frozen=True)
class Settings:
    clients: int
    rounds: int
    workers: list[int]
    keep: bool


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000, help="logins per burst (default 1000)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--workers", default="1,2",
                   help="pgcat-py targets by worker_threads, comma-separated (default 1,2)")
    p.add_argument("--keep", action="store_true", help="keep the /tmp base directory")
    args = p.parse_args(argv)
    return Settings(args.clients, args.rounds, [int(w) for w in args.workers.split(",")],
                    bool(args.keep))


def raise_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it); the new soft
    limit. BenchError if even the hard limit is below `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(f"open files hard limit {hard} < {needed}: raise it (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raising_open_files(pgbouncer: str, base: Path) -> str:
    """A wrapper to start PgBouncer with instead of its binary: `runuser` (pam_limits) starts
    it with a soft RLIMIT_NOFILE of 1024 whatever ours is, and PgBouncer then fails accept()
    with EMFILE past ~1000 clients; the wrapper raises the soft limit to the hard one first."""
    wrapper = base / "pgbouncer-nofile.sh"
    wrapper.write_text(f'#!/bin/sh\nulimit -n "$(ulimit -Hn)"\nexec {pgbouncer} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


# --- the targets ----------------------------------------------------------------------------
@dataclass
class Started:
    topology: Topology | None = None
    bouncer_pid: int | None = None
    pgcats: list[subprocess.Popen[bytes]] = field(default_factory=list)


@dataclass
class Targets:
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # whose process tree's CPU to count
    relays: dict[str, str] = field(default_factory=dict)  # pgcat-py: which relay it runs


def start_targets(settings: Settings, bouncer_binary: str, started: Started) -> Targets:
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-login-"))
    base.chmod(0o755)  # the postgres OS user must reach its directories below
    topology = create_topology(base, replicas=0, shards=0)
    started.topology = topology
    primary = topology.primary
    # Direct: every client is a backend (plus the probe's, the pools', superuser psql).
    with (primary.datadir / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# --- benchmarks/login_bench.py ---\n"
                   f"max_connections = {settings.clients + 2 * POOL_SIZE * 4 + 20}\n")
    make_plain(topology)
    secret = query_value(topology.pg_bin, primary,
                         f"SELECT rolpassword FROM pg_authid WHERE rolname = '{APP_USER}'")
    if not secret.startswith("SCRAM-SHA-256$"):
        raise BenchError(f"{APP_USER}'s password is not stored as SCRAM: {secret[:14]}...")
    targets = Targets({"direct": primary.port}, {"direct": postmaster_pid(primary.datadir)})
    extra = (f"max_client_conn = {settings.clients + 100}\n"
             f"listen_backlog = {LISTEN_BACKLOG}\n")
    port, started.bouncer_pid, _ = start_pgbouncer(
        raising_open_files(bouncer_binary, base), base, primary.port,
        userlist=f'"{APP_USER}" "{secret}"\n', extra_ini=extra)
    targets.ports["pgbouncer"], targets.pids["pgbouncer"] = port, started.bouncer_pid
    for workers in settings.workers:
        name = f"pgcat-py-{workers}w"
        general = f"worker_threads = {workers}\nmax_client_conn = {settings.clients + 100}\n"
        port, process, _ = start_pgcat(base, name, UNROUTED_POOL, [(primary.port, "primary")],
                                       general=general, user='auth_type = "scram-sha-256"\n')
        started.pgcats.append(process)
        targets.ports[name], targets.pids[name] = port, process.pid
        targets.relays[name] = relay_kind_of(process.pid)
    print(", ".join(f"{t} on :{targets.ports[t]} (pid {targets.pids[t]}"
                    f"{', ' + targets.relays[t] if t in targets.relays else ''})"
                    for t in targets.ports), flush=True)
    return targets


def target_of(port: int) -> Target:
    return Target(HOST, port, APP_USER, APP_PASSWORD, DATABASE)


def tree_cpu_s(pid: int) -> float:
    """utime + stime of `pid` and its descendants, and of the children they reaped."""
    tree = process_tree(scan_processes(), pid)
    return sum(p.utime + p.stime + p.reaped for p in tree) / CLK_TCK


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- one burst ------------------------------------------------------------------------------
@dataclass
class BurstTimes:
    started: float
    logged_in: list[float]  # monotonic time each successful login completed
    selected_at: float
    errors: list[str]


async def _login_burst(target: Target, clients: int) -> BurstTimes:
    async def one() -> tuple[Client, float]:
        client = await connect(target)
        return client, time.monotonic()

    started = time.monotonic()
    results = await asyncio.gather(
        *(asyncio.wait_for(one(), LOGIN_TIMEOUT_S) for _ in range(clients)),
        return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    answers = await asyncio.gather(*(c.select_1() for c, _ in ok), return_exceptions=True)
    selected_at = time.monotonic()
    errors += [f"SELECT 1: {type(a).__name__}: {a}" for a in answers if a is not None]
    for client, _ in ok:
        client.close()
    await asyncio.sleep(0.05)  # let the Terminates go out before the loop closes
    return BurstTimes(started, [at for _, at in ok], selected_at, errors)


def start_probe(port: int) -> subprocess.Popen[str]:
    argv = [sys.executable, str(PROBE), "probe", HOST, str(port), APP_USER, APP_PASSWORD,
            DATABASE, "--interval", str(PROBE_INTERVAL_S)]
    probe = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert probe.stdout is not None
    first = probe.stdout.readline()  # its first probe done: it runs
    if not first:
        raise BenchError(f"the login probe against :{port} exited: {probe.wait()}")
    return probe


def stop_probe(probe: subprocess.Popen[str]) -> list[tuple[float, float]]:
    """SIGTERM the prober; its (start, latency) lines (latency -1: it failed)."""
    probe.send_signal(signal.SIGTERM)
    out, _ = probe.communicate(timeout=LOGIN_TIMEOUT_S)
    return [(float(a), float(b)) for a, b in (line.split() for line in out.splitlines())]


def burst(name: str, targets: Targets, clients: int, round_: int) -> Burst:
    """One burst against target `name`; the other targets idle meanwhile."""
    port, pid = targets.ports[name], targets.pids[name]
    proxies = {t: p for t, p in targets.pids.items() if t != "direct"}
    postmasters = [targets.pids["direct"]]
    load1 = os.getloadavg()[0]
    probe = start_probe(port)
    try:
        time.sleep(PROBE_BASELINE_S)
        cpu0, own0 = tree_cpu_s(pid), own_cpu_s()
        machine0 = CpuSnapshot.take(proxies, postmasters)
        times = uvloop.run(_login_burst(target_of(port), clients))
        machine1 = CpuSnapshot.take(proxies, postmasters)
        cpu1, own1 = tree_cpu_s(pid), own_cpu_s()
        time.sleep(PROBE_AFTER_S)
    finally:
        probes = stop_probe(probe)
    end = max(times.logged_in, default=times.started)
    before = [lat for at, lat in probes if at < times.started and lat >= 0]
    during = [(at, lat) for at, lat in probes if times.started <= at <= end]
    latencies = sorted(at - times.started for at in times.logged_in) or [0.0]
    return Burst(
        round=round_, target=name, clients=clients, failed=len(times.errors),
        first_error=times.errors[0] if times.errors else "",
        all_logged_in_s=end - times.started, all_selected_s=times.selected_at - times.started,
        login_p50_s=statistics.median(latencies),
        login_p99_s=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        target_cpu_s=cpu1 - cpu0, client_cpu_s=own1 - own0,
        probe_baseline_s=statistics.median(before) if before else None,
        probe_max_s=max((lat for _, lat in during if lat >= 0), default=None),
        probes_during=len(during), probe_failures=sum(1 for _, lat in during if lat < 0),
        load1=load1, others_cpu_pct=busy_percent(machine0, machine1, others_only=True))


def warm_up(targets: Targets) -> None:
    """A small burst per target: pools opened, server parameters learnt, code paths loaded."""
    for name, port in targets.ports.items():
        times = uvloop.run(_login_burst(target_of(port), WARMUP_CLIENTS))
        if times.errors:
            raise BenchError(f"warm-up against {name} failed: {times.errors[0]}")


def run_rounds(targets: Targets, settings: Settings) -> list[Burst]:
    names = list(targets.ports)
    bursts = []
    for round_ in range(settings.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(1.0)  # the last burst's backends and sockets go away
            b = burst(name, targets, settings.clients, round_)
            bursts.append(b)
            probe = "-" if b.probe_max_s is None else f"{b.probe_max_s * 1000:.0f} ms"
            print(f"round {round_ + 1} {name:<14} logged in {b.all_logged_in_s:6.3f} s  "
                  f"+SELECT {b.all_selected_s:6.3f} s  CPU {b.target_cpu_s:5.2f} s  "
                  f"probe max {probe} ({b.probes_during} probes)  failed {b.failed}"
                  f"{'  ' + b.first_error if b.failed else ''}  others "
                  f"{b.others_cpu_pct:.0f}%",
                  flush=True)
    return bursts


# --- report ---------------------------------------------------------------------------------
def summarize(bursts: list[Burst]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name in dict.fromkeys(b.target for b in bursts):
        mine = [b for b in bursts if b.target == name]

        def med(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return statistics.median(present) if present else None

        out[name] = {
            "all_logged_in_s": med([b.all_logged_in_s for b in mine]),
            "all_selected_s": med([b.all_selected_s for b in mine]),
            "login_p50_s": med([b.login_p50_s for b in mine]),
            "login_p99_s": med([b.login_p99_s for b in mine]),
            "target_cpu_us_per_login": med([b.target_cpu_s * 1e6 / b.clients for b in mine]),
            "client_cpu_s": med([b.client_cpu_s for b in mine]),
            "probe_baseline_ms": med([None if b.probe_baseline_s is None
                                      else b.probe_baseline_s * 1000 for b in mine]),
            "probe_max_ms": med([None if b.probe_max_s is None else b.probe_max_s * 1000
                                 for b in mine]),
            "failed": float(sum(b.failed for b in mine)),
            "others_cpu_pct_max": max(b.others_cpu_pct for b in mine),
        }
    return out


def print_summary(summary: dict[str, dict[str, float | None]], settings: Settings) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    print(f"\n{settings.clients} SCRAM logins at once, {settings.rounds} round(s), medians")
    print("| target | all logged in s | + SELECT 1 s | login p50 / p99 ms | CPU µs/login "
          "| probe before / max during ms | vs PgBouncer | others max |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    bouncer = summary.get("pgbouncer", {}).get("all_logged_in_s")
    for name, s in summary.items():
        logged, cpu = s["all_logged_in_s"], s["target_cpu_us_per_login"]
        ratio = "-" if not bouncer or logged is None else f"{logged / bouncer:.2f}"
        p50, p99 = s["login_p50_s"], s["login_p99_s"]
        print(f"| {name} | {logged:.3f} | {s['all_selected_s']:.3f} | "
              f"{ms(None if p50 is None else p50 * 1000)} / "
              f"{ms(None if p99 is None else p99 * 1000)} | {ms(cpu)} | "
              f"{ms(s['probe_baseline_ms'])} / {ms(s['probe_max_ms'])} | {ratio} | "
              f"{s['others_cpu_pct_max']:.0f} % |")
    failed = sum(s["failed"] or 0 for s in summary.values())
    if failed:
        print(f"\n{failed:.0f} logins or SELECTs failed: see the per-round lines")


def write_results(bursts: list[Burst], summary: dict[str, dict[str, float | None]],
                  meta: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"login-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({**meta, "bursts": [asdict(b) for b in bursts],
                                "summary": summary}, indent=2) + "\n")
    return path


def describe(settings: Settings, bouncer_binary: str, nofile: int) -> dict[str, object]:
    def output(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
        return (done.stdout.strip().splitlines() or [""])[0]

    return {"started": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": output(["git", "rev-parse", "HEAD"]),
            "git_dirty": bool(output(["git", "status", "--porcelain", "--", "pgcat_py"])),
            "pgbouncer": output([bouncer_binary, "--version"]), "cpus": os.cpu_count(),
            "load_before": os.getloadavg(), "settings": asdict(settings),
            "rlimit_nofile": nofile, "pool_size": POOL_SIZE, "listen_backlog": LISTEN_BACKLOG,
            "plain_conf": PLAIN_CONF.strip().splitlines()}


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    nofile = raise_open_files(settings.clients + 200)
    bouncer_binary = ensure_pgbouncer()
    meta = describe(settings, bouncer_binary, nofile)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs; "
          f"open files limit {nofile}", flush=True)
    started = Started()
    try:
        targets = start_targets(settings, bouncer_binary, started)
        meta["relay"] = targets.relays
        warm_up(targets)
        bursts = run_rounds(targets, settings)
        summary = summarize(bursts)
        meta["load_after"] = os.getloadavg()
        print_summary(summary, settings)
        print(f"\nresults: {write_results(bursts, summary, meta)}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    except (BenchError, LocalPgError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(started, settings.keep)


def stop_all(started: Started, keep: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
    for pgcat in started.pgcats:
        stop_pid(pgcat.pid)
        pgcat.wait()
    if started.bouncer_pid is not None:
        stop_pid(started.bouncer_pid)
    if started.topology is not None:
        started.topology.stop()
        if keep:
            print(f"kept {started.topology.base}")
        else:
            shutil.rmtree(started.topology.base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
