"""db_activity_based_routing's tracker with the clock passed in: initializing, the table
mutation cache, time to idle, per shard, bounded."""

from __future__ import annotations

from pgcat_py import activity
from pgcat_py.activity import INITIALIZING, ActivitySettings, DbActivity

SETTINGS = ActivitySettings(init_delay_ms=100, ttl_s=900, mutation_ttl_ms=50)


def started(now: float = 1000.0) -> DbActivity:
    tracker = DbActivity(SETTINGS)
    assert tracker.primary_reason(now, 0, ["t"]) == INITIALIZING  # the first query
    return tracker


def test_reads_go_to_the_primary_while_the_pool_initializes() -> None:
    tracker = started()
    assert tracker.primary_reason(1000.099, 0, ["t"]) == INITIALIZING
    assert tracker.primary_reason(1000.100, 0, ["t"]) is None


def test_a_read_of_a_recently_written_table_goes_to_the_primary() -> None:
    tracker = started()
    tracker.note_write(1001.0, 0, ["orders", "public.audit"])
    assert tracker.primary_reason(1001.049, 0, ["orders"]) == "recently written table: orders"
    assert tracker.primary_reason(1001.049, 0, ["customers"]) is None
    assert tracker.primary_reason(1001.049, 0, ["audit"]) is not None  # schema or not
    assert tracker.primary_reason(1001.050, 0, ["orders"]) is None  # the ttl is over


def test_written_tables_are_per_shard() -> None:
    tracker = started()
    tracker.note_write(1001.0, 1, ["orders"])
    assert tracker.primary_reason(1001.01, 0, ["orders"]) is None
    assert tracker.primary_reason(1001.01, 1, ["public.orders"]) is not None


def test_another_write_extends_the_ttl() -> None:
    tracker = started()
    tracker.note_write(1001.0, 0, ["t"])
    tracker.note_write(1001.04, 0, ["t"])
    assert tracker.primary_reason(1001.08, 0, ["t"]) is not None


def test_a_pool_quiet_for_db_activity_ttl_initializes_again() -> None:
    tracker = started()
    assert tracker.primary_reason(1899.0, 0, ["t"]) is None
    assert tracker.primary_reason(2798.9, 0, ["t"]) is None  # 899.9 s quiet: still known
    assert tracker.primary_reason(3698.9, 0, ["t"]) == INITIALIZING  # 900 s: starts over
    assert tracker.primary_reason(3699.1, 0, ["t"]) is None


def test_expired_entries_are_dropped_and_memory_is_bounded() -> None:
    tracker = started()
    tracker.note_write(1001.0, 0, [f"t{i}" for i in range(100)])
    tracker.note_write(1002.0, 0, ["fresh"])
    assert tracker.remembered(1002.0) == [(0, "fresh")]
    assert len(tracker._written) == 1
    activity_max = activity.MAX_REMEMBERED_TABLES
    tracker.note_write(1003.0, 0, [f"n{i}" for i in range(activity_max + 10)])
    assert len(tracker._written) == activity_max
    assert tracker.primary_reason(1003.01, 0, [f"n{activity_max + 9}"]) is not None
