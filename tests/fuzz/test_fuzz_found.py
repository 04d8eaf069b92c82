"""Regression tests for what the protocol fuzzer, the corpus capture and the differential
SQL test found (issue 14: F1 to F9). Each failed on the main of its finding; a second proxy
on a taken port (F6) is tested in tests/e2e/test_process.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.wire import i32
from tests.e2e.conftest import ProxyRunner
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, describe, error_of
from tests.harness.waiting import wait_for

from .conftest import fuzz_config
from .stream import FUZZ_TABLE

pytestmark = pytest.mark.timeout(120)
CLOSE_TIMEOUT_S = 3.0


def admin(proxy: ProxyProcess) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(f"host={proxy.host} port={proxy.port} user=admin password=admin "
                           "dbname=pgbouncer sslmode=disable", autocommit=True,
                           prepare_threshold=None)


def active_servers(proxy: ProxyProcess, user: str) -> int:
    with admin(proxy) as conn:
        cursor = conn.execute("SHOW POOLS")
        names = [c.name for c in cursor.description or ()]
        return sum(int(str(row[names.index("sv_active")])) for row in cursor.fetchall()
                   if row[names.index("user")] == user)


def trust_client(proxy: ProxyProcess) -> RawClient:
    client = RawClient.connect(proxy.host, proxy.port, timeout=CLOSE_TIMEOUT_S)
    client.login("trust_user", "", "app")
    return client


@pytest.fixture
def fuzz_proxy(pg_topology: Topology, fuzz_table: None, proxy_runner: ProxyRunner
               ) -> ProxyProcess:
    return proxy_runner(fuzz_config(pg_topology, free_port()))


# --- F1 (capture): asyncpg's copy_records_to_table through read/write splitting --------------
def test_asyncpg_copy_after_an_unsynced_describe_runs_on_the_primary(
        fuzz_proxy: ProxyProcess) -> None:
    # asyncpg sends Parse/Describe of "SELECT cols FROM table LIMIT 1" and a Flush (no
    # Sync), then COPY ... FROM STDIN on the same connection. The proxy routes the unsynced
    # batch as a read (replica) and keeps that server for the COPY: 25006 "cannot execute
    # COPY during recovery". PostgreSQL itself accepts it.
    async def copy() -> None:
        conn = await asyncpg.connect(host=fuzz_proxy.host, port=fuzz_proxy.port,
                                     user="trust_user", database="app", ssl=False)
        try:
            await conn.copy_records_to_table(FUZZ_TABLE, records=[("found-f1", 1)],
                                             columns=["v", "n"])
        finally:
            await conn.close()

    asyncio.run(copy())


# --- F2 (fuzzer): Terminate while the server skips to Sync -----------------------------------
def test_terminate_after_an_extended_protocol_error_closes_and_frees_the_server(
        fuzz_proxy: ProxyProcess, pg_topology: Topology) -> None:
    # After an error in an extended-protocol message PostgreSQL ignores everything up to
    # Sync, Queries too (no ReadyForQuery for them), but honours Terminate: it closes. The
    # proxy counts the Query as an answer owed, waits for it after the Terminate forever
    # with reading paused (the client's own close goes unseen), and the server is never
    # given back: a few such clients exhaust the pool.
    data = fe.Describe("P", "").encode() + fe.Query("SELECT 2").encode() + fe.Terminate().encode()
    primary = pg_topology.primary
    for host, port in ((primary.host, primary.port), (fuzz_proxy.host, fuzz_proxy.port)):
        client = RawClient.connect(host, port, timeout=CLOSE_TIMEOUT_S)
        client.login("trust_user", "", "app")
        assert client.query("BEGIN")[-1] == (ord("Z"), b"T")
        assert client.query("SELECT 1")[-1] == (ord("Z"), b"T")
        client.send(data)
        messages = client.read_until_closed()  # TimeoutError: still open
        error = error_of(messages)
        assert error is not None and error.sqlstate == "34000", describe(messages)
        client.close()
    assert wait_for(lambda: active_servers(fuzz_proxy, "trust_user") == 0, 5.0)


# --- F3 (fuzzer): Terminate in the first, unsynced batch of a transaction ---------------------
def test_terminate_in_an_unsynced_first_batch_closes_the_connection(
        fuzz_proxy: ProxyProcess) -> None:
    # With routes that vary (read/write splitting) the idle path waits for the batch's
    # Sync or Flush before routing it, and never looks at the Terminate behind it: the
    # connection stays open until the client closes it. PostgreSQL closes at once.
    with trust_client(fuzz_proxy) as client:
        client.send(b"".join(m.encode() for m in (
            fe.Parse("", "SELECT 3"), fe.Bind("", ""), fe.Execute(""), fe.Terminate())))
        client.read_until_closed()  # TimeoutError: still open
        assert client.closed_by_peer


# --- F4 (fuzzer; issue 14's "malformed messages relayed inside a transaction") ----------------
def test_a_bad_type_byte_arriving_alone_inside_a_transaction_is_not_relayed(
        fuzz_proxy: ProxyProcess) -> None:
    # The relay forwards a header's first bytes before it has all five, so a bad type byte
    # that arrives alone reaches PostgreSQL, which answers FATAL 08P01 and closes; then the
    # proxy sees the header and sends its own FATAL: two FATALs, and a server lost.
    with trust_client(fuzz_proxy) as client:
        assert client.query("BEGIN")[-1] == (ord("Z"), b"T")
        assert client.query("SELECT 1")[-1] == (ord("Z"), b"T")
        client.send(b"\0")
        time.sleep(0.2)
        client.send(i32(11) + b"BEGIN;\0")
        messages = client.read_until_closed()
    fatals = [m for m in messages if m[0] == ord("E") and b"SFATAL" in m[1]]
    assert len(fatals) == 1, describe(messages)
    assert b"postgres.c" not in fatals[0][1], "PostgreSQL's own FATAL: the byte was relayed"


# --- F5 (fuzzer, admin console): SET of something that is no config key ----------------------
def test_admin_set_of_a_key_that_does_not_exist_is_refused(fuzz_proxy: ProxyProcess) -> None:
    # "SET SHARD TO '0'" (pgcat's client command, spliced into an admin session) is taken as
    # the [general] key "SHARD", validated like the file (an unknown key only warns) and
    # applied: "admin SET SHARD" in the log. It should be refused, like a bad path.
    with admin(fuzz_proxy) as conn, pytest.raises(psycopg.Error):
        conn.execute("SET SHARD TO '0'")


# --- F8 (differential SQL): DEALLOCATE ALL inside a transaction -----------------------------
def test_statements_prepared_after_deallocate_all_in_a_transaction_survive_it(
        pg_topology: Topology, proxy_runner: Callable[[str], ProxyProcess]) -> None:
    # psycopg (prepare=True) clears its statement cache after any "ROLLBACK" command tag,
    # ROLLBACK TO SAVEPOINT included, sends DEALLOCATE ALL inside the block and prepares
    # again under new names. The proxy applies the DEALLOCATE ALL only at check-in, to every
    # name, the new ones too: the next Bind gets 26000 "prepared statement ... does not
    # exist". (And until the check-in it still takes the server's pgcatpy_* statements as
    # prepared, though the DEALLOCATE ALL removed them.)
    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=1,
                                      extra_pool={"default_role": "primary"}))
    dsn = (f"host={proxy.host} port={proxy.port} user=app password=app dbname=app "
           "sslmode=disable")
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        conn.execute("BEGIN")
        assert conn.execute("SELECT %s::int", [1]).fetchone() == (1,)
        conn.execute("SAVEPOINT s1")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / %s::int", [0])
        conn.execute("ROLLBACK TO SAVEPOINT s1")  # psycopg: DEALLOCATE ALL comes next
        assert conn.execute("SELECT %s::int + 1", [1]).fetchone() == (2,)
        assert conn.execute("SELECT %s::int", [3]).fetchone() == (3,)
        conn.execute("COMMIT")
        assert conn.execute("SELECT %s::int + 1", [4]).fetchone() == (5,)
        assert conn.execute("SELECT %s::int", [6]).fetchone() == (6,)


# --- F9 (run_fuzz e2e): a Query without its string ---------------------------------------------
def test_a_query_with_no_text_gets_postgres_error_not_a_traceback(
        fuzz_proxy: ProxyProcess, pg_topology: Topology) -> None:
    # "Q" + length 4, alone in the buffer: idle.py's _answer_locally reads buf[5] (the
    # EXPLAIN ROUTE check) past the end: IndexError out of data_received, uvloop's "Fatal
    # error on transport" traceback in the log, the client closed without an error.
    # PostgreSQL answers ERROR 08P01 "invalid string in message" and ReadyForQuery.
    primary = pg_topology.primary
    for host, port in ((primary.host, primary.port), (fuzz_proxy.host, fuzz_proxy.port)):
        with RawClient.connect(host, port, timeout=CLOSE_TIMEOUT_S) as client:
            client.login("trust_user", "", "app")
            client.send(b"Q" + i32(4))
            messages = client.read_until(b"Z")
            error = error_of(messages)
            assert error is not None and error.sqlstate == "08P01", describe(messages)
            assert messages[-1] == (ord("Z"), b"I"), describe(messages)
    assert "Traceback" not in fuzz_proxy.log_text(), fuzz_proxy.log_tail()


# --- found by review of the fixes above -------------------------------------------------------
def test_terminate_after_a_skipped_query_and_a_sync_closes_and_frees_the_server(
        fuzz_proxy: ProxyProcess, pg_topology: Topology) -> None:
    # PostgreSQL skips the Query behind the failed Parse and answers the Sync once: one
    # ReadyForQuery for two sync points. The Terminate goes on to the server, which closes
    # exactly when PostgreSQL would.
    data = b"".join(m.encode() for m in (fe.Parse("", "SELEC 1"), fe.Query("SELECT 2"),
                                         fe.Sync(), fe.Terminate()))
    primary = pg_topology.primary
    for host, port in ((primary.host, primary.port), (fuzz_proxy.host, fuzz_proxy.port)):
        client = RawClient.connect(host, port, timeout=CLOSE_TIMEOUT_S)
        client.login("trust_user", "", "app")
        client.send(data)
        messages = client.read_until_closed()
        error = error_of(messages)
        assert error is not None and error.sqlstate == "42601", describe(messages)
        client.close()
    assert wait_for(lambda: active_servers(fuzz_proxy, "trust_user") == 0, 5.0)


def test_a_query_behind_an_unsynced_read_still_gets_the_reads_answers(
        fuzz_proxy: ProxyProcess) -> None:
    # The read's rows must reach the client before the Query is routed on its own.
    with trust_client(fuzz_proxy) as client:
        client.send(b"".join(m.encode() for m in (
            fe.Parse("", "SELECT pg_sleep(0.3), 7"), fe.Bind("", ""), fe.Execute(""),
            fe.Flush())))
        time.sleep(0.05)
        client.send(fe.Query("SELECT 2").encode())
        types = bytes(t for t, _ in client.read_until(b"Z"))
    assert types == b"12DCTDCZ", types


def test_a_header_refused_when_whole_does_not_poison_the_next_client(
        fuzz_proxy: ProxyProcess) -> None:
    # "Q" alone passes as a header's start and goes to the server; the length bytes that
    # follow are impossible: that server must not go back to the pool with a "Q" in it.
    for _ in range(3):
        with trust_client(fuzz_proxy) as bad:
            bad.send(fe.Query("BEGIN").encode())
            bad.read_until(b"Z")
            bad.send(fe.Query("SELECT 1").encode() + b"Q")
            bad.read_until(b"Z")
            bad.send(b"\x00\x00\x00\x01")
            bad.read_until_closed()
    for _ in range(3):
        with trust_client(fuzz_proxy) as good:
            assert good.query("SELECT 1")[-1][0] == ord("Z")


def test_a_terminate_behind_a_commit_in_an_unsynced_batch_keeps_the_commit(
        fuzz_proxy: ProxyProcess, pg_topology: Topology) -> None:
    # An Execute of COMMIT commits at once (PostgreSQL's exec_execute_message); then the
    # Terminate. Through the proxy the rows must be there too.
    marker = f"f3-{time.monotonic_ns()}"
    with trust_client(fuzz_proxy) as client:
        client.send(b"".join(m.encode() for m in (
            fe.Parse("", f"INSERT INTO {FUZZ_TABLE} (v, n) VALUES ('{marker}', 1)"),
            fe.Bind("", ""), fe.Execute(""),
            fe.Parse("", "COMMIT"), fe.Bind("", ""), fe.Execute(""), fe.Terminate())))
        client.read_until_closed()
    with psycopg.connect(pg_topology.primary.superuser_dsn("app")) as su:
        row = su.execute(f"SELECT count(*) FROM {FUZZ_TABLE} WHERE v = %s",
                         (marker,)).fetchone()
    assert row == (1,)


def test_temp_said_in_an_earlier_transaction_does_not_pin(fuzz_proxy: ProxyProcess) -> None:
    name = f"plain_{time.monotonic_ns()}"
    with trust_client(fuzz_proxy) as client:
        client.query("SELECT 'an attempt'")
        client.query(f"CREATE TABLE {name} (i int)")
        client.query(f"DROP TABLE {name}")
        with admin(fuzz_proxy) as conn:
            cursor = conn.execute("SHOW CLIENTS")
            names = [c.name for c in cursor.description or ()]
            pinned = [row[names.index("pinned")] for row in cursor.fetchall()
                      if row[names.index("user")] == "trust_user"]
    assert pinned == [""], pinned


# --- found by the corpus replay (asyncpg_session.bin, chunks) ---------------------------------
def test_a_query_cut_by_a_read_keeps_the_dropped_replies_in_step(
        fuzz_proxy: ProxyProcess, pg_topology: Topology) -> None:
    # A chunk that ends inside a Query (its header whole) while named statements are rewritten
    # and replies are still owed: the relay counted the Query's ReadyForQuery, but the
    # ExpectedReplies queue got no sync point for it. One short, the queue took that Query's
    # ReadyForQuery as the end of the next batch, voiding the Close and Parse noted for it:
    # their replies went through, a CloseComplete the client never asked for. The Flush
    # proves the first chunk was relayed alone; the sleep keeps its replies owed meanwhile.
    query = fe.Query("SELECT 2").encode()
    cut = 8  # inside the Query's text
    first = b"".join(m.encode() for m in (
        fe.Parse("s1", "SELECT pg_sleep(0.5)"), fe.Flush(), fe.Bind("", "s1"), fe.Execute(""),
        fe.Sync())) + query[:cut]
    rest = query[cut:] + b"".join(m.encode() for m in (
        fe.Parse("s2", "SELECT 3"), fe.Bind("", "s2"), fe.Execute(""), fe.Sync()))
    primary = pg_topology.primary
    answers = []
    for host, port in ((primary.host, primary.port), (fuzz_proxy.host, fuzz_proxy.port)):
        with RawClient.connect(host, port, timeout=CLOSE_TIMEOUT_S) as client:
            client.login("trust_user", "", "app")
            client.send(first)
            messages = client.read_until(b"1")
            client.send(rest)
            for _ in range(3):
                messages += client.read_until(b"Z")
        answers.append(bytes(t for t, _ in messages))
    assert answers[0] == b"12DCZTDCZ12DCZ", answers[0]
    assert answers[1] == answers[0], answers
