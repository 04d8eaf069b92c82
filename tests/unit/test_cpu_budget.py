"""benchmarks/cpu_budget.py: a run's CPU per transaction by who spent it, and what a reference
proxy's run leaves another proxy at a target TPS multiple."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpu_budget", BENCHMARKS / "cpu_budget.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cpu_budget"] = module  # dataclasses resolve the module's annotations by name
    spec.loader.exec_module(module)
    return module


cpu_budget = _load()


def bouncer() -> object:
    # 20 000 TPS on 2 CPUs: 100 µs a transaction; 90 busy (proxy 20, PostgreSQL 50, pgbench 15,
    # 5 for the rest), 10 idle
    return cpu_budget.Budget(capacity_us=100.0, busy_us=90.0, proxy_us=20.0, postgres_us=50.0,
                             pgbench_us=15.0)


def test_parts_add_up_to_the_capacity() -> None:
    b = bouncer()
    assert b.other_us == pytest.approx(5.0)
    assert b.idle_us == pytest.approx(10.0)
    assert b.fixed_us == pytest.approx(70.0)
    assert b.proxy_us + b.fixed_us + b.idle_us == pytest.approx(b.capacity_us)


def test_allowance_is_what_the_capacity_at_that_tps_leaves() -> None:
    b = bouncer()
    # at the same TPS a proxy may spend the reference's CPU and its idle time
    assert cpu_budget.proxy_allowance(b, 1.0) == pytest.approx(30.0)
    # 1.25x: 80 µs a transaction, 70 of them taken by the rest
    assert cpu_budget.proxy_allowance(b, 1.25) == pytest.approx(10.0)
    # 1.5x: 66.7 µs, less than the rest needs: no proxy can
    assert cpu_budget.proxy_allowance(b, 1.5) < 0


def test_ceiling_uses_up_the_idle_time() -> None:
    assert cpu_budget.ceiling(bouncer()) == pytest.approx(100.0 / 90.0)
    # a ceiling is the ratio at which the allowance is the reference's own CPU
    b = bouncer()
    assert cpu_budget.proxy_allowance(b, cpu_budget.ceiling(b)) == pytest.approx(b.proxy_us)


def test_measured_converts_ticks_and_seconds_per_transaction() -> None:
    # 10 000 transactions at 20 000 TPS on 2 CPUs, 100 ticks a second
    b = cpu_budget.measured(2, 20_000.0, 10_000, busy_ticks=90, proxy_ticks=20,
                            postgres_ticks=50, pgbench_s=0.15, clk_tck=100)
    assert b == bouncer()


def test_measured_survives_an_empty_run() -> None:
    b = cpu_budget.measured(2, 0.0, 0, busy_ticks=0, proxy_ticks=0, postgres_ticks=0,
                            pgbench_s=0.0, clk_tck=100)
    assert b.capacity_us == 0.0 and b.idle_us == 0.0
    assert cpu_budget.ceiling(b) == 0.0


def test_median_is_taken_field_by_field() -> None:
    runs = [cpu_budget.Budget(100.0, 90.0, 20.0, 50.0, 15.0),
            cpu_budget.Budget(120.0, 80.0, 30.0, 40.0, 10.0),
            cpu_budget.Budget(110.0, 85.0, 25.0, 60.0, 12.0)]
    assert cpu_budget.median(runs) == cpu_budget.Budget(110.0, 85.0, 25.0, 50.0, 12.0)


def test_reference_text_names_each_ratio() -> None:
    text = cpu_budget.reference_text("PgBouncer", bouncer(), (1.0, 1.2))
    assert "1.0x needs at most 30.0" in text
    assert "1.2x needs at most 13.3" in text
    assert "reaches at best 1.11x" in text
