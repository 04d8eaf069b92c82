"""Session state in transaction mode, with one server shared by two clients so that every
transaction of one lands where the other just was: SETs follow their client and never leak
to the other, temporary tables, SQL-level PREPARE and LISTEN keep their client on its
server, and a regular CREATE TABLE does not.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, error_of, rows_of

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def proxy(pg_topology: Topology, proxy_runner: ProxyRunner) -> ProxyProcess:
    text = proxy_config(pg_topology, port=free_port(), pool_size=2,
                        extra_pool={"default_role": "primary"})
    return proxy_runner(text)


def connect(proxy: ProxyProcess) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn(proxy), autocommit=True, prepare_threshold=None)


def show(conn: psycopg.Connection[tuple[object, ...]], name: str) -> object:
    row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return row[0]


def test_set_follows_its_client_and_never_leaks(proxy: ProxyProcess) -> None:
    with connect(proxy) as setter, connect(proxy) as other:
        setter.execute("SET statement_timeout = '1234'")
        setter.execute("SET work_mem TO 7777")
        for _ in range(4):  # servers rotate between the two
            assert show(setter, "statement_timeout") == "1234ms"
            assert show(setter, "work_mem") == "7777kB"
            assert show(other, "statement_timeout") == "0"
            assert show(other, "work_mem") == "4MB"
        setter.execute("RESET statement_timeout")
        setter.execute("SET work_mem TO DEFAULT")
        for _ in range(3):
            assert show(setter, "statement_timeout") == "0"
            assert show(setter, "work_mem") == "4MB"


def test_set_inside_a_transaction_stays_in_it(proxy: ProxyProcess) -> None:
    with connect(proxy) as setter, connect(proxy) as other:
        setter.execute("BEGIN")
        setter.execute("SET LOCAL statement_timeout = '4321'")
        assert show(setter, "statement_timeout") == "4321ms"
        setter.execute("COMMIT")
        for _ in range(3):
            assert show(setter, "statement_timeout") == "0"
            assert show(other, "statement_timeout") == "0"


def test_temporary_table_keeps_its_client_on_its_server(proxy: ProxyProcess) -> None:
    with connect(proxy) as owner, connect(proxy) as other:
        owner.execute("CREATE TEMP TABLE scratch (x int)")
        owner.execute("INSERT INTO scratch VALUES (1)")
        for _ in range(3):
            other.execute("SELECT 1")
            assert owner.execute("SELECT count(*) FROM scratch").fetchone() == (1,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            other.execute("SELECT * FROM scratch")


def test_temporary_table_made_inside_a_transaction_block_keeps_its_client(
        proxy: ProxyProcess) -> None:
    # The COMMIT's chunk says nothing of TEMP: what pins must be seen when it goes by.
    with connect(proxy) as owner, connect(proxy) as other:
        owner.execute("BEGIN")
        owner.execute("CREATE TEMPORARY TABLE scratch_in_block (x int)")
        owner.execute("INSERT INTO scratch_in_block VALUES (1)")
        owner.execute("COMMIT")
        for _ in range(3):
            other.execute("BEGIN")  # it would get the owner's server, were it given back
            other.execute("SELECT 1")
            assert owner.execute("SELECT count(*) FROM scratch_in_block").fetchone() == (1,)
            other.execute("COMMIT")


@pytest.mark.parametrize(("create", "name"), [
    # CREATE TABLE AS and SELECT INTO complete with "SELECT n", not "CREATE TABLE": what the
    # SQL says must pin, not only the CommandComplete tag.
    ("CREATE TEMP TABLE {} AS SELECT 1 AS x", "temp_as"),
    ("SELECT 1 AS x INTO TEMPORARY {}", "temp_into"),
    ("CREATE OR REPLACE TEMP VIEW {} AS SELECT 1 AS x", "temp_view"),
    ("CREATE TEMP SEQUENCE {}", "temp_seq"),
])
def test_every_temporary_relation_keeps_its_client(proxy: ProxyProcess, create: str,
                                                   name: str) -> None:
    with connect(proxy) as owner, connect(proxy) as other:
        owner.execute(create.format(name))
        for _ in range(3):
            other.execute("SELECT 1")
            assert owner.execute(f"SELECT count(*) FROM {name}").fetchone() == (1,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            other.execute(f"SELECT * FROM {name}")


@pytest.mark.parametrize("create", ["CREATE TEMP TABLE {} AS SELECT 1 AS x",
                                    "CREATE TEMP VIEW {} AS SELECT 1 AS x"])
def test_session_mode_discards_every_temporary_relation_after_its_client(
        pg_topology: Topology, proxy_runner: ProxyRunner, create: str) -> None:
    proxy = proxy_runner(proxy_config(pg_topology, port=free_port(), pool_size=1,
                                      pool_mode="session",
                                      extra_pool={"default_role": "primary"}))
    with connect(proxy) as first:
        first.execute(create.format("left_behind"))
    with connect(proxy) as second, pytest.raises(psycopg.errors.UndefinedTable):
        second.execute("SELECT * FROM left_behind")  # the same server, reset


def test_sql_prepare_keeps_its_client_on_its_server(proxy: ProxyProcess) -> None:
    with connect(proxy) as owner, connect(proxy) as other:
        owner.execute("PREPARE doubled(int) AS SELECT $1 * 2")
        for n in range(3):
            other.execute("SELECT 1")
            assert owner.execute(f"EXECUTE doubled({n})").fetchone() == (n * 2,)


def test_regular_create_table_does_not_pin(proxy: ProxyProcess,
                                           pg_topology: Topology) -> None:
    name = f"plain_{int(time.time() * 1000) % 10**8}"
    with connect(proxy) as creator, connect(proxy) as a, connect(proxy) as b:
        creator.execute(f"CREATE TABLE {name} (x int)")
        try:
            # pool_size 2: two other clients holding transactions at once means the
            # creator gave its server back.
            a.execute("BEGIN")
            a.execute("SELECT 1")
            b.execute("BEGIN")
            b.execute("SELECT 1")
            a.execute("COMMIT")
            b.execute("COMMIT")
        finally:
            creator.execute(f"DROP TABLE {name}")


def test_listen_gets_notifications_while_idle(proxy: ProxyProcess) -> None:
    with connect(proxy) as listener, connect(proxy) as sender:
        listener.execute("LISTEN pgcat_py_news")
        sender.execute("NOTIFY pgcat_py_news, 'hello'")
        gen = listener.notifies(timeout=5)
        received = [n.payload for n in gen]
        assert received[:1] == ["hello"]


def both_servers_free(proxy: ProxyProcess) -> bool:
    """pool_size 2: can two other clients hold a transaction each at once?"""
    with connect(proxy) as a, connect(proxy) as b:
        a.execute("BEGIN")
        a.execute("SELECT 1")
        b.execute("BEGIN")
        try:
            b.execute("SELECT 1")  # waits connect_timeout (1 s) for a server, then fails
        except psycopg.Error:
            return False
        finally:
            a.execute("ROLLBACK")
        b.execute("ROLLBACK")
        return True


@pytest.mark.parametrize(("pin", "release"), [
    ("LISTEN pgcat_py_pin", "UNLISTEN *"),
    ("SELECT pg_advisory_lock(9090)", "SELECT pg_advisory_unlock_all()"),
    ("CREATE TEMP TABLE pin_scratch (x int)", "DISCARD TEMP"),
    ("PREPARE pin_stmt AS SELECT 1", "DEALLOCATE ALL"),
    ("LISTEN pgcat_py_pin2", "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;"),
])
def test_a_pin_is_released_when_the_client_undoes_it(proxy: ProxyProcess, pin: str,
                                                     release: str) -> None:
    with connect(proxy) as client:
        client.execute(pin)
        client.execute(release)
        client.execute("SELECT 1")  # the transaction after the release gives the server back
        assert both_servers_free(proxy)


def test_a_set_sent_with_the_extended_protocol_follows_its_client(proxy: ProxyProcess) -> None:
    """pgjdbc sends SET as Parse / Bind / Execute / Sync."""
    with RawClient.connect(proxy.host, proxy.port) as client, connect(proxy) as other:
        client.login("app", "app", "app")
        client.send(fe.Parse("", "SET work_mem = '2222kB'").encode()
                    + fe.Bind("", "", (), ()).encode() + fe.Execute("").encode()
                    + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None
        for _ in range(3):
            assert show(other, "work_mem") == "4MB"
            assert rows_of(client.query("SHOW work_mem")) == [("2222kB",)]
