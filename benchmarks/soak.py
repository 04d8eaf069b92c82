"""Soak: mixed load through pgcat-py for a set time, with a replica killed and restarted and
the config reloaded, sampling the proxy's memory, fds and server connections as it goes.

Run: .venv/bin/python benchmarks/soak.py [--minutes 30] [--interval 60] [--warmup S]
                                         [--pool-size 4] [--workers 1] [--replica-every 180]
                                         [--replica-down 20] [--reload-every 45] [--keep]

Builds a throwaway PostgreSQL primary and a streaming replica under /tmp (pgcat_py.localpg),
and starts pgcat-py from this checkout in front of them (soak_proxy.py): pool `app`,
transaction mode, the query parser with read/write splitting on (reads to the replica, to the
primary while it is banned), pool_size 4 per server, worker_threads 1, ban_time 10 s, pool
idle_timeout 10 s (so idle servers close soon after the clients leave). Then, for --minutes:
- the clients of soak_load.py (reads, writes, transactions, psycopg prepare=True, asyncpg,
  cancelled pg_sleep, reconnect storms of 40 short connections);
- the faults and reloads of soak_chaos.py (the replica crashed and restarted every
  --replica-every s; a reload every --reload-every s, alternately SIGHUP with a [general]
  change and admin RELOAD with a pool change that rebuilds the pool);
- every --interval s a sample (soak_watch.py): RSS and open fds of the proxy's process tree,
  app backends per server in pg_stat_activity (the highest since the last sample, from a
  watch every 0.5 s), SHOW POOLS, work done and client errors by class.
A sample is taken before the first client (the baseline) and one after the clients have left
and the pool's idle servers have closed. The samples go to benchmarks/results/soak-<time>.csv
with a plot (.png) and the verdict (.json); the verdict (soak_report.py) is printed, and the
exit code is 1 when a check fails. Everything started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from soak_chaos import Actions, Chaos, ChaosSettings
from soak_errors import ErrorLog
from soak_load import Load, LoadSettings
from soak_proxy import POOL, REPO, Proxy, kill_replica, prepare_database
from soak_report import Sample, plot, print_verdict, verdict, write_csv, write_verdict
from soak_watch import ServerWatch, open_fds, process_tree, rss_kb, show_pools

from pgcat_py.localpg import Topology, create_topology

DRAIN_TIMEOUT_S = 60.0
WARMUP_SLACK_S = 1.0


@dataclass(frozen=True)
class Settings:
    seconds: float
    interval: float
    warmup: float
    pool_size: int
    workers: int
    chaos: ChaosSettings
    out: Path
    keep: bool


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    p.add_argument("--seconds", type=float, help="the same in seconds (short runs, tests)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--warmup", type=float,
                   help="seconds before RSS is taken as the reference (default: a sixth of "
                        "the run, at least one interval, at most 5 minutes)")
    p.add_argument("--pool-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=1, help="worker_threads")
    p.add_argument("--replica-every", type=float, default=180.0)
    p.add_argument("--replica-down", type=float, default=20.0)
    p.add_argument("--reload-every", type=float, default=45.0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--keep", action="store_true", help="keep the /tmp base directory")
    a = p.parse_args(argv)
    seconds = a.seconds if a.seconds is not None else a.minutes * 60
    warmup = a.warmup if a.warmup is not None else min(300.0, max(a.interval, seconds / 6))
    chaos = ChaosSettings(replica_every_s=a.replica_every, replica_down_s=a.replica_down,
                          reload_every_s=a.reload_every)
    return Settings(seconds, a.interval, warmup, a.pool_size, a.workers, chaos, a.out, a.keep)


# --- the run ------------------------------------------------------------------------------
@dataclass
class Soak:
    settings: Settings
    proxy: Proxy
    watch: ServerWatch
    chaos: Chaos
    errors: ErrorLog
    load: Load
    samples: list[Sample] = field(default_factory=list)
    _units: int = 0
    _events_seen: int = 0

    def run(self) -> None:
        s = self.settings
        self.watch.start()
        self.drain()  # the startup's own server connections (the catalog) idle out first
        self.sample("baseline")
        self.chaos.started = time.monotonic()  # times count from the first client
        self.load.start()
        self.chaos.start()
        end = self.chaos.started + s.seconds
        while (now := time.monotonic()) < end:
            next_at = self.chaos.started + s.interval * (len(self.samples))
            time.sleep(max(0.0, min(next_at, end) - now))
            if time.monotonic() < end:
                t = time.monotonic() - self.chaos.started
                # the sample due at the warm-up's end is its last (its time runs a bit over)
                self.sample("warmup" if t <= s.warmup + WARMUP_SLACK_S else "load")
        self.sample("warmup" if s.seconds <= s.warmup else "load")
        self.chaos.stop()
        self.load.stop()
        self.drain()
        self.sample("after")
        self.watch.stop()

    def drain(self) -> None:
        """Until no client is left and the pool's idle servers have closed (idle_timeout)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if not any(show_pools(self.proxy.admin_dsn, POOL).values()):
                break
            time.sleep(1.0)
        time.sleep(1.0)  # closed sockets leave /proc/PID/fd a moment later

    def sample(self, phase: str) -> None:
        pids = process_tree(self.proxy.pid)
        rss, fds = rss_kb(pids), open_fds(pids)  # before the admin connection below
        pools = show_pools(self.proxy.admin_dsn, POOL)
        now, peaks = self.watch.current(), self.watch.take()
        primary, replica = self.proxy.topology.primary.name, self.proxy.topology.replicas[0].name
        expected, unexpected = self.errors.totals()
        done = sum(self.load.snapshot().values())
        classes = " ".join([f"{k}={v}" for k, v in sorted(expected.items())]
                           + [f"!{k}={v}" for k, v in sorted(unexpected.items())])
        events = self.chaos.events[self._events_seen:]
        self._events_seen += len(events)
        sample = Sample(
            t_s=round(time.monotonic() - self.chaos.started, 1) if phase != "baseline" else 0.0,
            phase=phase, rss_kb=rss, fds=fds, processes=len(pids),
            primary_conns=now.get(primary), replica_conns=now.get(replica),
            primary_peak=peaks.servers.get(primary), replica_peak=peaks.servers.get(replica),
            rebuild_peak=peaks.rebuild, units=done - self._units,
            expected_errors=sum(expected.values()), unexpected_errors=sum(unexpected.values()),
            error_classes=classes, events="; ".join(f"{t:.0f}s {what}" for t, what in events),
            **pools)
        self._units = done
        self.samples.append(sample)
        print(f"[{sample.t_s:7.1f}s {phase:<8}] RSS {rss / 1024:6.1f} MiB, {fds} fds, "
              f"app backends {sample.primary_conns}/{sample.replica_conns} "
              f"(peaks {sample.primary_peak}/{sample.replica_peak}), "
              f"sv_active {pools['sv_active']} sv_idle {pools['sv_idle']}, "
              f"{sample.units} units, errors {sample.expected_errors} expected "
              f"{sample.unexpected_errors} unexpected {sample.events}", flush=True)


def build(settings: Settings, topology: Topology, base: Path) -> Soak:
    proxy = Proxy(topology, settings.pool_size, settings.workers, base / "pgcat.toml")
    actions = Actions(kill_replica=lambda: kill_replica(topology),
                      start_replica=topology.start, reload=proxy.reload)
    chaos = Chaos(settings.chaos, actions, started=time.monotonic())
    errors = ErrorLog(chaos.in_trouble)
    watch = ServerWatch([topology.primary, *topology.replicas], chaos.rebuilding,
                        settings.pool_size)
    load = Load(LoadSettings(proxy.dsn()), errors)
    return Soak(settings, proxy, watch, chaos, errors, load)


def report(soak: Soak, stamp: str) -> int:
    s = soak.settings
    s.out.mkdir(parents=True, exist_ok=True)
    stem = s.out / f"soak-{stamp}"
    checks = verdict(soak.samples, s.pool_size)
    write_csv(stem.with_suffix(".csv"), soak.samples)
    plot(stem.with_suffix(".png"), soak.samples, soak.chaos.events,
         f"pgcat-py soak, {s.seconds / 60:.1f} min, pool_size {s.pool_size}, "
         f"worker_threads {s.workers}")
    extra = {"settings": {**asdict(s), "out": str(s.out)},
             "work": dict(soak.load.snapshot()), "events": soak.chaos.events,
             "error_examples": soak.errors.examples, "over_pool_size": soak.watch.excess}
    write_verdict(stem.with_suffix(".json"), checks, extra)
    print(f"\nwork done: {json.dumps(dict(soak.load.snapshot()))}")
    for key, texts in soak.errors.examples.items():
        print(f"{'unexpected ' + key[1:] if key.startswith('!') else key}: {texts}")
    for line in soak.watch.excess:
        print(f"over pool_size: {line}")
    print_verdict(checks)
    print(f"wrote {stem}.csv, .png, .json")
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-soak-"))
    base.chmod(0o755)  # the servers run as postgres
    topology: Topology | None = None
    soak: Soak | None = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        topology = create_topology(base, replicas=1, shards=0)
        prepare_database(topology)
        soak = build(settings, topology, base)
        soak.proxy.start()
        print(f"soak: {settings.seconds:.0f} s, primary :{topology.primary.port}, replica "
              f":{topology.replicas[0].port}, pgcat-py :{soak.proxy.port} (pid {soak.proxy.pid})",
              flush=True)
        soak.run()
        for name, thread in (("watch", soak.watch), ("chaos", soak.chaos)):
            if thread.failure is not None:
                raise RuntimeError(f"the {name} thread failed: {thread.failure!r}")
        return report(soak, stamp)
    finally:
        if soak is not None:
            soak.load.stop(timeout=5)
            soak.proxy.stop()
        if topology is not None:
            topology.stop()
        if settings.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
