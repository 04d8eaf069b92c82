"""How many worker processes, which one this is, and its share of every pool.

`worker_threads` (pgcat's key) asks for that many workers; the count is capped at the CPUs
the process may use, and so that every worker gets at least MIN_SHARE connections of the
smallest pool, because pool_size stays a total per (pool, user, server): each worker opens
at most its share (a pool of 11 over 2 workers is 6 + 5 connections). The trade-off of
dividing (rather than lending connections between workers through the supervisor): a worker
whose share is busy makes its clients wait even when another worker has an idle connection.
The kernel spreads clients evenly over the workers, so with shares of several connections
that is rare, and it keeps the hot path free of any cross-process coordination; a pool too
small to share (under 2 * MIN_SHARE) keeps the proxy in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Config

ENV_WORKER = "PGCAT_PY_WORKER"  # "<index>/<count>", set by the supervisor for its workers
ENV_RUNTIME = "PGCAT_PY_RUNTIME_DIR"  # where the workers' control sockets live


@dataclass(frozen=True, slots=True)
class Worker:
    index: int
    count: int
    runtime_dir: str

    def socket_path(self, index: int) -> str:
        return os.path.join(self.runtime_dir, f"w{index}.sock")

    def owns(self, process_id: int) -> int:
        """The worker a client's cancel key names (its process id modulo the count)."""
        return process_id % self.count

    def share(self, total: int) -> int:
        """This worker's part of ``total`` connections (the first ones get the remainder)."""
        return share(total, self.index, self.count)


SINGLE = Worker(0, 1, "")


def share(total: int, index: int, count: int) -> int:
    return total // count + (1 if index < total % count else 0)


def from_env() -> Worker:
    """This process's place, as the supervisor said; SINGLE when run on its own."""
    spec = os.environ.get(ENV_WORKER)
    if not spec:
        return SINGLE
    index, _, count = spec.partition("/")
    return Worker(int(index), int(count), os.environ.get(ENV_RUNTIME, ""))


CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cpus(cpu_max: str = CPU_MAX) -> int:
    """CPUs this process may use: its affinity, and in a container its CPU limit (a
    Kubernetes limits.cpu of 2 shows as a quota of 2 periods; rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        with open(cpu_max) as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read
    return cpus


MIN_SHARE = 5  # connections per worker of the smallest pool, at least


def worker_count(config: Config) -> int:
    """worker_threads, capped at the usable CPUs and at MIN_SHARE connections per worker."""
    sizes = [config.effective(name, user).pool_size // MIN_SHARE
             for name, pool in config.pools.items() for user in pool.user_list]
    return max(1, min(config.general.worker_threads, usable_cpus(), *sizes))
