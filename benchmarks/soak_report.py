"""The soak's samples, their CSV and PNG, and the verdict.

Checks (each passes, fails, or is skipped when the run was too short to say):
- rss_growth: the highest RSS sampled under load after the warm-up, against the RSS at the
  end of the warm-up, grows less than RSS_GROWTH_LIMIT (needs two samples after warm-up);
- fds_back: once the clients have left and the idle servers have closed, the proxy has no
  more open fds than before the first client, when no server connection was open either
  (fds are read before the sampler opens its admin connection);
- no_unexpected_errors: see soak_errors.py;
- server_connections: on no server more `app` backends than pool_size (the pool's share of
  that server); while a reload rebuilds the pool, no more than twice that (old + new pool);
- clients_gone: SHOW POOLS says no client is active or waiting at the end.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RSS_GROWTH_LIMIT = 0.05
FD_SLACK = 0  # fds the end may have beyond the baseline


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the load started (the baseline: 0)
    phase: str  # baseline, warmup, load, after
    rss_kb: int
    fds: int
    processes: int
    primary_conns: int | None  # app backends now (None: the server did not answer)
    replica_conns: int | None
    primary_peak: int | None  # highest confirmed count since the last sample
    replica_peak: int | None
    rebuild_peak: int  # the same, inside pool-rebuild windows, any server
    sv_active: int
    sv_idle: int
    sv_login: int
    cl_active: int
    cl_waiting: int
    units: int  # work done since the last sample
    expected_errors: int  # since the start
    unexpected_errors: int
    error_classes: str  # "kind/class=count ..." since the start, unexpected ones marked !
    events: str  # chaos events since the last sample


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass, FAIL, skipped
    detail: str


def write_csv(path: Path, samples: list[Sample]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Sample)])
        writer.writeheader()
        for sample in samples:
            writer.writerow(asdict(sample))


def plot(path: Path, samples: list[Sample], events: list[tuple[float, str]], title: str) -> None:
    """Four panels over time: RSS, fds, server connections, errors; chaos events as lines."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    t = [s.t_s / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    axes[0].plot(t, [s.rss_kb / 1024 for s in samples], marker="o")
    axes[0].set_ylabel("proxy RSS (MiB)")
    axes[1].plot(t, [s.fds for s in samples], marker="o")
    axes[1].set_ylabel("open fds")
    for key, label in (("primary_peak", "primary peak"), ("replica_peak", "replica peak"),
                       ("sv_active", "SHOW POOLS sv_active"), ("sv_idle", "sv_idle")):
        axes[2].plot(t, [getattr(s, key) for s in samples], marker=".", label=label)
    axes[2].set_ylabel("server connections")
    axes[2].legend(fontsize="small")
    axes[3].plot(t, [s.expected_errors for s in samples], marker=".", label="expected")
    axes[3].plot(t, [s.unexpected_errors for s in samples], marker=".", label="unexpected")
    axes[3].set_ylabel("client errors (cumulative)")
    axes[3].set_xlabel("minutes")
    axes[3].legend(fontsize="small")
    for at, what in events:
        for ax in axes:
            ax.axvline(at / 60, color="red" if "replica" in what else "grey", alpha=0.3,
                       linewidth=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def verdict(samples: list[Sample], pool_size: int) -> list[Check]:
    return [_rss_growth(samples), _fds_back(samples), _errors(samples),
            _server_connections(samples, pool_size), _clients_gone(samples)]


def _rss_growth(samples: list[Sample]) -> Check:
    warm = [s for s in samples if s.phase == "warmup"]
    after = [s for s in samples if s.phase == "load"]
    if not warm or len(after) < 2:
        return Check("rss_growth", "skipped", "too short: needs 2 samples after the warm-up")
    start = warm[-1].rss_kb
    peak = max(s.rss_kb for s in after)
    growth = (peak - start) / start
    status = "pass" if growth < RSS_GROWTH_LIMIT else "FAIL"
    return Check("rss_growth", status, f"{start} kB after warm-up, peak {peak} kB under load: "
                 f"{growth:+.1%} (limit {RSS_GROWTH_LIMIT:.0%})")


def _fds_back(samples: list[Sample]) -> Check:
    baseline, end = samples[0], samples[-1]
    ok = end.phase == "after" and end.fds <= baseline.fds + FD_SLACK
    return Check("fds_back", "pass" if ok else "FAIL",
                 f"{baseline.fds} before the first client, {end.fds} after the last left "
                 f"(sv_idle {end.sv_idle}, sv_active {end.sv_active})")


def _errors(samples: list[Sample]) -> Check:
    end = samples[-1]
    ok = end.unexpected_errors == 0
    return Check("no_unexpected_errors", "pass" if ok else "FAIL",
                 f"{end.unexpected_errors} unexpected, {end.expected_errors} expected: "
                 f"{end.error_classes or 'none'}")


def _server_connections(samples: list[Sample], pool_size: int) -> Check:
    peaks = [p for s in samples for p in (s.primary_peak, s.replica_peak) if p is not None]
    rebuild = max((s.rebuild_peak for s in samples), default=0)
    most = max(peaks, default=0)
    ok = most <= pool_size and rebuild <= 2 * pool_size
    return Check("server_connections", "pass" if ok else "FAIL",
                 f"at most {most} per server (pool_size {pool_size}); {rebuild} while a "
                 f"reload rebuilt the pool (limit {2 * pool_size})")


def _clients_gone(samples: list[Sample]) -> Check:
    end = samples[-1]
    ok = end.phase == "after" and end.cl_active == end.cl_waiting == 0
    return Check("clients_gone", "pass" if ok else "FAIL",
                 f"cl_active {end.cl_active}, cl_waiting {end.cl_waiting} at the end")


def write_verdict(path: Path, checks: list[Check], extra: Mapping[str, object]) -> None:
    path.write_text(json.dumps({"checks": [asdict(c) for c in checks], **extra}, indent=2)
                    + "\n")


def print_verdict(checks: list[Check]) -> None:
    print("\nverdict:")
    for check in checks:
        print(f"  {check.status:<7} {check.name}: {check.detail}")
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'all checks passed'}")
