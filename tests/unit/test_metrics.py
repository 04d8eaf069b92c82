"""The collector (pgcat_py/metrics.py) on an App that never started: pgcat's families,
names, labels and units, read from the pools' plain counters at scrape time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from pgcat_py.app import App
from pgcat_py.backend.server import XACT_TIME_BOUNDS
from pgcat_py.config.loader import parse_config
from pgcat_py.metrics import ADDRESS_LABELS, AppCollector, cumulative
from pgcat_py.pool.server_pool import ServerPool

CONFIG = """
[general]
admin_username = "admin"
admin_password = "admin_pw"

[pools.app.users.0]
username = "alice"
password = "alice_pw"
pool_size = 5

[pools.app.shards.0]
database = "app_db"
servers = [["10.0.0.1", 5432, "primary"], ["10.0.0.2", 5432, "replica"]]

[pools.app.shards.1]
database = "app_db"
servers = [["10.0.0.3", 5432, "primary"]]
"""


@pytest.fixture
def app() -> App:
    return App(parse_config(CONFIG).config)


def scrape(app: App) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Family name (as the parser names it) -> its samples."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app))
    text = generate_latest(registry).decode()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def pool_at(app: App, shard: int, index: int) -> ServerPool:
    return app.pools[("app", "alice")].cluster.shards[shard][index]


def value(samples: list[tuple[str, dict[str, str], float]], **labels: str) -> float:
    found = [v for _, got, v in samples if labels.items() <= got.items()]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_address_labels_are_pgcats(app: App) -> None:
    samples = scrape(app)["pgcat_stats_total_query_count"]
    assert sorted(tuple(labels[k] for k in ADDRESS_LABELS) for _, labels, _ in samples) == [
        ("app_db", "10.0.0.1", "0", "app", "primary", "0", "alice"),
        ("app_db", "10.0.0.2", "1", "app", "replica", "0", "alice"),
        ("app_db", "10.0.0.3", "0", "app", "primary", "1", "alice"),
    ]


def test_counters_keep_pgcats_names_without_a_total_suffix(app: App) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app))
    text = generate_latest(registry).decode()
    assert "# TYPE pgcat_stats_total_query_count untyped" in text
    assert "\npgcat_stats_total_query_count{" in text
    assert "pgcat_stats_total_query_count_total" not in text
    assert "\npgcat_servers_bytes_sent_total" not in text


def test_units_are_pgcats_ms_and_us(app: App) -> None:
    pool = pool_at(app, 0, 0)
    pool.totals.query_time = 1.5
    pool.totals.wait_time = 0.002
    pool.totals.xact_time = 0.25
    metrics = scrape(app)
    assert value(metrics["pgcat_stats_total_query_time"], host="10.0.0.1") == 1500
    assert value(metrics["pgcat_stats_total_wait_time"], host="10.0.0.1") == 2000
    assert value(metrics["pgcat_stats_total_xact_time"], host="10.0.0.1") == 250


def test_averages_convert_query_time_to_ms_and_keep_wait_time_in_us(app: App) -> None:
    pool = pool_at(app, 0, 1)
    pool.averages.query_time = 2500  # µs per query
    pool.averages.wait_time = 40
    metrics = scrape(app)
    assert value(metrics["pgcat_stats_avg_query_time"], host="10.0.0.2") == 2.5
    assert value(metrics["pgcat_stats_avg_wait_time"], host="10.0.0.2") == 40


def test_servers_family_lists_only_addresses_with_a_connection(app: App) -> None:
    assert scrape(app)["pgcat_servers_login_count"] == []
    pool_at(app, 1, 0).opening = 1
    samples = scrape(app)["pgcat_servers_login_count"]
    assert [(labels["host"], v) for _, labels, v in samples] == [("10.0.0.3", 1)]


def test_live_connections_count_with_the_closed_ones(app: App) -> None:
    pool = pool_at(app, 0, 0)
    pool.totals.query_count = 10
    live = SimpleNamespace(xact_count=2, query_count=3, bytes_received=100, bytes_sent=50,
                           xact_time=0.0, query_time=0.0, errors=0,
                           statements=SimpleNamespace(hits=7, misses=2, evictions=1))
    pool.idle.append(live)  # type: ignore[arg-type]
    metrics = scrape(app)
    assert value(metrics["pgcat_stats_total_query_count"], host="10.0.0.1") == 13
    assert value(metrics["pgcat_servers_bytes_received"], host="10.0.0.1") == 100
    assert value(metrics["pgcat_servers_idle_count"], host="10.0.0.1") == 1
    assert value(metrics["pgcat_prepared_cache_hits"], host="10.0.0.1") == 7
    assert value(metrics["pgcat_prepared_cache_evictions"], host="10.0.0.1") == 1
    assert value(metrics["pgcat_databases_current_connections"], host="10.0.0.1") == 1
    assert value(metrics["pgcat_databases_pool_size"], host="10.0.0.1") == 5


def test_a_banned_replica_is_counted(app: App) -> None:
    pool_at(app, 0, 1).ban("test")
    metrics = scrape(app)
    assert value(metrics["pgcat_bans"], pool="app", user="alice") == 1


def test_routes_are_a_counter_with_total(app: App) -> None:
    app.stats.count_route(("app", "alice", 1, "primary", "sharding key"))
    samples = scrape(app)["pgcat_routes"]
    assert samples == [("pgcat_routes_total", {"pool": "app", "user": "alice", "shard": "1",
                                                "role": "primary", "reason": "sharding key"},
                        1.0)]


def test_pools_family_has_pool_and_user(app: App) -> None:
    metrics = scrape(app)
    for name in ("cl_idle", "cl_active", "cl_waiting", "sv_idle", "sv_active", "sv_login",
                 "sv_tested", "maxwait", "maxwait_us"):
        assert [labels for _, labels, _ in metrics[f"pgcat_pools_{name}"]] == [
            {"pool": "app", "user": "alice"}]


def test_xact_histogram_is_cumulative_and_counts_every_transaction(app: App) -> None:
    pool = pool_at(app, 0, 0)
    pool.xact_buckets[0] = 2
    pool.xact_buckets[3] = 1
    pool.xact_buckets[-1] = 1  # above the last bound
    pool.totals.xact_count = 4
    pool.totals.xact_time = 12.5
    samples = scrape(app)["pgcat_xact_time_seconds"]
    buckets = [(labels["le"], v) for name, labels, v in samples
               if name.endswith("_bucket") and labels["host"] == "10.0.0.1"]
    assert buckets[0] == (str(XACT_TIME_BOUNDS[0]), 2)
    assert buckets[3][1] == 3 and buckets[-2][1] == 3
    assert buckets[-1] == ("+Inf", 4)
    assert value([s for s in samples if s[0].endswith("_count")], host="10.0.0.1") == 4
    assert value([s for s in samples if s[0].endswith("_sum")], host="10.0.0.1") == 12.5


def test_cumulative_ends_with_inf() -> None:
    counts = [1] * (len(XACT_TIME_BOUNDS) + 1)
    pairs = cumulative(counts)
    assert pairs[-1] == ("+Inf", len(counts))
    assert [v for _, v in pairs] == list(range(1, len(counts) + 1))
