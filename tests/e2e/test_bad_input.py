"""Bad input never crashes the proxy, hangs it, or touches another client.

Malformed startup packets, broken message headers, giant declared lengths, unknown message
types, clients that say nothing, clients that vanish mid-query or mid-transaction, wrong
passwords, unknown databases and bad SQL: each gets an ErrorResponse with PostgreSQL's
SQLSTATE where the protocol allows one, then (for a FATAL one) the close. Afterwards the
proxy still serves a fresh client, a bystander's open transaction is untouched, and the
proxy's log holds no traceback. Raw sockets (tests.harness.rawclient) send what no driver
would; psycopg plays the well-behaved clients.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.startup import (
    PROTOCOL_3_0,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
)
from pgcat_py.protocol.wire import i32, u32
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, describe, error_of, rows_of

from .conftest import dsn

pytestmark = pytest.mark.timeout(60)

PROTOCOL_VIOLATION = "08P01"
FEATURE_NOT_SUPPORTED = "0A000"
INVALID_AUTHORIZATION = "28000"
INVALID_PASSWORD = "28P01"
INVALID_CATALOG_NAME = "3D000"
SYNTAX_ERROR = "42601"
SETTLE_TIMEOUT_S = 5.0
TABLE = "bad_input_rows"


# --- helpers ------------------------------------------------------------------------------
def connect(proxy: ProxyProcess) -> RawClient:
    return RawClient.connect(proxy.host, proxy.port)


def logged_in(proxy: ProxyProcess) -> RawClient:
    client = connect(proxy)
    client.login("app", "app")
    return client


def assert_refused(client: RawClient, sqlstate: str) -> None:
    """A FATAL ErrorResponse with ``sqlstate``, then the close (within the socket timeout)."""
    messages = client.read_until_closed()
    error = error_of(messages)
    assert error is not None, f"no ErrorResponse, got: {describe(messages)}"
    assert (error.sqlstate, error.severity) == (sqlstate, "FATAL"), error.fields
    assert client.closed_by_peer


def assert_serves(proxy: ProxyProcess) -> None:
    """The proxy runs, a fresh psycopg client gets answers, and nothing crashed inside."""
    assert proxy.is_running(), proxy.log_tail()
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT %s::int + 1", [41]).fetchone() == (42,)
    assert "Traceback" not in proxy.log_text(), proxy.log_tail()


@pytest.fixture
def bystander(tx_proxy: ProxyProcess) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Another client of the same proxy, inside an open transaction while the bad input
    happens; afterwards its transaction must be intact and usable."""
    with psycopg.connect(dsn(tx_proxy)) as conn:
        conn.execute("SELECT set_config('bad_input.mark', 'bystander', true)")
        yield conn
        mark = conn.execute("SELECT current_setting('bad_input.mark')").fetchone()
        assert mark == ("bystander",)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.commit()


# --- startup packets ----------------------------------------------------------------------
def startup_packet(code: int, body: bytes) -> bytes:
    """An untyped startup packet: int32 length, int32 code, body, as the bytes are given."""
    return i32(len(body) + 8) + u32(code) + body


USER_APP = b"user\0app\0\0"

# id -> (bytes, SQLSTATE, whether PostgreSQL itself answers these bytes with a v3
# ErrorResponse, so its SQLSTATE can be checked live; for bad lengths it closes silently).
BAD_STARTUPS: dict[str, tuple[bytes, str, bool]] = {
    "length_4": (i32(4), PROTOCOL_VIOLATION, False),
    "length_7": (i32(7) + b"abc", PROTOCOL_VIOLATION, False),
    "negative_length": (i32(-1), PROTOCOL_VIOLATION, False),
    "length_over_10000_plus_header": (i32(10005) + i32(PROTOCOL_3_0), PROTOCOL_VIOLATION, False),
    "length_1_gib": (i32(1 << 30) + i32(PROTOCOL_3_0) + USER_APP, PROTOCOL_VIOLATION, False),
    # PostgreSQL answers 2.0 in protocol 2's own error format, not as a v3 message.
    "protocol_2_0": (startup_packet(2 << 16, USER_APP), FEATURE_NOT_SUPPORTED, False),
    "protocol_4_0": (startup_packet(4 << 16, USER_APP), FEATURE_NOT_SUPPORTED, True),
    "no_user": (startup_packet(PROTOCOL_3_0, b"database\0app\0\0"), INVALID_AUTHORIZATION, True),
    "empty_user": (startup_packet(PROTOCOL_3_0, b"user\0\0\0"), INVALID_AUTHORIZATION, True),
    "no_parameters": (startup_packet(PROTOCOL_3_0, b"\0"), INVALID_AUTHORIZATION, True),
    "missing_terminator": (startup_packet(PROTOCOL_3_0, b"user\0app\0"), PROTOCOL_VIOLATION,
                           True),
    "unterminated_value": (startup_packet(PROTOCOL_3_0, b"user\0app"), PROTOCOL_VIOLATION, True),
    "name_without_value": (startup_packet(PROTOCOL_3_0, b"user\0app\0database\0\0"),
                           PROTOCOL_VIOLATION, True),
    "empty_name_before_the_end": (startup_packet(PROTOCOL_3_0, b"user\0app\0\0x\0\0"),
                                  PROTOCOL_VIOLATION, True),
    "http_request": (b"GET / HTTP/1.1\r\nHost: pgcat\r\n\r\n", PROTOCOL_VIOLATION, False),
    "binary_garbage": (startup_packet(0xDEADBEEF, bytes(range(256))[::-3]),
                       FEATURE_NOT_SUPPORTED, True),
}


@pytest.mark.parametrize("case", BAD_STARTUPS)
def test_bad_startup_packet_is_refused_and_closed(tx_proxy: ProxyProcess, pg_topology: Topology,
                                                  case: str) -> None:
    packet, sqlstate, postgres_answers = BAD_STARTUPS[case]
    with connect(tx_proxy) as client:
        client.send(packet)
        assert_refused(client, sqlstate)
    if postgres_answers:  # the same bytes straight to PostgreSQL: the same SQLSTATE
        primary = pg_topology.primary
        with RawClient.connect(primary.host, primary.port) as direct:
            direct.send(packet)
            assert_refused(direct, sqlstate)
    assert_serves(tx_proxy)


def test_startup_packet_in_single_bytes_still_logs_in(tx_proxy: ProxyProcess) -> None:
    # Every byte in its own segment: no part of the login may assume a whole packet per read.
    with connect(tx_proxy) as client:
        for byte in StartupMessage({"user": "app", "database": "app"}).encode():
            client.send(bytes([byte]))
        messages = client.authenticate("app", "app")
        assert messages[-1] == (ord("Z"), b"I"), describe(messages)
        assert rows_of(client.query("SELECT 'whole'")) == [("whole",)]
    assert_serves(tx_proxy)


@pytest.mark.parametrize("requests", [[SSLRequest()], [GSSENCRequest()],
                                      [GSSENCRequest(), SSLRequest()]],
                         ids=["ssl", "gssenc", "gssenc_then_ssl"])
def test_encryption_request_gets_n_then_login_works(
        tx_proxy: ProxyProcess, requests: list[SSLRequest | GSSENCRequest]) -> None:
    with connect(tx_proxy) as client:
        for request in requests:
            client.send(request.encode())
            assert client.read_bytes(1) == b"N"
        client.login("app", "app")
        assert rows_of(client.query("SELECT 'plain'")) == [("plain",)]
    assert_serves(tx_proxy)


def test_client_leaving_after_ssl_refusal_is_clean(tx_proxy: ProxyProcess) -> None:
    with connect(tx_proxy) as client:
        client.send(SSLRequest().encode())
        assert client.read_bytes(1) == b"N"
    assert_serves(tx_proxy)


# --- login --------------------------------------------------------------------------------
def test_wrong_password_is_28p01_and_close(tx_proxy: ProxyProcess) -> None:
    with connect(tx_proxy) as client:
        messages = client.startup("app", "wrong", "app")
        error = error_of(messages)
        assert error is not None and error.sqlstate == INVALID_PASSWORD, describe(messages)
        assert error.severity == "FATAL"
        assert client.read_until_closed() == []
    assert_serves(tx_proxy)


@pytest.mark.parametrize(("database", "user", "sqlstate"), [
    ("no_such_db", "app", INVALID_CATALOG_NAME),
    ("app", "no_such_user", INVALID_AUTHORIZATION),
], ids=["unknown_database", "unknown_user_in_known_pool"])
def test_unknown_pool_is_refused(tx_proxy: ProxyProcess, database: str, user: str,
                                 sqlstate: str) -> None:
    with connect(tx_proxy) as client:
        client.send(StartupMessage({"user": user, "database": database}).encode())
        assert_refused(client, sqlstate)
    assert_serves(tx_proxy)


def awaiting_password(proxy: ProxyProcess) -> RawClient:
    """A client that sent its StartupMessage and got the password request."""
    client = connect(proxy)
    client.send(StartupMessage({"user": "app", "database": "app"}).encode())
    request = client.read_message()
    assert request is not None and request[0] == ord("R"), request
    return client


@pytest.mark.parametrize("answer", [
    fe.Query("SELECT 1").encode(),
    b"p" + i32(1 << 30) + b"md5",
    b"p" + i32(2),
    b"z" + i32(4),
], ids=["query_instead_of_password", "password_declaring_1_gib", "length_2", "unknown_type"])
def test_bad_password_message_is_08p01_at_once(tx_proxy: ProxyProcess, answer: bytes) -> None:
    # Refused as soon as the header is seen: not after the 60 s login timeout.
    with awaiting_password(tx_proxy) as client:
        client.send(answer)
        assert_refused(client, PROTOCOL_VIOLATION)
    assert_serves(tx_proxy)


def test_client_leaving_during_auth_is_clean(tx_proxy: ProxyProcess) -> None:
    awaiting_password(tx_proxy).close()
    assert_serves(tx_proxy)


# --- messages after login -----------------------------------------------------------------
BAD_MESSAGES = {
    "query_declaring_1_gib": b"Q" + i32(0x40000000) + b"SELECT 1",
    "length_max_int": b"Q" + i32(0x7FFFFFFF) + b"SELECT 1",
    "length_3": b"Q" + i32(3),
    "length_0": b"Q" + i32(0),
    "negative_length": b"Q" + i32(-1),
    "unknown_type_z": b"z" + i32(4),
    "type_nul": b"\0" + i32(4),
    "password_after_login": b"p" + i32(8) + b"abc\0",
    "sync_with_overlong_length": b"S" + i32(0x10000),
    "terminate_with_overlong_length": b"X" + i32(20000),
    "http_request": b"GET / HTTP/1.1\r\n\r\n",
}


def prepare_client(where: str, tx_proxy: ProxyProcess, session_proxy: ProxyProcess
                   ) -> RawClient:
    """A logged-in client: idle with no server, linked inside a transaction, or linked
    for its whole session."""
    if where == "session_mode":
        client = logged_in(session_proxy)
        assert rows_of(client.query("SELECT 1")) == [("1",)]
        return client
    client = logged_in(tx_proxy)
    if where == "in_transaction":
        messages = client.query("BEGIN")
        assert messages[-1] == (ord("Z"), b"T"), describe(messages)
    return client


@pytest.mark.parametrize("where", ["idle", "in_transaction", "session_mode"])
@pytest.mark.parametrize("message", BAD_MESSAGES)
def test_bad_message_is_08p01_and_close(tx_proxy: ProxyProcess, session_proxy: ProxyProcess,
                                        bystander: psycopg.Connection[tuple[object, ...]],
                                        message: str, where: str) -> None:
    with prepare_client(where, tx_proxy, session_proxy) as client:
        client.send(BAD_MESSAGES[message])
        assert_refused(client, PROTOCOL_VIOLATION)
    assert_serves(tx_proxy)
    assert_serves(session_proxy)


def test_bad_message_after_a_good_one_in_the_same_packet(tx_proxy: ProxyProcess) -> None:
    # The good query may or may not run (PostgreSQL would run it); the bad one ends the
    # connection either way, and nothing after it reaches a server.
    with logged_in(tx_proxy) as client:
        client.send(fe.Query("SELECT 1").encode() + b"z" + i32(4))
        assert_refused(client, PROTOCOL_VIOLATION)
    assert_serves(tx_proxy)


def test_large_simple_query_as_first_message_is_not_a_hang(tx_proxy: ProxyProcess) -> None:
    # A Query bigger than the proxy's idle read buffer, arriving over many reads while the
    # client holds no server: the proxy must keep reading until the message is whole.
    big = "x" * 2_000_000
    with logged_in(tx_proxy) as client:
        assert rows_of(client.query(f"SELECT length('{big}')")) == [(str(len(big)),)]
    assert_serves(tx_proxy)


@pytest.mark.parametrize("message", [b"z" + i32(4), b"Q" + i32(0x40000000),
                                     fe.Parse("", "SELECT 1").encode()],
                         ids=["unknown_type", "query_declaring_1_gib", "extended_protocol"])
def test_admin_console_bad_message_is_08p01(tx_proxy: ProxyProcess, message: bytes) -> None:
    with connect(tx_proxy) as client:
        client.login("admin", "admin", "pgcat")
        client.send(message)
        assert_refused(client, PROTOCOL_VIOLATION)
    assert_serves(tx_proxy)


def test_admin_console_large_query_is_not_a_hang(tx_proxy: ProxyProcess) -> None:
    # More than the idle read buffer: reading paused while it piled up must resume.
    with connect(tx_proxy) as client:
        client.login("admin", "admin", "pgcat")
        rows = rows_of(client.query("SHOW VERSION" + " " * 1_000_000))
        assert len(rows) == 1 and "pgcat-py" in str(rows[0][0])
    assert_serves(tx_proxy)


# --- bad SQL ------------------------------------------------------------------------------
def test_bad_sql_is_postgres_42601_and_the_connection_stays_usable(
        tx_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(tx_proxy)) as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as info:
            conn.execute("SELEC 1")
        assert info.value.sqlstate == SYNTAX_ERROR
        conn.rollback()
        assert conn.execute("SELECT 'still here'").fetchone() == ("still here",)
        conn.commit()
    with logged_in(tx_proxy) as client:  # simple protocol: ErrorResponse, then ReadyForQuery
        messages = client.query("SELECT 1; SELEC 2; SELECT 3")
        error = error_of(messages)
        assert error is not None and error.sqlstate == SYNTAX_ERROR, describe(messages)
        assert messages[-1] == (ord("Z"), b"I")
        assert rows_of(client.query("SELECT 'next'")) == [("next",)]
    assert_serves(tx_proxy)


# --- clients that say nothing ---------------------------------------------------------------
def app_clients(proxy: ProxyProcess) -> int:
    """Logged-in clients of pool app/app, from the admin console's SHOW POOLS."""
    with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgcat"),
                         autocommit=True) as admin:
        cursor = admin.execute("SHOW POOLS")
        names = [column.name for column in cursor.description or ()]
        for row in cursor.fetchall():
            pool = dict(zip(names, row, strict=True))
            if (pool["database"], pool["user"]) == ("app", "app"):
                return sum(int(pool[k]) for k in ("cl_idle", "cl_active", "cl_waiting"))
    raise AssertionError("no pool app/app in SHOW POOLS")


def wait_for_app_clients(proxy: ProxyProcess, expected: int) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while (count := app_clients(proxy)) != expected:
        assert time.monotonic() < deadline, f"{count} clients, expected {expected}"
        time.sleep(0.02)


def test_silent_clients_do_not_hold_up_others(tx_proxy: ProxyProcess) -> None:
    # The login timeout is 60 s; nothing here waits for it. While these sit there, others
    # log in and query; then they leave, and the proxy forgets them.
    before = app_clients(tx_proxy)
    silent = [connect(tx_proxy) for _ in range(3)]
    half_startup = connect(tx_proxy)
    half_startup.send(StartupMessage({"user": "app"}).encode()[:6])
    no_password = awaiting_password(tx_proxy)
    idle_logged_in = logged_in(tx_proxy)
    half_query = logged_in(tx_proxy)
    half_query.send(fe.Query("SELECT 1").encode()[:7])
    lingering = [*silent, half_startup, no_password, idle_logged_in, half_query]
    try:
        assert_serves(tx_proxy)
        with logged_in(tx_proxy) as other:
            assert rows_of(other.query("SELECT 'other'")) == [("other",)]
        assert rows_of(idle_logged_in.query("SELECT 'idle'")) == [("idle",)]
        wait_for_app_clients(tx_proxy, before + 2)
    finally:
        for client in lingering:
            client.close()
    wait_for_app_clients(tx_proxy, before)
    assert_serves(tx_proxy)


# --- clients that vanish ------------------------------------------------------------------
@pytest.fixture
def single_server_proxy(pg_topology: Topology, proxy_runner: Callable[[str], ProxyProcess]
                        ) -> Callable[[str], ProxyProcess]:
    """A proxy with pool_size 1: the next client gets the very server the last one had."""
    def start(pool_mode: str) -> ProxyProcess:
        return proxy_runner(proxy_config(pg_topology, port=free_port(), pool_mode=pool_mode,
                                         pool_size=1, extra_pool={"default_role": "primary"}))
    return start


@pytest.fixture(scope="module")
def rows_table(pg_topology: Topology) -> str:
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (marker text)")
    return TABLE


def backend_pid(client: RawClient) -> int:
    rows = rows_of(client.query("SELECT pg_backend_pid()"))
    assert len(rows) == 1 and rows[0][0] is not None
    return int(rows[0][0])


def wait_for_backend(primary_dsn: str, pid: int, done: Callable[[str | None], bool]) -> None:
    """Poll pg_stat_activity until the backend's state (None once it is gone) is ``done``."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s",
                               [pid]).fetchone()
            state = None if row is None else str(row[0])
            if done(state):
                return
            assert time.monotonic() < deadline, f"backend {pid} stays {state!r}"
            time.sleep(0.02)


def assert_answers_its_own_queries(proxy: ProxyProcess) -> int:
    """A fresh client's queries get their own results, in order; its backend pid."""
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        for value in ("first", "second", "third"):
            assert conn.execute("SELECT %s::text", [value]).fetchone() == (value,)
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert row is not None
    return int(row[0])


SLEEP = "SELECT pg_sleep(2)"
COPY_MARKER = "copy-in-vanished"
MID_QUERY = {
    "simple": fe.Query(SLEEP).encode(),
    "extended": b"".join(m.encode() for m in (fe.Parse("", SLEEP), fe.Bind("", ""),
                                              fe.Execute(""), fe.Sync())),
    "unsynced_batch": b"".join(m.encode() for m in (fe.Parse("", SLEEP), fe.Bind("", ""),
                                                    fe.Execute(""), fe.Flush())),
    # The server waits for more CopyData: it is in COPY, not at a message boundary.
    "copy_in": fe.Query(f"COPY {TABLE} FROM STDIN").encode()
    + fe.CopyData(f"{COPY_MARKER}\n".encode()).encode(),
    # A slow reader: ~100 MB of rows it never reads, so the server blocks writing to us.
    "unread_big_result": fe.Query("SELECT repeat('x', 1000) FROM generate_series(1, 100000)"
                                  ).encode(),
}


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
@pytest.mark.parametrize("query", MID_QUERY)
def test_client_vanishing_mid_query_does_not_hand_over_its_busy_server(
        single_server_proxy: Callable[[str], ProxyProcess], pg_topology: Topology,
        rows_table: str, query: str, pool_mode: str) -> None:
    proxy = single_server_proxy(pool_mode)
    primary_dsn = pg_topology.primary.dsn()
    with logged_in(proxy) as client:
        pid = backend_pid(client)
        client.send(MID_QUERY[query])
        wait_for_backend(primary_dsn, pid, lambda state: state == "active")
    # The only server is still busy: it must not answer the next client's queries.
    assert_answers_its_own_queries(proxy)
    # And it is not leaked: it finishes and idles in the pool, or the proxy closed it.
    wait_for_backend(primary_dsn, pid, lambda state: state in (None, "idle"))
    with psycopg.connect(primary_dsn, autocommit=True) as direct:
        assert direct.execute(f"SELECT count(*) FROM {rows_table} WHERE marker = %s",
                              [COPY_MARKER]).fetchone() == (0,)
    assert_serves(proxy)


VANISH_IN_TRANSACTION = {
    "close": b"",
    "terminate": fe.Terminate().encode(),
    "bad_message": b"z" + i32(4),
    "half_message": b"Q" + i32(100) + b"SELECT",
    "half_header": b"Q\0",
}


@pytest.mark.parametrize("failed", [False, True], ids=["open", "failed"])
@pytest.mark.parametrize("how", VANISH_IN_TRANSACTION)
def test_client_vanishing_inside_transaction_is_rolled_back(
        single_server_proxy: Callable[[str], ProxyProcess], pg_topology: Topology,
        rows_table: str, how: str, failed: bool) -> None:
    proxy = single_server_proxy("transaction")
    primary_dsn = pg_topology.primary.dsn()
    marker = f"{how}-{failed}-{uuid.uuid4()}"
    with logged_in(proxy) as client:
        assert client.query("BEGIN")[-1] == (ord("Z"), b"T")
        inserted = client.query(f"INSERT INTO {rows_table} VALUES ('{marker}')")
        assert inserted[-1] == (ord("Z"), b"T"), describe(inserted)
        pid = backend_pid(client)
        if failed:
            assert client.query("SELEC 1")[-1] == (ord("Z"), b"E")
        client.send(VANISH_IN_TRANSACTION[how])
        if how == "bad_message":
            assert_refused(client, PROTOCOL_VIOLATION)
    # The transaction ends (rolled back, or the server closed), never committed.
    wait_for_backend(primary_dsn, pid, lambda state: state in (None, "idle"))
    with psycopg.connect(primary_dsn, autocommit=True) as direct:
        count = direct.execute(f"SELECT count(*) FROM {rows_table} WHERE marker = %s",
                               [marker]).fetchone()
        assert count == (0,)
    next_pid = assert_answers_its_own_queries(proxy)
    if how.startswith("half_"):
        # Half a message went to the server: it can never be in sync again.
        assert next_pid != pid
    else:
        # Rolled back and given to the next client, as PgBouncer and pgcat do.
        assert next_pid == pid
    assert_serves(proxy)


def test_client_reset_mid_transaction_is_rolled_back(
        single_server_proxy: Callable[[str], ProxyProcess], pg_topology: Topology,
        rows_table: str) -> None:
    # An RST instead of a FIN (SO_LINGER 0): the connection is torn down, not closed.
    proxy = single_server_proxy("transaction")
    marker = f"reset-{uuid.uuid4()}"
    client = logged_in(proxy)
    assert client.query("BEGIN")[-1] == (ord("Z"), b"T")
    client.query(f"INSERT INTO {rows_table} VALUES ('{marker}')")
    pid = backend_pid(client)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    wait_for_backend(pg_topology.primary.dsn(), pid, lambda state: state in (None, "idle"))
    assert assert_answers_its_own_queries(proxy) == pid
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as direct:
        assert direct.execute(f"SELECT count(*) FROM {rows_table} WHERE marker = %s",
                              [marker]).fetchone() == (0,)
    assert_serves(proxy)


# --- and after all of that ------------------------------------------------------------------
def test_proxy_survived_all_of_the_above(tx_proxy: ProxyProcess,
                                         session_proxy: ProxyProcess) -> None:
    assert_serves(tx_proxy)
    assert_serves(session_proxy)
    with psycopg.connect(dsn(tx_proxy), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM generate_series(1, 1000)").fetchone() == (1000,)
