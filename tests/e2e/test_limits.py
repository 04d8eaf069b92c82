"""Limits a hostile client can hit (issue 14 item 5): each has a limit, a clear error, a test.

- max_client_conn: a login flood from one address (connections that never finish their
  startup) takes the slots; the next client gets FATAL 53300 at once, and
  client_login_timeout ends the flood with FATAL 08006, after which clients get in again.
- slowloris startup packets (a byte at a time): ended by client_login_timeout; meanwhile
  other clients log in as fast as ever.
- per-message size: PostgreSQL's own limits (pq_getmessage): 10000 bytes for most message
  types, 1 GiB - 2 for Query, Parse, Bind, FunctionCall and CopyData. At the small limit a
  message is taken and answered as PostgreSQL answers it; one byte over it is FATAL 08P01
  and the close (PostgreSQL closes without a word). (A
  declared 1 GiB, and lengths that cannot be, are in test_bad_input.py; a 64 MB Query
  streaming through is in test_memory.py.)
- a client that reads nothing while its server streams a big result: the proxy stops
  reading that server (backpressure), so the server waits in ClientWrite and the proxy's
  memory stays flat; the client then gets every row.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.startup import StartupMessage
from pgcat_py.protocol.wire import i32
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, describe, error_of

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)

MB = 1024 * 1024
LOGIN_TIMEOUT_MS = 1000
TOO_MANY_CONNECTIONS = "53300"
CONNECTION_FAILURE = "08006"
PROTOCOL_VIOLATION = "08P01"
PQ_SMALL_MESSAGE_LIMIT = 10000  # src/backend/libpq/pqcomm.c, counted with the length itself


def start(runner: ProxyRunner, topology: Topology, pool_size: int = 2,
          **general: int) -> ProxyProcess:
    return runner(proxy_config(
        topology, port=free_port(), pool_size=pool_size,
        extra_general={"client_login_timeout": LOGIN_TIMEOUT_MS, **general},
        extra_pool={"default_role": "primary"}))


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed_login(proxy: ProxyProcess) -> float:
    """Seconds a psycopg client takes to log in and run one query."""
    started = time.monotonic()
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    return time.monotonic() - started


def assert_ended_by_login_timeout(client: RawClient, since: float) -> None:
    """FATAL 08006 "canceling authentication due to timeout", about the timeout after
    ``since``, then the close."""
    messages = client.read_until_closed()
    took = time.monotonic() - since
    error = error_of(messages)
    assert error is not None, describe(messages)
    assert (error.severity, error.sqlstate) == ("FATAL", CONNECTION_FAILURE), error.fields
    assert "timeout" in error.text
    assert LOGIN_TIMEOUT_MS / 1000 - 0.1 < took < LOGIN_TIMEOUT_MS / 1000 + 2.0, took


# --- max_client_conn and a login flood from one address -----------------------------------
def test_login_flood_takes_max_client_conn_then_the_login_timeout_frees_it(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    slots = 30
    proxy = start(proxy_runner, pg_topology, max_client_conn=slots)
    timed_login(proxy)  # warm: the pool knows its server
    fds, rss = open_fds(proxy.pid), status_kb(proxy.pid, "VmRSS")
    started = time.monotonic()
    flood = [RawClient.connect(proxy.host, proxy.port, timeout=10) for _ in range(slots)]
    for i, client in enumerate(flood):
        startup = StartupMessage({"user": "app", "database": "app"}).encode()
        if i % 3 == 1:
            client.send(startup[:9])  # half a startup packet
        elif i % 3 == 2:
            client.send(startup)  # then never answers the password request
    time.sleep(0.2)
    # Every slot is taken: the next client is refused at once, and told why.
    refused_at = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="sorry, too many clients already"):
        psycopg.connect(dsn(proxy))
    with RawClient.connect(proxy.host, proxy.port) as late:
        error = error_of(late.startup("app", "app", "app"))
        assert error is not None and (error.severity, error.sqlstate) == (
            "FATAL", TOO_MANY_CONNECTIONS), error
    assert time.monotonic() - refused_at < 0.5
    assert open_fds(proxy.pid) - fds <= slots + 2
    assert status_kb(proxy.pid, "VmRSS") - rss < 8 * 1024, "the flood grew the proxy by 8 MB"
    # The login timeout ends each of them; then the slots are free again.
    for client in flood:
        with client:
            assert_ended_by_login_timeout(client, started)
    assert timed_login(proxy) < 1.0
    assert open_fds(proxy.pid) <= fds + 1
    assert "Traceback" not in proxy.log_text()


def test_slowloris_startup_packets_are_ended_by_the_login_timeout_and_block_no_login(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, pg_topology)
    baseline = max(timed_login(proxy) for _ in range(3))
    packet = StartupMessage({"user": "app", "database": "app",
                             "application_name": "slowloris"}).encode()
    slow = [RawClient.connect(proxy.host, proxy.port, timeout=10) for _ in range(20)]
    started = time.monotonic()
    stop = threading.Event()

    def trickle() -> None:  # a byte every 50 ms each: the packets would take 2.5 s
        for byte in packet:
            for client in slow:
                with contextlib.suppress(OSError):  # ended by the proxy
                    client.send(bytes([byte]))
            if stop.wait(0.05):
                return

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        logins = [timed_login(proxy) for _ in range(10)]  # while they trickle
        assert max(logins) < max(0.5, 3 * baseline), logins
        for client in slow:
            with client:
                assert_ended_by_login_timeout(client, started)
    finally:
        stop.set()
        trickler.join()
    assert len(packet) * 0.05 > LOGIN_TIMEOUT_MS / 1000 + 0.5  # none could have finished
    assert "Traceback" not in proxy.log_text()


# --- per-message size -------------------------------------------------------------------
def sized(msg_type: bytes, kind: bytes, length: int) -> bytes:
    """A Describe or Close of a statement whose name makes the declared length ``length``
    (type byte excluded, length field included), well formed."""
    name = b"n" * (length - 4 - 1 - 1)  # kind byte and the name's NUL
    return msg_type + i32(length) + kind + name + b"\0"


def answer_to(client: RawClient, message: bytes) -> tuple[str | None, str | None, bool]:
    """(severity, SQLSTATE) of the error ``message`` + Sync gets, and whether the session
    is still usable after it."""
    client.send(message + fe.Sync().encode())
    messages = client.read_until(b"Z")
    error = error_of(messages)
    alive = bool(messages) and messages[-1][0] == ord("Z")
    return (error.severity if error else None, error.sqlstate if error else None, alive)


@pytest.mark.parametrize("msg_type", [b"D", b"C"], ids=["describe", "close"])
@pytest.mark.parametrize("length", [PQ_SMALL_MESSAGE_LIMIT, PQ_SMALL_MESSAGE_LIMIT + 1],
                         ids=["at_the_limit", "one_byte_over"])
def test_small_message_limit_is_postgresqls(
        pg_topology: Topology, proxy_runner: ProxyRunner, msg_type: bytes,
        length: int) -> None:
    proxy = start(proxy_runner, pg_topology)
    message = sized(msg_type, b"S", length)
    primary = pg_topology.primary
    answers = []
    for host, port in ((proxy.host, proxy.port), (primary.host, primary.port)):
        with RawClient.connect(host, port) as client:
            client.login("app", "app", "app")
            answers.append(answer_to(client, message))
    through_proxy, direct = answers
    if length > PQ_SMALL_MESSAGE_LIMIT:
        # PostgreSQL only logs "invalid message length" (COMMERROR) and closes; the proxy
        # closes too, and tells the client why.
        assert direct == (None, None, False), answers
        assert through_proxy == ("FATAL", PROTOCOL_VIOLATION, False), answers
    else:  # taken, and answered as PostgreSQL answers it; the session goes on
        assert through_proxy[2] and direct[2], answers
        assert through_proxy[1] != PROTOCOL_VIOLATION, answers
        assert through_proxy[1] == direct[1], answers


# --- a client that reads nothing --------------------------------------------------------
def test_client_that_reads_nothing_gets_backpressure_not_a_growing_proxy(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    rows, width = 50_000, 1000  # 50 MB: more than every socket buffer on the way holds
    proxy = start(proxy_runner, pg_topology)
    with RawClient.connect(proxy.host, proxy.port, timeout=20) as reader:
        reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        reader.login("app", "app")
        pid_rows = reader.query("SELECT pg_backend_pid()")
        backend = int(next(p for t, p in pid_rows if t == ord("D"))[6:])
        before = status_kb(proxy.pid, "VmRSS")
        reader.send(fe.Query(f"SELECT repeat('x', {width}) FROM generate_series(1, {rows})"
                             ).encode())
        with psycopg.connect(pg_topology.primary.superuser_dsn("app"),
                             autocommit=True) as su:
            deadline = time.monotonic() + 10
            while (wait := su.execute("SELECT wait_event FROM pg_stat_activity "
                                      "WHERE pid = %s", [backend]).fetchone()) != ("ClientWrite",):
                assert time.monotonic() < deadline, f"the server never waited: {wait}"
                time.sleep(0.05)
        time.sleep(0.5)
        grown = status_kb(proxy.pid, "VmRSS") - before
        assert grown < 16 * 1024, f"proxy grew by {grown // 1024} MB for an unread result"
        assert timed_login(proxy) < 1.0  # others carry on (the second server)
        got = reader.read_until(b"Z")  # now it reads: every row is there
    assert sum(1 for t, _ in got if t == ord("D")) == rows
    assert got[-1] == (ord("Z"), b"I")
    assert status_kb(proxy.pid, "VmRSS") - before < 16 * 1024
