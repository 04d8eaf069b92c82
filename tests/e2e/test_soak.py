"""benchmarks/soak.py, bounded: the same script for 25 seconds with a sample every 5, a
replica crash and restart, and reloads of both kinds. Of the verdict, the checks a short run
can answer must pass: no unexpected client error, never more server connections than the
pool allows, every client and fd gone at the end. (RSS growth needs minutes after a warm-up:
the lead's 30-minute run answers it.)"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgcat_py.localpg import PgBinariesNotFound, find_pg_bin

REPO = Path(__file__).resolve().parents[2]
SHORT_RUN = ["--seconds", "25", "--interval", "5", "--warmup", "10", "--replica-every", "8",
             "--replica-down", "4", "--reload-every", "4"]
MUST_PASS = ("no_unexpected_errors", "server_connections", "fds_back", "clients_gone")

pytestmark = [pytest.mark.timeout(300), pytest.mark.pg]


def test_a_short_soak_leaks_nothing_and_fails_no_client(tmp_path: Path) -> None:
    try:
        find_pg_bin()
    except PgBinariesNotFound as exc:
        pytest.skip(str(exc))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), *SHORT_RUN,
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=280, check=False)
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), output  # 1: a check failed; anything else: a crash
    [verdict_path] = tmp_path.glob("soak-*.json")
    result = json.loads(verdict_path.read_text())
    checks = {check["name"]: check for check in result["checks"]}
    for name in MUST_PASS:
        assert checks[name]["status"] == "pass", (checks[name], output)
    assert all(result["work"].get(kind, 0) > 0 for kind in (
        "read", "write", "transaction", "prepared", "asyncpg", "cancel", "storm")), output
    events = " ".join(what for _, what in result["events"])
    assert "replica killed" in events and "replica restarted" in events, events
    assert "SIGHUP" in events and "RELOAD" in events, events
    with verdict_path.with_suffix(".csv").open() as rows:
        phases = [row["phase"] for row in csv.DictReader(rows)]
    assert phases[0] == "baseline" and phases[-1] == "after" and len(phases) >= 6, phases
    assert verdict_path.with_suffix(".png").stat().st_size > 0
