"""The Prometheus exporter through a real proxy (reference/pgcat.md §8): every pgcat family
with its labels after psycopg traffic, counters that move with queries, the transaction
histogram, /healthz, and an HTTP side that refuses garbage without disturbing the proxy.
"""

from __future__ import annotations

import http.client
import random
import socket
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from pgcat_py.localpg import Topology, free_port
from pgcat_py.localpg.create import port_is_free
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(120)

ADDRESS = {"database", "host", "index", "pool", "role", "shard", "username"}
POOL = {"pool", "user"}
FAMILIES = {  # pgcat's (§8), then ours
    **{f"pgcat_stats_{name}": ADDRESS for name in (
        "total_query_count", "total_query_time", "total_received", "total_sent",
        "total_xact_count", "total_xact_time", "total_wait_time", "avg_query_count",
        "avg_query_time", "avg_recv", "avg_sent", "avg_errors", "avg_xact_count",
        "avg_xact_time", "avg_wait_time")},
    **{f"pgcat_pools_{name}": POOL for name in (
        "cl_idle", "cl_active", "cl_waiting", "sv_idle", "sv_active", "sv_login",
        "sv_tested", "maxwait", "maxwait_us")},
    **{f"pgcat_servers_{name}": ADDRESS for name in (
        "bytes_received", "bytes_sent", "transaction_count", "query_count", "error_count",
        "idle_count", "active_count", "login_count", "tested_count", "is_banned",
        "is_paused")},
    "pgcat_databases_pool_size": ADDRESS,
    "pgcat_databases_current_connections": ADDRESS,
    "pgcat_routes": {"pool", "user", "shard", "role", "reason"},
    "pgcat_prepared_cache_hits": ADDRESS,
    "pgcat_prepared_cache_misses": ADDRESS,
    "pgcat_prepared_cache_evictions": ADDRESS,
    "pgcat_bans": POOL,
    "pgcat_xact_time_seconds": ADDRESS,
}
Samples = dict[str, list[tuple[str, dict[str, str], float]]]


def exporter_port() -> int:
    """pgcat reads prometheus_exporter_port as an i16: a free port below 32768 (the
    kernel's ephemeral ones, which free_port() hands out, are above)."""
    while True:
        port = random.randrange(20000, 32767)
        if port_is_free(port):
            return port


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> Iterator[tuple[ProxyProcess, int]]:
    port = exporter_port()
    text = proxy_config(pg_topology, port=free_port(), pool_size=2,
                        extra_general={"enable_prometheus_exporter": True,
                                       "prometheus_exporter_port": port},
                        extra_pool={"default_role": "primary"})
    running = proxy_runner(text)
    assert wait_for(lambda: _listening(port)), running.log_tail()
    yield running, port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def get(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, _, body = get(port, "/metrics")
    assert status == 200
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(body.decode())}


def run_queries(proxy: ProxyProcess, count: int) -> None:
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        for i in range(count):
            assert conn.execute("SELECT %s::int", (i,)).fetchone() == (i,)


def primary(samples: Samples, family: str, suffix: str = "") -> float:
    found = [v for name, labels, v in samples[family]
             if name == family + suffix and labels.get("role") == "primary"]
    assert len(found) == 1, samples[family]
    return found[0]


def test_a_scrape_holds_every_family_with_its_labels(proxy: tuple[ProxyProcess, int]) -> None:
    running, port = proxy
    run_queries(running, 3)
    samples = scrape(port)
    for family, labels in FAMILIES.items():
        assert samples.get(family), f"{family} missing or empty"
        for name, got, _ in samples[family]:
            extra = {"le"} if name.endswith("_bucket") else set()
            assert set(got) == labels | extra, (family, got)
    roles = {labels["role"] for _, labels, _ in samples["pgcat_stats_total_query_count"]}
    assert roles == {"primary", "replica"}


def test_counters_move_after_queries(proxy: tuple[ProxyProcess, int]) -> None:
    running, port = proxy
    run_queries(running, 1)
    before = scrape(port)
    run_queries(running, 5)
    after = scrape(port)
    for family in ("pgcat_stats_total_query_count", "pgcat_stats_total_xact_count",
                   "pgcat_servers_query_count", "pgcat_servers_transaction_count"):
        assert primary(after, family) >= primary(before, family) + 5, family
    for family in ("pgcat_stats_total_received", "pgcat_stats_total_sent",
                   "pgcat_servers_bytes_received", "pgcat_servers_bytes_sent"):
        assert primary(after, family) > primary(before, family), family
    assert primary(after, "pgcat_stats_total_query_time") > 0
    routes = sum(v for _, _, v in after["pgcat_routes"])
    assert routes >= sum(v for _, _, v in before["pgcat_routes"]) + 5


def test_the_histogram_counts_every_transaction(proxy: tuple[ProxyProcess, int]) -> None:
    running, port = proxy
    run_queries(running, 4)
    samples = scrape(port)
    xacts = primary(samples, "pgcat_stats_total_xact_count")
    assert xacts >= 4
    assert primary(samples, "pgcat_xact_time_seconds", "_count") == xacts
    assert primary(samples, "pgcat_xact_time_seconds", "_sum") > 0
    inf = [v for name, labels, v in samples["pgcat_xact_time_seconds"]
           if name.endswith("_bucket") and labels["role"] == "primary" and labels["le"] == "+Inf"]
    assert inf == [xacts]


def test_metrics_content_type_and_healthz(proxy: tuple[ProxyProcess, int]) -> None:
    _, port = proxy
    status, content_type, _ = get(port, "/metrics")
    assert (status, content_type) == (200, CONTENT_TYPE_LATEST)
    assert get(port, "/healthz")[::2] == (200, b"ready\n")
    assert get(port, "/nope")[0] == 404


def raw_exchange(port: int, data: bytes, close_write: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(("garbage", "close_write"), [
    (b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", False),
    (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", False),  # a PostgreSQL SSLRequest
    (b"GET /metrics HTTP/1.1\r\n\r\n", False),  # no Host
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", True),  # the client stops mid-head
])
def test_garbage_gets_400_and_the_proxy_still_serves(proxy: tuple[ProxyProcess, int],
                                                     garbage: bytes, close_write: bool) -> None:
    running, port = proxy
    answer = raw_exchange(port, garbage, close_write)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"\r\nConnection: close\r\n" in answer
    run_queries(running, 1)
    assert get(port, "/metrics")[0] == 200
    assert running.is_running()


def test_one_request_per_connection(proxy: tuple[ProxyProcess, int]) -> None:
    _, port = proxy
    twice = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2
    answer = raw_exchange(port, twice)
    assert answer.count(b"HTTP/1.1 200 OK") == 1 and answer.endswith(b"ready\n")


