"""Where a pgbench run's CPU went, per transaction, and what that leaves a proxy.

pgbench, PostgreSQL and the proxy share this machine's cores, so a proxy's TPS is bounded by
what the other two spend per transaction: at T transactions a second the machine has
CPUS / T seconds of CPU per transaction, and whatever PostgreSQL, pgbench and the rest of the
machine take of it is not the proxy's. From the reference proxy's runs (PgBouncer) this module
computes the most CPU per transaction another proxy may spend to reach a given multiple of the
reference's TPS, assuming PostgreSQL and pgbench cost what they cost behind the reference and no
CPU is left idle; and the best multiple a proxy that spends exactly the reference's CPU can
reach (the reference's idle CPU, used up). pgbench_bench.py records the parts of each run and
prints both; they say whether a TPS target can be met on this machine at all.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """One run's CPU per transaction, in µs, split by who spent it."""

    capacity_us: float  # CPUs / TPS: all the CPU time there was per transaction
    busy_us: float  # the machine's busy time (/proc/stat) per transaction processed
    proxy_us: float  # the proxy's process tree (0 for direct)
    postgres_us: float  # every PostgreSQL server's processes, exited backends included
    pgbench_us: float

    @property
    def other_us(self) -> float:
        """Kernel threads (softirq work for loopback traffic), this script, anything else."""
        return max(self.busy_us - self.proxy_us - self.postgres_us - self.pgbench_us, 0.0)

    @property
    def idle_us(self) -> float:
        return max(self.capacity_us - self.busy_us, 0.0)

    @property
    def fixed_us(self) -> float:
        """What the proxy cannot have: PostgreSQL, pgbench and the rest of the machine."""
        return self.postgres_us + self.pgbench_us + self.other_us


def measured(cpus: int, tps: float, transactions: int, busy_ticks: int, proxy_ticks: int,
             postgres_ticks: int, pgbench_s: float, clk_tck: int) -> Budget:
    """A run's budget from its counters: tick deltas of /proc (clk_tck per second), pgbench's
    CPU seconds (from the rusage of waited children) and its figures."""
    per_xact = 1e6 / clk_tck / max(transactions, 1)
    return Budget(capacity_us=cpus * 1e6 / tps if tps > 0 else 0.0,
                  busy_us=busy_ticks * per_xact, proxy_us=proxy_ticks * per_xact,
                  postgres_us=postgres_ticks * per_xact,
                  pgbench_us=pgbench_s * 1e6 / max(transactions, 1))


def median(budgets: list[Budget]) -> Budget:
    """Field by field median of a target's runs in one cell (at least one)."""
    return Budget(*(statistics.median(getattr(b, name) for b in budgets)
                    for name in Budget.__dataclass_fields__))


def proxy_allowance(reference: Budget, ratio: float) -> float:
    """The most CPU µs per transaction a proxy may spend to reach `ratio` times the reference's
    TPS, if PostgreSQL, pgbench and the rest cost what they did behind the reference and no CPU
    is idle (negative: no proxy can)."""
    return reference.capacity_us / ratio - reference.fixed_us


def ceiling(reference: Budget) -> float:
    """The best TPS multiple of the reference a proxy spending the reference's CPU per
    transaction can reach here: the reference's idle CPU, all of it used."""
    busy = reference.fixed_us + reference.proxy_us
    return reference.capacity_us / busy if busy > 0 else 0.0


def budget_text(name: str, b: Budget) -> str:
    return (f"  {name:<15} {b.capacity_us:>9.1f} {b.proxy_us:>7.1f} {b.postgres_us:>9.1f} "
            f"{b.pgbench_us:>8.1f} {b.other_us:>7.1f} {b.idle_us:>6.1f}")


BUDGET_HEAD = (f"  {'CPU µs/xact':<15} {'capacity':>9} {'proxy':>7} {'postgres':>9} "
               f"{'pgbench':>8} {'other':>7} {'idle':>6}")


def reference_text(label: str, reference: Budget, ratios: tuple[float, ...]) -> str:
    """One line on what `reference` leaves another proxy at each target ratio."""
    allowed = ", ".join(f"{r:.1f}x needs at most {proxy_allowance(reference, r):.1f}"
                        for r in ratios)
    return (f"  a proxy's TPS over {label}'s: {allowed} µs of proxy CPU per transaction "
            f"({label} spent {reference.proxy_us:.1f}); spending {label}'s CPU with none idle "
            f"reaches at best {ceiling(reference):.2f}x")
