"""The Prometheus endpoint: GET /metrics and GET /healthz over HTTP/1.1 on
general.host:prometheus_exporter_port (reference/pgcat.md §8).

Served inside the event loop (asyncio.start_server), never from a thread: the collector
(metrics.py) reads the App's dicts and sets, which only the loop may touch while they
change. The HTTP side is deliberately small and strict, since nothing here must disturb
the proxy: one request per connection (Connection: close), a request head of at most
MAX_HEAD bytes read within READ_TIMEOUT, origin-form targets only, and anything that is
not RFC 9112 gets 400. parse_request is sans-IO and tested without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from .metrics import AppCollector
from .workers.merge import merge_metrics

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

MAX_HEAD = 8192  # bytes of request line and headers; a scraper sends a few hundred
READ_TIMEOUT = 5.0  # seconds for the whole request head (slowloris)
WRITE_TIMEOUT = 10.0  # seconds to hand over the answer
END_OF_HEAD = b"\r\n\r\n"
TEXT = "text/plain; charset=utf-8"

# RFC 9110 §5.6.2 token; RFC 9112 §3.2.1 origin-form (visible ASCII, no space); §2.3.
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
TARGET = re.compile(rb"/[\x21-\x7e]*")
VERSION = re.compile(rb"HTTP/1\.[01]")
FIELD_VALUE = re.compile(rb"[\x21-\x7e\x80-\xff]*([ \t]+[\x21-\x7e\x80-\xff]+)*")
PRINTABLE = re.compile(rb"[\x20-\x7e]*")

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 500: "Internal Server Error", 503: "Service Unavailable"}


class BadRequest(Exception):
    """The request is not HTTP/1.x as RFC 9112 writes it."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query string
    version: str
    headers: dict[str, str]  # lower-case names


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self, head_only: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS[self.status]}",
                 f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}",
                 "Connection: close", *(f"{name}: {value}" for name, value in self.extra)]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return head if head_only else head + self.body


def head_of(buffer: bytes) -> bytes | None:
    """The request head at the start of ``buffer`` (END_OF_HEAD included), or None while
    more bytes are needed; BadRequest as soon as the bytes cannot become a request, so
    garbage is answered at once instead of after READ_TIMEOUT."""
    end = buffer.find(END_OF_HEAD)
    if end >= 0 and end + len(END_OF_HEAD) <= MAX_HEAD:
        return buffer[:end + len(END_OF_HEAD)]
    if len(buffer) >= MAX_HEAD:
        raise BadRequest("request head too large")
    line, crlf, _ = buffer.partition(b"\r\n")
    if crlf:
        _request_line(line)
    elif not PRINTABLE.fullmatch(line.removesuffix(b"\r")):
        raise BadRequest("not an HTTP request line")
    return None


def _request_line(line: bytes) -> tuple[str, str, str]:
    """method, target, version (RFC 9112 §3: one space between each)."""
    parts = line.split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not TARGET.fullmatch(parts[1]) \
            or not VERSION.fullmatch(parts[2]):
        raise BadRequest("malformed request line")
    method, target, version = (part.decode("ascii") for part in parts)
    return method, target, version


def parse_request(head: bytes) -> Request:
    """The request line and header fields of a head from head_of; BadRequest if off."""
    if not head.endswith(END_OF_HEAD):
        raise BadRequest("incomplete request head")
    request_line, *fields = head[:-len(END_OF_HEAD)].split(b"\r\n")
    method, target, version = _request_line(request_line)
    headers: dict[str, str] = {}
    for field in fields:
        name, colon, value = field.partition(b":")
        value = value.strip(b" \t")
        if not colon or not TOKEN.fullmatch(name) or not FIELD_VALUE.fullmatch(value):
            raise BadRequest("malformed header field")  # also obs-fold (§5.2) and bare LF
        key = name.decode("ascii").lower()
        if key == "host" and key in headers:
            raise BadRequest("more than one Host")  # RFC 9112 §3.2
        headers[key] = value.decode("latin-1")
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequest("HTTP/1.1 without Host")  # RFC 9112 §3.2
    return Request(method, target.split("?", 1)[0], version, headers)


class Exporter:
    """Answers the endpoint's requests from the running App."""

    def __init__(self, app: App, listener: asyncio.Server) -> None:
        self.app = app
        self.listener = listener
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AppCollector(app))

    def is_ready(self) -> bool:
        """The client listener is up and not shutting down (the App exists only with a
        loaded config): Kubernetes may send clients."""
        return self.listener.is_serving() and not self.app.shutting_down

    def respond(self, request: Request) -> Response:
        if request.path not in ("/metrics", "/healthz"):
            return Response(404, b"not found\n")
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed\n", extra=(("Allow", "GET, HEAD"),))
        if request.path == "/healthz":
            return Response(200, b"ready\n") if self.is_ready() else Response(
                503, b"not ready\n")
        try:
            body = generate_latest(self.registry)
        except Exception:  # a collector bug must cost a scrape, never the proxy
            log.exception("metrics collection failed")
            return Response(500, b"metrics collection failed\n")
        return Response(200, body, CONTENT_TYPE_LATEST)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one answer, then close."""
        try:
            answer = await self._answer(reader)
            if answer:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    writer.write(answer)
                    await writer.drain()
        except (OSError, TimeoutError) as exc:
            log.debug("metrics client went away: %s", exc)
        except Exception:  # never let one request's surprise reach the loop's handler
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes:
        """The bytes to send back; empty when the client left before asking anything."""
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await read_head(reader)
            if head is None:
                return b""
            request = parse_request(head)
        except BadRequest as exc:
            log.debug("metrics endpoint: bad request: %s", exc)
            return Response(400, b"bad request\n").encode()
        except TimeoutError:
            return Response(408, b"request timeout\n").encode()
        head_only = request.method == "HEAD"
        if (request.path == "/metrics" and request.method in ("GET", "HEAD")
                and self.app.peers is not None):
            return (await self._merged()).encode(head_only=head_only)
        return self.respond(request).encode(head_only=head_only)

    async def _merged(self) -> Response:
        """Every worker's metrics, added up (workers/merge.py)."""
        assert self.app.peers is not None
        try:
            mine = generate_latest(self.registry).decode()
            theirs = await self.app.peers.ask_all({"op": "metrics"})
            body = merge_metrics([mine, *(str(a.get("text", "")) for a in theirs)])
        except Exception:  # a collector bug must cost a scrape, never the proxy
            log.exception("metrics collection failed")
            return Response(500, b"metrics collection failed\n")
        return Response(200, body.encode(), CONTENT_TYPE_LATEST)


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """A request head (see head_of); None if the client closed without sending a byte."""
    buffer = b""
    while True:
        chunk = await reader.read(MAX_HEAD)
        if not chunk:
            if buffer:
                raise BadRequest("connection closed inside the request head")
            return None
        buffer += chunk
        head = head_of(buffer)
        if head is not None:
            return head


async def start_exporter(app: App, listener: asyncio.Server) -> asyncio.Server:
    """Listen on general.host:prometheus_exporter_port (OSError if it cannot); the caller
    runs the returned server's serve_forever(), whose cancellation closes it."""
    g = app.config.general
    exporter = Exporter(app, listener)
    server = await asyncio.start_server(exporter.handle, g.host, g.prometheus_exporter_port,
                                        reuse_address=True)
    log.info("Prometheus exporter on http://%s:%d/metrics", g.host, g.prometheus_exporter_port)
    return server
