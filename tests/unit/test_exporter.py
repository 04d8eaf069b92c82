"""The metrics endpoint's HTTP side (pgcat_py/exporter.py) without sockets: request heads fed
whole, byte by byte and as garbage, and the answers to each path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pgcat_py.app import App
from pgcat_py.config.loader import parse_config
from pgcat_py.exporter import MAX_HEAD, BadRequest, Exporter, Request, head_of, parse_request

GET = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9930\r\nAccept: */*\r\n\r\n"
CONFIG = """
[general]
admin_username = "admin"
admin_password = "admin_pw"
[pools.app.users.0]
username = "alice"
password = "alice_pw"
pool_size = 5
[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", 5432, "primary"]]
"""


def test_a_scrapers_request_parses() -> None:
    request = parse_request(GET)
    assert request == Request("GET", "/metrics", "HTTP/1.1",
                              {"host": "127.0.0.1:9930", "accept": "*/*"})


def test_the_query_string_is_not_part_of_the_path() -> None:
    assert parse_request(b"GET /healthz?x=1 HTTP/1.0\r\n\r\n").path == "/healthz"


def test_a_head_fed_byte_by_byte_completes_only_at_its_end() -> None:
    for end in range(1, len(GET)):
        assert head_of(GET[:end]) is None
    assert head_of(GET) == GET


def test_bytes_after_the_head_are_not_part_of_it() -> None:
    assert head_of(GET + b"garbage") == GET


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # a PostgreSQL SSLRequest
    b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
    b"hello there\r\n",
    b"GET  /metrics HTTP/1.1\r\n",
    b"GET metrics HTTP/1.1\r\n",
    b"GET /metrics HTTP/2.0\r\n",
])
def test_garbage_is_refused_before_the_end_of_a_head(garbage: bytes) -> None:
    with pytest.raises(BadRequest):
        head_of(garbage)


def test_a_head_too_large_is_refused() -> None:
    with pytest.raises(BadRequest):
        head_of(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_HEAD)


@pytest.mark.parametrize("head", [
    b"GET /metrics HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n",  # space before the colon
    b"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",  # obs-fold
    b"GET /metrics HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",  # bare LF
    b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
])
def test_malformed_heads_are_refused(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_request(head)


@pytest.fixture
def exporter() -> Exporter:
    listener = SimpleNamespace(is_serving=lambda: True)
    return Exporter(App(parse_config(CONFIG).config), listener)  # type: ignore[arg-type]


def get(path: str, method: str = "GET") -> Request:
    return Request(method, path, "HTTP/1.1", {"host": "x"})


def test_metrics_answers_the_exposition(exporter: Exporter) -> None:
    response = exporter.respond(get("/metrics"))
    assert response.status == 200
    assert response.content_type.startswith("text/plain; version=")
    assert b"\npgcat_databases_pool_size{" in response.body
    encoded = response.encode()
    assert encoded.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in encoded
    assert f"\r\nContent-Length: {len(response.body)}\r\n".encode() in encoded


def test_head_gets_the_headers_only(exporter: Exporter) -> None:
    response = exporter.respond(get("/metrics", "HEAD"))
    assert response.encode(head_only=True).endswith(b"\r\n\r\n")


def test_healthz_is_ready_until_shutdown(exporter: Exporter) -> None:
    assert exporter.respond(get("/healthz")).status == 200
    exporter.app.shutting_down = True
    assert exporter.respond(get("/healthz")).status == 503


def test_healthz_is_not_ready_without_the_listener(exporter: Exporter) -> None:
    exporter.listener = SimpleNamespace(is_serving=lambda: False)  # type: ignore[assignment]
    assert exporter.respond(get("/healthz")).status == 503


def test_unknown_paths_are_404_and_other_methods_405(exporter: Exporter) -> None:
    assert exporter.respond(get("/")).status == 404
    assert exporter.respond(get("/metrics/")).status == 404
    response = exporter.respond(get("/metrics", "POST"))
    assert response.status == 405 and ("Allow", "GET, HEAD") in response.extra


def test_a_failing_collector_costs_a_500_not_the_proxy(exporter: Exporter) -> None:
    exporter.app.pools = None  # type: ignore[assignment]
    assert exporter.respond(get("/metrics")).status == 500
