"""How many workers, and each one's share of a pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgcat_py.workers.layout import share, usable_cpus


@pytest.mark.parametrize(("total", "count"), [(11, 2), (10, 2), (20, 3), (5, 1), (7, 4)])
def test_shares_add_up_to_the_total(total: int, count: int) -> None:
    shares = [share(total, i, count) for i in range(count)]
    assert sum(shares) == total and max(shares) - min(shares) <= 1


@pytest.mark.parametrize(("cpu_max", "limit"), [("200000 100000", 2), ("150000 100000", 2),
                                                 ("50000 100000", 1), ("max 100000", None)])
def test_a_container_cpu_limit_caps_the_workers(tmp_path: Path, cpu_max: str,
                                                limit: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    unlimited = usable_cpus(str(tmp_path / "absent"))
    assert usable_cpus(str(path)) == (unlimited if limit is None else min(limit, unlimited))
