"""Servers that die at every protocol phase, under load, through the fault proxy.

pgcat-py runs in front of the real primary (and replica) with tests/harness/faultproxy.py
in between. While a few clients keep working (tests/harness/clientload.py), one server
connection is broken at a chosen point: during its login, during the parameter sync for a
client with its own settings, mid-DataRow, mid-COPY (both ways), inside a transaction, and
during the reset at check-in. Each time:

- the client of the broken server gets 08006 (an ERROR when nothing of its session was
  lost, else a FATAL), or nothing at all when it already had its answer;
- every other client carries on, and no client ever sees part of a message (libpq's
  "lost synchronization" and friends; a raw client checks message boundaries itself);
- no server connection leaks: the fault proxy never holds more than pool_size server
  connections with a PostgreSQL backend behind them, SHOW POOLS gets back to sv_active 0,
  and pool_size clients can then hold a server each at once.

Then: a replica behind a failing link is banned and reads recover; delays and bandwidth
caps slow queries down without breaking them; seeded random breaks leave no damage; and
raw clients racing their servers' resets always read the proxy's FATAL 08006 whole (libpq
sometimes cannot: see is_clean).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.startup import PROTOCOL_3_0
from pgcat_py.protocol.wire import i32
from tests.harness.clientload import ClientError, Connection, Load
from tests.harness.faultproxy import FaultProxy
from tests.harness.faultrules import Chaos, How
from tests.harness.proxy import ProxyProcess, proxy_config
from tests.harness.rawclient import RawClient, describe, error_of, rows_of
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)

CONNECTION_FAILURE = "08006"
LIBPQ_CLOSED = "server closed the connection unexpectedly"
POOL_SIZE = 3
TABLE = "fault_rows"
# How every server login starts: the StartupMessage's protocol version, then "user".
STARTUP = i32(PROTOCOL_3_0) + b"user\0"
ROUTED = {"query_parser_enabled": True, "query_parser_read_write_splitting": True}


# --- the set-up -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table(pg_topology: Topology) -> str:
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (who text, n int)")
    return TABLE


@pytest.fixture
def faults(pg_topology: Topology) -> Iterator[FaultProxy]:
    """A fault proxy in front of the primary."""
    with FaultProxy(pg_topology.primary.port, seed=14) as proxy:
        yield proxy


def start(runner: ProxyRunner, topology: Topology, faults: FaultProxy, *,
          pool_mode: str = "transaction", pool_size: int = POOL_SIZE,
          **general: str | int | bool) -> ProxyProcess:
    """pgcat-py whose pool `app` has the primary only, reached through ``faults``."""
    text = proxy_config(topology, port=free_port(), pool_mode=pool_mode, pool_size=pool_size,
                        extra_general={"connect_timeout": 3000, **general},
                        extra_pool={"default_role": "primary"})
    text = text.replace(f'{topology.primary.port}, "primary"', f'{faults.port}, "primary"')
    text = text.replace(f', ["127.0.0.1", {topology.replicas[0].port}, "replica"]', "")
    return runner(text)


def client(proxy: ProxyProcess, **params: str) -> Connection:
    return psycopg.connect(make_conninfo(dsn(proxy), **params), autocommit=True,
                           prepare_threshold=None)


def pools_row(proxy: ProxyProcess) -> dict[str, object]:
    """SHOW POOLS of pool app, user app, from the admin console."""
    with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgbouncer"),
                         autocommit=True) as admin:
        cursor = admin.execute("SHOW POOLS")
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    [row] = [row for row in rows if (row["database"], row["user"]) == ("app", "app")]
    return row


@dataclass
class ServerWatch:
    """Samples, every 20 ms, the server connections pgcat-py holds through the fault proxy
    that have a PostgreSQL backend: the most ever seen, counting only a sample that the
    next one confirms (a backend may take a moment to exit after its link closed, while
    its replacement logs in)."""

    faults: FaultProxy
    topology: Topology
    most: int = 0
    failure: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ServerWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(5)
        assert self.failure is None, f"the server watch failed: {self.failure!r}"

    def _run(self) -> None:
        try:
            self._sample()
        except BaseException as exc:  # reported by stop(), not lost with the thread
            self.failure = exc

    def _sample(self) -> None:
        with psycopg.connect(self.topology.primary.superuser_dsn("app"),
                             autocommit=True) as su:
            last = 0
            while not self._stop.is_set():
                ports = list(self.faults.server_side_ports())
                row = su.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
                                 " AND client_port = ANY(%s)", [ports]).fetchone()
                now = int(row[0]) if row is not None else 0
                self.most = max(self.most, min(now, last))
                last = now
                time.sleep(0.02)


def is_clean(error: ClientError) -> bool:
    """08006 from the proxy. Or, inside a transaction (where the proxy ends the session with
    FATAL 08006, then closes, as PostgreSQL does), libpq's own report of the close: when
    the client's next query crosses the close, the RST that comes back can make libpq
    fail to read the FATAL it holds (psycopg: "consuming input failed"); with PostgreSQL
    itself too. test_a_client_inside_a_transaction_always_gets_its_fatal shows the FATAL
    is always sent."""
    return error.sqlstate == CONNECTION_FAILURE or (
        error.sqlstate is None and error.work == "transaction" and LIBPQ_CLOSED in error.text)


def assert_clean(errors: list[ClientError], allowed: int = 0) -> None:
    """At most ``allowed`` errors, each a clean 08006; never part of a message."""
    assert not [e for e in errors if e.is_desync], errors
    assert len(errors) <= allowed, errors
    assert all(is_clean(e) for e in errors), errors


def assert_no_leak(proxy: ProxyProcess, watch: ServerWatch, pool_size: int = POOL_SIZE
                   ) -> None:
    """Never more than pool_size servers; all back in the pool, all usable at once."""
    # (A short test may end before two samples confirm a connection: no lower bound.)
    assert watch.most <= pool_size, f"{watch.most} server connections for {pool_size}"
    settled = wait_for(lambda: (pools_row(proxy)["sv_active"], pools_row(proxy)["cl_waiting"])
                       == (0, 0), 10)
    assert settled, pools_row(proxy)
    holders = [psycopg.connect(dsn(proxy), prepare_threshold=None) for _ in range(pool_size)]
    try:
        for conn in holders:  # each holds a transaction, so a server of its own
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        for conn in holders:
            conn.close()
    assert "Traceback" not in proxy.log_text(), proxy.log_tail()


@dataclass
class Scene:
    """A proxy in front of the faulty primary, clients working, servers watched."""

    proxy: ProxyProcess
    faults: FaultProxy
    load: Load
    watch: ServerWatch


@pytest.fixture
def scene_factory(pg_topology: Topology, proxy_runner: ProxyRunner, faults: FaultProxy,
                  table: str) -> Iterator[Callable[..., Scene]]:
    scenes: list[Scene] = []

    def make(pool_mode: str = "transaction", pool_size: int = POOL_SIZE, clients: int = 3,
             **general: str | int | bool) -> Scene:
        proxy = start(proxy_runner, pg_topology, faults, pool_mode=pool_mode,
                      pool_size=pool_size, **general)
        watch = ServerWatch(faults, pg_topology).start()
        load = Load(lambda: client(proxy), clients=clients, table=table)
        load.wait_for_work(8)
        scenes.append(Scene(proxy, faults, load, watch))
        return scenes[-1]

    yield make
    for scene in scenes:
        scene.load.stop()
        scene.watch.stop()


def finish(scene: Scene, pool_size: int = POOL_SIZE, allowed_errors: int = 0) -> None:
    """Let the load run on after the fault, then check the aftermath."""
    scene.load.wait_for_work(8)
    errors = scene.load.stop()
    scene.watch.stop()
    assert_clean(errors, allowed_errors)
    assert_no_leak(scene.proxy, scene.watch, pool_size)


def committed(topology: Topology, who: str) -> int:
    with psycopg.connect(topology.primary.dsn(), autocommit=True) as direct:
        row = direct.execute(f"SELECT count(*) FROM {TABLE} WHERE who = %s", [who]).fetchone()
    assert row is not None
    return int(row[0])


# --- a server dies at each protocol phase -----------------------------------------------
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_login_broken_mid_welcome_fails_only_the_client_waiting_for_it(
        scene_factory: Callable[..., Scene], how: How) -> None:
    # Connections live 300 ms, so logins go on all the time under the load; two of them
    # break in the middle of the server's first ParameterStatus.
    scene = scene_factory(server_lifetime=300)
    rule = scene.faults.break_when(sent=STARTUP, reply=b"S", how=how, times=2)
    assert wait_for(lambda: rule.fired == 2, 10), scene.faults.fired
    # Whoever waited for those connections (if nobody else served it first) got 08006.
    finish(scene, allowed_errors=2)
    assert all("could not connect" in e.text for e in scene.load.errors), scene.load.errors


def test_server_lost_during_parameter_sync_fails_that_client_only(
        scene_factory: Callable[..., Scene]) -> None:
    scene = scene_factory()
    rule = scene.faults.break_when(sent=b"'victim_sync'")
    victim = client(scene.proxy, application_name="victim_sync",
                    options="-c search_path=victim,public")
    with pytest.raises(psycopg.OperationalError) as caught:
        victim.execute("SELECT 1")
    assert caught.value.sqlstate == CONNECTION_FAILURE, caught.value
    assert rule.fired == 1 and victim.closed  # its settings may be half applied: FATAL
    with client(scene.proxy, application_name="victim_sync",
                options="-c search_path=victim,public") as again:  # the next try works
        row = again.execute("SELECT current_setting('application_name'), "
                            "current_setting('search_path')").fetchone()
        assert row is not None and row[0] == "victim_sync"
        assert str(row[1]).replace(" ", "") == "victim,public"
    finish(scene)


def test_server_lost_mid_datarow_gives_its_client_08006_and_the_session_goes_on(
        scene_factory: Callable[..., Scene]) -> None:
    scene = scene_factory()
    rule = scene.faults.break_when(sent=b"victim_rows", reply=b"D", nth=1500)
    with client(scene.proxy) as victim:
        with pytest.raises(psycopg.OperationalError) as caught:
            victim.execute("SELECT 'victim_rows', repeat('v', 300) "
                           "FROM generate_series(1, 3000)").fetchall()
        assert caught.value.sqlstate == CONNECTION_FAILURE, caught.value
        assert victim.execute("SELECT 'next'").fetchone() == ("next",)
    assert rule.fired == 1
    finish(scene)


@pytest.mark.parametrize("nth", [1, 700, 2999])
def test_raw_client_gets_whole_messages_then_an_error_when_its_server_dies(
        scene_factory: Callable[..., Scene], nth: int) -> None:
    scene = scene_factory()
    rule = scene.faults.break_when(sent=b"raw_victim", reply=b"D", nth=nth, how="rst")
    with RawClient.connect(scene.proxy.host, scene.proxy.port) as raw:
        raw.login("app", "app")
        raw.send(fe.Query("SELECT 'raw_victim', repeat('r', 250) "
                          "FROM generate_series(1, 3000)").encode())
        messages = raw.read_until(b"Z")
        assert raw.leftover == b"", f"{len(raw.leftover)} bytes of a partial message"
        assert {chr(t) for t, _ in messages} <= set("TDEZ"), describe(messages[-3:])
        error = error_of(messages)
        assert error is not None and error.sqlstate == CONNECTION_FAILURE
        assert messages[-2][0] == ord("E") and messages[-1] == (ord("Z"), b"I")
        assert rows_of(raw.query("SELECT 'after'")) == [("after",)]
    assert rule.fired == 1
    finish(scene)


def test_server_lost_mid_copy_out_gives_08006(scene_factory: Callable[..., Scene]) -> None:
    scene = scene_factory()
    rule = scene.faults.break_when(sent=b"victim_copy_out", reply=b"d", nth=4000)
    with client(scene.proxy) as victim:
        rows = 0
        with pytest.raises(psycopg.OperationalError) as caught, victim.cursor().copy(
                "COPY (SELECT 'victim_copy_out', g FROM generate_series(1, 10000) g) "
                "TO STDOUT") as copy:
            for _ in copy.rows():
                rows += 1
        assert caught.value.sqlstate == CONNECTION_FAILURE, caught.value
        assert 0 < rows < 4000
        assert victim.execute("SELECT 'next'").fetchone() == ("next",)
    assert rule.fired == 1
    finish(scene)


def test_server_lost_mid_copy_in_gives_08006_and_commits_nothing(
        scene_factory: Callable[..., Scene], pg_topology: Topology) -> None:
    scene = scene_factory()
    rule = scene.faults.break_when(sent=b"victim_copy_in\t3000")
    with client(scene.proxy) as victim:
        with pytest.raises(psycopg.OperationalError) as caught, victim.cursor().copy(
                f"COPY {TABLE} (who, n) FROM STDIN") as copy:
            for n in range(6000):
                copy.write(f"victim_copy_in\t{n}\n")
                if n % 500 == 0:
                    time.sleep(0.01)  # in several chunks, so the cut is mid-COPY
        assert caught.value.sqlstate == CONNECTION_FAILURE, caught.value
        assert victim.execute("SELECT 'next'").fetchone() == ("next",)
    assert rule.fired == 1
    assert committed(pg_topology, "victim_copy_in") == 0
    finish(scene)


def test_server_lost_inside_a_transaction_ends_the_client_with_fatal_08006(
        scene_factory: Callable[..., Scene], pg_topology: Topology) -> None:
    scene = scene_factory()
    rule = scene.faults.break_when(sent=b"victim_txn_boom")
    victim = client(scene.proxy)
    victim.execute("BEGIN")
    victim.execute(f"INSERT INTO {TABLE} (who, n) VALUES ('victim_txn', 1)")
    with pytest.raises(psycopg.OperationalError) as caught:
        victim.execute("SELECT 'victim_txn_boom'")
    assert caught.value.sqlstate == CONNECTION_FAILURE, caught.value
    assert victim.closed  # its transaction is gone: the session cannot go on
    assert rule.fired == 1
    assert committed(pg_topology, "victim_txn") == 0
    finish(scene)


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_server_lost_during_the_reset_at_check_in_is_closed_not_reused(
        scene_factory: Callable[..., Scene], pool_mode: str) -> None:
    # The client dirtied its session with a SET; the server is reset before it goes back
    # to the pool (at once in transaction mode, when the client leaves in session mode).
    pool_size = POOL_SIZE + 1 if pool_mode == "session" else POOL_SIZE
    scene = scene_factory(pool_mode=pool_mode, pool_size=pool_size)
    rule = scene.faults.break_when(sent=b"RESET ALL", how="rst")
    with client(scene.proxy) as victim:
        victim.execute("SET statement_timeout = '4321s'")
        assert victim.execute("SHOW statement_timeout").fetchone() == ("4321s",)
    assert wait_for(lambda: rule.fired == 1, 5), scene.faults.fired
    assert wait_for(lambda: "reset of server" in scene.proxy.log_text(), 5)
    finish(scene, pool_size=pool_size)
    with client(scene.proxy) as later:  # no server kept the dirty setting
        for _ in range(pool_size * 2):
            assert later.execute("SHOW statement_timeout").fetchone() == ("0",)


# --- replicas, slow links, random faults --------------------------------------------------
@pytest.mark.parametrize("fault", ["drop_and_refuse", "mid_row"])
def test_replica_behind_a_failing_link_is_banned_and_reads_recover(
        pg_topology: Topology, proxy_runner: ProxyRunner, fault: str) -> None:
    # The replica at two addresses, each through a fault proxy of its own: one link fails
    # and the other keeps the reads. (With one replica, banning it would ban every replica
    # of the shard, and pgcat's rule then lifts every ban at once.)
    replica = pg_topology.replicas[0]
    with FaultProxy(replica.port) as bad, FaultProxy(replica.port) as good:
        text = proxy_config(pg_topology, port=free_port(), pool_size=POOL_SIZE,
                            extra_general={"ban_time": 2, "connect_timeout": 2000},
                            extra_pool=ROUTED)
        proxy = proxy_runner(text.replace(
            f'["127.0.0.1", {replica.port}, "replica"]',
            f'["127.0.0.1", {bad.port}, "replica"], ["127.0.0.1", {good.port}, "replica"]'))
        links = {"bad": bad, "good": good}
        load = Load(lambda: client(proxy), clients=3)  # reads to the replicas, the rest not
        load.wait_for_work(8)
        assert wait_for(lambda: bad.links_opened > 0, 5)
        hurt_at = time.monotonic()
        if fault == "drop_and_refuse":  # the replica's host at that address is gone
            bad.refuse(True, how="rst")
            bad.drop_all()
        else:  # one connection breaks while it answers
            bad.break_when(reply=b"D")
        assert wait_for(lambda: is_banned(proxy, bad.port), 5), proxy.log_tail()
        with client(proxy) as reader:
            assert {read_by(reader, links) for _ in range(10)} == {"good"}
            bad.clear()
            while read_by(reader, links) != "bad":  # back after ban_time
                assert time.monotonic() - hurt_at < 10, "the replica never came back"
                time.sleep(0.05)
            assert time.monotonic() - hurt_at >= 1.9  # not before ban_time (2 s)
        errors = load.stop()
    # Only the reads in flight on the failing link, each a clean 08006.
    assert_clean(errors, allowed=3)
    assert "Traceback" not in proxy.log_text()


def is_banned(proxy: ProxyProcess, port: int) -> bool:
    """SHOW DATABASES says the address with this port is disabled (banned)."""
    with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgbouncer"),
                         autocommit=True) as admin:
        cursor = admin.execute("SHOW DATABASES")
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return any(row["port"] == str(port) and row["disabled"] == 1 for row in rows)


def read_by(conn: Connection, links: dict[str, FaultProxy]) -> str:
    """Which link a read went through, by the port the server saw it come from."""
    row = conn.execute("SELECT inet_client_port()").fetchone()
    assert row is not None
    for name, link in links.items():
        if row[0] in link.server_side_ports():
            return name
    return "primary"


def test_delay_and_bandwidth_caps_slow_queries_down_without_breaking_them(
        scene_factory: Callable[..., Scene]) -> None:
    scene = scene_factory()
    scene.faults.delay(to_server=0.02, to_client=0.02, jitter=0.01)
    with client(scene.proxy) as timed:
        for _ in range(3):
            started = time.monotonic()
            assert timed.execute("SELECT 'slow'").fetchone() == ("slow",)
            assert time.monotonic() - started >= 0.04
        scene.faults.delay()
        scene.faults.bandwidth(to_client=2_000_000)
        started = time.monotonic()
        row = timed.execute("SELECT string_agg(md5(g::text), '') "
                            "FROM generate_series(1, 40000) g").fetchone()  # 1.28 MB
        assert row is not None and len(str(row[0])) == 1_280_000
        assert time.monotonic() - started >= 0.5
    scene.faults.bandwidth(to_server=200_000, to_client=200_000)
    scene.load.wait_for_work(8)  # everyone, slower
    scene.faults.clear()
    finish(scene)


def test_seeded_random_breaks_leave_clean_errors_and_no_leak(
        scene_factory: Callable[..., Scene]) -> None:
    # Connections live 400 ms, so new ones keep coming, each with its seeded fate: half
    # break somewhere in their first 100 kB, either way, mid-login or mid-message.
    scene = scene_factory(clients=4, server_lifetime=400)
    scene.faults.chaos(Chaos(seed=1414, rate=0.5, max_offset=100_000))
    time.sleep(2)
    scene.faults.chaos(None)
    broken = len(scene.faults.fired)
    assert broken >= 3, scene.faults.fired
    # Each break costs at most the work in flight on that server.
    finish(scene, allowed_errors=broken)


def test_a_client_inside_a_transaction_always_gets_its_fatal(
        scene_factory: Callable[..., Scene], table: str) -> None:
    # Raw clients run transactions back to back while every server connection is reset
    # or closed every 100 ms: each client whose server is lost mid-transaction reads a
    # whole FATAL 08006 before the close, even when its next query crosses the close.
    scene = scene_factory()
    stop = threading.Event()
    endings: list[tuple[str | None, str | None, int]] = []

    def run() -> None:
        while not stop.is_set():
            with RawClient.connect(scene.proxy.host, scene.proxy.port) as raw:
                raw.login("app", "app")
                while not raw.closed_by_peer and not stop.is_set():
                    for sql in ("BEGIN", f"INSERT INTO {table} VALUES ('raw', 1)",
                                "SELECT 1", "COMMIT"):
                        error = error_of(raw.query(sql))
                        if raw.closed_by_peer:
                            endings.append((error and error.sqlstate,
                                            error and error.severity, len(raw.leftover)))
                            break

    clients = [threading.Thread(target=run, daemon=True) for _ in range(3)]
    for thread in clients:
        thread.start()
    for i in range(20):
        if i % 2:
            scene.faults.drop_all()
        else:
            scene.faults.close_all()
        time.sleep(0.1)
    stop.set()
    for thread in clients:
        thread.join(10)
    assert len(endings) >= 5, endings
    assert set(endings) == {(CONNECTION_FAILURE, "FATAL", 0)}, endings
    finish(scene, allowed_errors=len(scene.faults.fired))
