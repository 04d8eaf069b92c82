"""The Grafana dashboard (k8s/components/monitoring/pgcat-py-dashboard.json): every query is
PromQL that parses (promql-parser, the Rust parser's Python binding), covers what the issue
asks to see (pools, clients waiting, maxwait, routing by role and shard, bans, latency), and
names only metrics and labels that a real pgcat-py scrape has: a proxy with the exporter in
front of the real topology, after some reads and writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser
import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.e2e.conftest import ProxyRunner, dsn
from tests.e2e.test_metrics import exporter_port, scrape
from tests.harness.proxy import proxy_config
from tests.harness.waiting import wait_for

DASHBOARD = (Path(__file__).resolve().parents[2] / "k8s" / "components" / "monitoring"
             / "pgcat-py-dashboard.json")
# Grafana's own variables, replaced by a duration before parsing (they are not PromQL).
GRAFANA_DURATIONS = re.compile(r"\$__(rate_)?interval|\$__range")
# Labels Prometheus adds to every series it scrapes; the exposition does not carry them.
TARGET_LABELS = {"instance", "job", "pod", "namespace", "container", "service", "endpoint"}
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")


@dataclass
class Query:
    """What one PromQL expression uses."""

    text: str
    metrics: set[str] = field(default_factory=set)
    grouping: set[str] = field(default_factory=set)  # labels of by (...)
    aggregated: dict[str, set[str]] = field(default_factory=dict)  # metric: by-labels over it
    matched: set[str] = field(default_factory=set)  # labels in {...} selectors


def analyse(text: str) -> Query:
    expr = promql_parser.parse(GRAFANA_DURATIONS.sub("5m", text))
    query = Query(text)
    enclosing: list[set[str]] = []

    def pre(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr):
            labels = set(node.modifier.labels) if node.modifier is not None else set()
            if node.modifier is not None and node.modifier.type != promql_parser.AggModifierType.By:
                raise AssertionError(f"only `by` grouping is checked: {text}")
            enclosing.append(labels)
            query.grouping |= labels
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {text}"
            query.metrics.add(node.name)
            query.aggregated.setdefault(node.name, set()).update(*enclosing)
            query.matched |= {m.name for m in node.matchers.matchers}

    def post(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr):
            enclosing.pop()

    promql_parser.walk(expr, pre_visit=pre, post_visit=post)
    return query


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def targets() -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in panels():
        for target in panel["targets"]:
            yield panel["title"], target


def variable_queries() -> list[tuple[str, str]]:
    """(selector, label) of each label_values() variable."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.fullmatch(variable["query"]["query"])
            assert match, variable
            found.append((match["selector"], match["label"]))
    return found


def all_queries() -> list[Query]:
    queries = [analyse(t["expr"]) for _, t in targets()]
    queries += [analyse(selector) for selector, _ in variable_queries()]
    return queries


def test_every_panel_has_a_unique_id_and_a_query() -> None:
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_query_is_promql_on_pgcat_metrics() -> None:
    for query in all_queries():
        assert query.metrics, query.text
        for metric in query.metrics:
            assert metric.startswith("pgcat_"), (metric, query.text)


def test_legends_name_only_grouped_labels() -> None:
    for title, target in targets():
        query = analyse(target["expr"])
        for label in LEGEND_LABEL.findall(target.get("legendFormat", "")):
            assert label in query.grouping, (title, label, target["expr"])


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    metrics: set[str] = set()
    groupings: dict[str, set[frozenset[str]]] = {}
    for query in all_queries():
        metrics |= query.metrics
        for metric, labels in query.aggregated.items():
            groupings.setdefault(metric, set()).add(frozenset(labels))
    # pools and server connections, clients waiting, maxwait
    assert {"pgcat_pools_cl_active", "pgcat_pools_cl_waiting", "pgcat_pools_maxwait",
            "pgcat_servers_active_count", "pgcat_databases_pool_size"} <= metrics
    # routing by role and by shard
    routes = groupings["pgcat_routes_total"]
    assert any("role" in g for g in routes) and any("shard" in g for g in routes)
    # bans, and latency from the histogram
    assert {"pgcat_bans", "pgcat_servers_is_banned", "pgcat_xact_time_seconds_bucket"} <= metrics
    assert any("le" in g for g in groupings["pgcat_xact_time_seconds_bucket"])


def children(pid: int) -> list[str]:
    """The processes `pid` started (Linux's /proc/PID/task/PID/children)."""
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def scraped(request: pytest.FixtureRequest, pg_topology: Topology, proxy_runner: ProxyRunner
            ) -> dict[str, list[set[str]]]:
    """{sample name: [label names of each sample]} from a real scrape after some traffic,
    from one process and from two workers (whose figures the exporter merges)."""
    port = exporter_port()
    workers: int = request.param
    text = proxy_config(pg_topology, port=free_port(), pool_size=10,
                        extra_general={"enable_prometheus_exporter": True,
                                       "prometheus_exporter_port": port,
                                       "worker_threads": workers},
                        extra_pool={"query_parser_enabled": True,
                                    "query_parser_read_write_splitting": True})
    running = proxy_runner(text)
    assert wait_for(lambda: len(children(running.pid)) == (workers if workers > 1 else 0)), \
        running.log_tail()
    with psycopg.connect(dsn(running), autocommit=True) as conn:
        for i in range(5):
            assert conn.execute("SELECT %s::int", (i,)).fetchone() == (i,)  # replica
        with conn.transaction():
            conn.execute("SELECT 1")  # primary
    samples: dict[str, list[set[str]]] = {}

    def read_all() -> bool:
        samples.clear()
        try:
            families = scrape(port)
        except OSError:  # worker 0's exporter may come up after the port already serves
            return False
        for family in families.values():
            for name, labels, _ in family:
                samples.setdefault(name, []).append(set(labels))
        return "pgcat_routes_total" in samples

    assert wait_for(read_all), running.log_tail()
    return samples


def test_every_metric_and_label_the_dashboard_queries_is_in_a_real_scrape(
        scraped: dict[str, list[set[str]]]) -> None:
    for query in all_queries():
        for metric in query.metrics:
            assert metric in scraped, f"{metric} is not exported ({query.text})"
            for labels in scraped[metric]:
                missing = (query.aggregated[metric] | query.matched) - labels - TARGET_LABELS
                assert not missing, f"{metric} has no label {missing} ({query.text})"
    for selector, label in variable_queries():
        for metric in analyse(selector).metrics:
            assert all(label in labels or label in TARGET_LABELS for labels in scraped[metric])
