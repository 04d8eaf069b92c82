"""Routing through the real proxy: read/write splitting, read-only transactions, pgcat's
custom commands, automatic sharding, and the errors that help.

A topology of its own: a primary with two streaming replicas, and three shard primaries
whose `data` table is `PARTITION BY HASH (id)` with only that shard's partition, so a row
sent to the wrong shard is refused by PostgreSQL itself. Where a statement ran is read from
`inet_server_port()`.
"""

from __future__ import annotations

import collections
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol import frontend as fe
from tests.conftest import own_topology
from tests.harness.proxy import ProxyProcess, TomlValue, proxy_config, toml_value
from tests.harness.rawclient import RawClient, describe, error_of, rows_of

from .conftest import ProxyRunner, dsn

pytestmark = [pytest.mark.pg, pytest.mark.timeout(120)]

SHARDS = 3
READS = 300
PERMIFY_SEED = Path(__file__).parents[3] / "shared/data/pgcat-configs/permify-seed.toml"
ROUTED = {"query_parser_enabled": True, "query_parser_read_write_splitting": True}


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    with own_topology(replicas=2, shards=SHARDS) as topo:
        _prepare(topo)
        yield topo


def _prepare(topo: Topology) -> None:
    with psycopg.connect(topo.primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g")
        conn.execute("CREATE SEQUENCE item_ids")
    for index, shard in enumerate(topo.shards):
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE data (id bigint NOT NULL, value text) "
                         "PARTITION BY HASH (id)")
            conn.execute(f"CREATE TABLE data_{index} PARTITION OF data "
                         f"FOR VALUES WITH (MODULUS {SHARDS}, REMAINDER {index})")
    topo.wait_for_replicas()


def start(runner: ProxyRunner, topo: Topology, *, pool_mode: str = "transaction",
          **pool: TomlValue) -> ProxyProcess:
    text = proxy_config(topo, port=free_port(), pool_mode=pool_mode, pool_size=4,
                        extra_pool=pool, sharded_pool=True)
    return runner(text)


def connect(proxy: ProxyProcess, dbname: str = "app", autocommit: bool = True
            ) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn(proxy, dbname=dbname), autocommit=autocommit,
                           prepare_threshold=None)


def port_of(conn: psycopg.Connection[tuple[object, ...]], sql: str = "SELECT inet_server_port()",
            params: tuple[object, ...] | None = None) -> int:
    row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[-1])  # type: ignore[call-overload]


def ports(topo: Topology) -> tuple[int, list[int]]:
    return topo.primary.port, [node.port for node in topo.replicas]


# --- read/write splitting ---------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_reads_spread_over_replicas_and_writes_stay_on_the_primary(
        topology: Topology, proxy_runner: ProxyRunner, protocol: str) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    primary, replicas = ports(topology)
    counts: collections.Counter[int] = collections.Counter()
    with connect(proxy) as conn:
        for i in range(READS):
            if protocol == "simple":
                counts[port_of(conn)] += 1
            else:
                counts[port_of(conn, "SELECT %s::int, inet_server_port()", (i,))] += 1
    assert primary not in counts, counts
    for port in replicas:
        assert abs(counts[port] - READS / 2) <= 0.35 * READS / 2, counts


WRITES_IN_DISGUISE = {
    "insert": "INSERT INTO items VALUES ({n}, 'x') RETURNING inet_server_port()",
    "nextval": "SELECT nextval('item_ids'), inet_server_port()",
    "for_update": "SELECT id, inet_server_port() FROM items WHERE id = 1 FOR UPDATE",
    "writable_cte": "WITH t AS (UPDATE items SET name = name WHERE id = 2 RETURNING id) "
                    "SELECT inet_server_port() FROM t",
    "advisory_xact_lock": "SELECT pg_advisory_xact_lock(7), inet_server_port()",
    "multi_statement": "SELECT inet_server_port(); DELETE FROM items WHERE id = {n}",
    "quoted_keyword_is_a_name_but_set_config_writes": (
        "SELECT set_config('x.y', '1', false) AS \"update\", inet_server_port()"),
}


@pytest.mark.parametrize("statement", WRITES_IN_DISGUISE)
def test_writes_in_disguise_go_to_the_primary(
        topology: Topology, proxy_runner: ProxyRunner, statement: str) -> None:
    proxy = start(proxy_runner, topology, **ROUTED, primary_reads_enabled=False)
    with connect(proxy) as conn:
        for n in range(1000 + len(statement), 1003 + len(statement)):
            assert port_of(conn, WRITES_IN_DISGUISE[statement].format(n=n)) \
                == topology.primary.port


def test_quoted_keyword_is_a_read(topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with connect(proxy) as conn:
        assert port_of(conn, 'SELECT 1 AS "update", inet_server_port()') \
            in ports(topology)[1]


def test_primary_reads_enabled_shares_reads_with_the_primary(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED, primary_reads_enabled=True)
    with connect(proxy) as conn:
        counts = collections.Counter(port_of(conn) for _ in range(READS))
    for port in (topology.primary.port, *ports(topology)[1]):
        assert abs(counts[port] - READS / 3) <= 0.35 * READS / 3, counts


@pytest.mark.parametrize(("begin", "on_replica"), [
    ("BEGIN READ ONLY", True),
    ("START TRANSACTION READ ONLY", True),
    ("BEGIN", False),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", False),
    ("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", True),
])
def test_explicit_transactions_run_on_the_primary_unless_read_only(
        topology: Topology, proxy_runner: ProxyRunner, begin: str, on_replica: bool) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with connect(proxy) as conn:
        conn.execute(begin)
        port = port_of(conn)
        assert port_of(conn) == port  # the whole transaction on one server
        conn.execute("COMMIT")
    assert (port in ports(topology)[1]) == on_replica, port


def test_set_transaction_read_only_after_begin_may_use_a_replica(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with connect(proxy) as conn:
        conn.execute("BEGIN")
        conn.execute("SET TRANSACTION READ ONLY")
        assert port_of(conn) in ports(topology)[1]
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        conn.execute("ROLLBACK")


def test_empty_held_transaction_commits_without_a_server(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with connect(proxy) as conn:
        conn.execute("BEGIN")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.execute("COMMIT")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert port_of(conn) in ports(topology)[1]


def test_psycopg_transactions_write_on_the_primary(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with connect(proxy, autocommit=False) as conn:  # psycopg sends BEGIN itself
        conn.execute("INSERT INTO items VALUES (500, 'tx')")
        assert port_of(conn) == topology.primary.port
        conn.rollback()


# --- Permify's guide config: reads first, writes after, never a read-only error ---------------
def permify_config(topo: Topology, port: int, pool_mode: str) -> str:
    text = PERMIFY_SEED.read_text()
    config = tomllib.loads(text)
    general = config["general"]
    general.update(host="127.0.0.1", port=port, admin_username="admin", admin_password="admin")
    pool = config["pools"]["postgres"]
    pool["pool_mode"] = pool_mode
    user = pool["users"]["0"]
    user.update(username="app", password="app")
    pool["shards"]["0"].update(database="app", servers=[
        ["127.0.0.1", topo.primary.port, "primary"],
        ["127.0.0.1", topo.replicas[0].port, "replica"]])
    return _toml(config)


def _toml(config: Mapping[str, object], prefix: str = "") -> str:
    scalars = {k: v for k, v in config.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in config.items() if isinstance(v, dict)}
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{k} = {toml_value(v)}" for k, v in scalars.items()]  # type: ignore[arg-type]
    for key, value in tables.items():
        lines.append(_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(not PERMIFY_SEED.exists(), reason="shared/data/pgcat-configs not beside us")
@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_permify_guide_config_never_sends_a_write_to_the_replica(
        topology: Topology, proxy_runner: ProxyRunner, pool_mode: str) -> None:
    proxy = proxy_runner(permify_config(topology, free_port(), pool_mode))
    first_id = 2000 if pool_mode == "session" else 3000
    for n in range(first_id, first_id + 20):
        with psycopg.connect(dsn(proxy, dbname="postgres"), autocommit=True,
                             prepare_threshold=None) as conn:
            conn.execute("SELECT count(*) FROM items").fetchone()  # a read first
            conn.execute("INSERT INTO items VALUES (%s, 'permify')", (n,))  # then writes
            with conn.transaction():
                conn.execute("UPDATE items SET name = 'p' WHERE id = %s", (n,))


# --- custom commands --------------------------------------------------------------------------
def test_set_server_role_and_show_server_role(topology: Topology,
                                              proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, default_role="primary")
    with connect(proxy) as conn:
        assert conn.execute("SHOW SERVER ROLE").fetchone() == ("primary",)
        assert port_of(conn) == topology.primary.port
        conn.execute("SET SERVER ROLE TO 'replica'")
        assert conn.execute("SHOW SERVER ROLE").fetchone() == ("replica",)
        assert all(port_of(conn) in ports(topology)[1] for _ in range(5))
        conn.execute("SET SERVER ROLE TO 'default'")
        assert port_of(conn) == topology.primary.port
        assert conn.execute("SHOW PRIMARY READS").fetchone() == ("off",)


def test_set_shard_routes_to_that_shard_also_right_after_begin(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology)
    shard_ports = [node.port for node in topology.shards]
    with connect(proxy, dbname="sharded") as conn:
        assert conn.execute("SHOW SHARD").fetchone() == ("unset",)
        for shard in (2, 0, 1):
            conn.execute(f"SET SHARD TO '{shard}'")
            assert conn.execute("SHOW SHARD").fetchone() == (str(shard),)
            assert port_of(conn) == shard_ports[shard]
        conn.execute("BEGIN")
        conn.execute("SET SHARD TO '2'")  # pgcat #492: before the transaction has a server
        assert port_of(conn) == shard_ports[2]
        conn.execute("COMMIT")
        with pytest.raises(psycopg.Error, match="shard 7 is not configured"):
            conn.execute("SET SHARD TO '7'")
        assert conn.execute("SHOW SHARD").fetchone() == ("2",)


def test_set_sharding_key_picks_the_keys_shard(topology: Topology,
                                               proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology)
    with connect(proxy, dbname="sharded") as conn:
        for key in range(1, 30):
            conn.execute(f"SET SHARDING KEY TO '{key}'")
            conn.execute("INSERT INTO data VALUES (%s, 'by command')", (key,))


# --- automatic sharding ---------------------------------------------------------------------
def test_automatic_sharding_puts_every_key_on_its_partition(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED, automatic_sharding_key="data.id",
                  default_shard="fail", default_role="primary")
    keys = range(100_000, 101_000)
    with connect(proxy, dbname="sharded") as conn:
        for key in keys:
            if key % 2:
                conn.execute(f"INSERT INTO data (id, value) VALUES ({key}, 'literal')")
            else:
                conn.execute("INSERT INTO data (id, value) VALUES (%s, 'bind')", (key,))
        for key in keys:  # read back through the router too, every one
            row = conn.execute("SELECT count(*) FROM data WHERE id = %s", (key,)).fetchone()
            assert row == (1,), key
        with pytest.raises(psycopg.Error, match="default_shard is 'fail'"):
            conn.execute("SELECT count(*) FROM data")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SELECT * FROM data WHERE id = 1 OR id = 2")  # two shards
    total = 0
    for shard in topology.shards:
        with psycopg.connect(shard.dsn(), autocommit=True) as direct:
            row = direct.execute("SELECT count(*) FROM data WHERE id >= 100000").fetchone()
            assert row is not None
            total += int(row[0])  # type: ignore[call-overload]
    assert total == len(keys)


def test_comment_hints_choose_the_shard(topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, shard_id_regex=r"/\* shard_id: (\d+) \*/",
                  sharding_key_regex=r"/\* sharding_key: (\d+) \*/")
    shard_ports = [node.port for node in topology.shards]
    with connect(proxy, dbname="sharded") as conn:
        for shard in range(SHARDS):
            assert port_of(conn, f"/* shard_id: {shard} */ SELECT inet_server_port()") \
                == shard_ports[shard]
        for key in range(200_000, 200_020):
            conn.execute(f"/* sharding_key: {key} */ INSERT INTO data VALUES ({key}, 'c')")


# --- errors that help -----------------------------------------------------------------------
def test_unknown_database_names_the_pools(topology: Topology,
                                          proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology)
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(dsn(proxy, dbname="permify"))
    text = str(caught.value)
    assert "permify" in text and '"app"' in text and '"sharded"' in text, text


def test_custom_commands_once_a_server_is_held_are_answered_not_relayed(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology)
    with connect(proxy, dbname="sharded") as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT 1")  # the transaction holds a server now
        with pytest.raises(psycopg.errors.ActiveSqlTransaction):
            conn.execute("SET SHARD TO '1'")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SHOW SHARD").fetchone() == ("unset",)
        assert conn.execute("SELECT 2").fetchone() == (2,)  # the transaction goes on
        conn.execute("COMMIT")
        conn.execute("SET SHARD TO '1'")  # between transactions: fine
        assert port_of(conn) == topology.shards[1].port


def test_session_mode_keeps_its_server_and_refuses_a_late_set_shard(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, pool_mode="session")
    with connect(proxy, dbname="sharded") as conn:
        conn.execute("SET SHARD TO '2'")
        assert port_of(conn) == topology.shards[2].port
        with pytest.raises(psycopg.errors.ActiveSqlTransaction):
            conn.execute("SET SHARD TO '0'")
        assert port_of(conn) == topology.shards[2].port


def test_show_routes_counts_decisions_by_role(topology: Topology,
                                             proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with connect(proxy) as conn:
        for _ in range(3):
            port_of(conn)
        conn.execute("INSERT INTO items VALUES (4000, 'routed') ON CONFLICT DO NOTHING")
    with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgcat"),
                         autocommit=True) as admin:
        rows = admin.execute("SHOW ROUTES").fetchall()
    by_role = collections.Counter()
    for database, _user, _shard, role, _reason, count in rows:
        if database == "app":
            by_role[role] += count
    assert by_role["replica"] >= 3 and by_role["primary"] >= 1, rows


# --- batches and pipelines: a write behind a read never reaches a replica -------------------
def raw_login(proxy: ProxyProcess, dbname: str = "app") -> RawClient:
    client = RawClient.connect(proxy.host, proxy.port)
    client.login("app", "app", dbname)
    return client


def ports_in(messages: list[tuple[int, bytes]]) -> list[str | None]:
    return [row[-1] for row in rows_of(messages)]


def test_a_write_batched_behind_a_read_goes_to_the_primary(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with raw_login(proxy) as client:
        client.send(fe.Parse("", "SELECT inet_server_port()").encode()
                    + fe.Bind("", "", (), ()).encode() + fe.Execute("").encode()
                    + fe.Parse("", "INSERT INTO items VALUES (5000, 'batched') "
                                   "ON CONFLICT DO NOTHING RETURNING inet_server_port()"
                               ).encode()
                    + fe.Bind("", "", (), ()).encode() + fe.Execute("").encode()
                    + fe.Sync().encode())
        messages = client.read_until(b"Z")
        assert error_of(messages) is None, describe(messages)
        assert ports_in(messages)[0] == str(topology.primary.port)


def test_queries_pipelined_in_one_packet_go_to_the_primary(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with raw_login(proxy) as client:
        client.send(fe.Query("SELECT inet_server_port()").encode()
                    + fe.Query("INSERT INTO items VALUES (5001, 'piped') "
                               "ON CONFLICT DO NOTHING").encode())
        first = client.read_until(b"Z")
        second = client.read_until(b"Z")
        assert error_of(first) is None and error_of(second) is None, describe(second)
        assert ports_in(first) == [str(topology.primary.port)]


def test_a_write_sent_while_a_read_runs_on_a_replica_waits_and_goes_to_the_primary(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with raw_login(proxy) as client:
        client.send(fe.Query("SELECT pg_sleep(0.3), inet_server_port()").encode())
        time.sleep(0.1)  # the read is running on a replica now
        client.send(fe.Query("INSERT INTO items VALUES (5002, 'later') "
                             "ON CONFLICT DO NOTHING RETURNING inet_server_port()").encode())
        read = client.read_until(b"Z")
        write = client.read_until(b"Z")
        assert ports_in(read)[0] in [str(p) for p in ports(topology)[1]]
        assert error_of(write) is None, describe(write)
        assert ports_in(write) == [str(topology.primary.port)]


def test_jdbc_style_begin_in_the_batch_routes_by_the_statement_after_it(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED, automatic_sharding_key="data.id",
                  default_shard="fail", default_role="primary")
    with raw_login(proxy, "sharded") as client:
        for key in range(300_000, 300_012):
            client.send(fe.Parse("", "BEGIN").encode() + fe.Bind("", "", (), ()).encode()
                        + fe.Execute("").encode()
                        + fe.Parse(f"S_{key}", "INSERT INTO data (id, value) VALUES ($1, 'j')"
                                   ).encode()
                        + fe.Bind("", f"S_{key}", (), (str(key).encode(),)).encode()
                        + fe.Execute("").encode() + fe.Sync().encode())
            messages = client.read_until(b"Z")
            assert error_of(messages) is None, describe(messages)
            assert rows_of(client.query("COMMIT")) == []


def test_malformed_describe_in_a_rewritten_session_is_08p01_not_a_crash(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology)
    with raw_login(proxy) as client:
        client.send(fe.Parse("named", "SELECT 1").encode() + fe.Sync().encode())
        assert error_of(client.read_until(b"Z")) is None
        client.send(b"D\0\0\0\x04" + fe.Sync().encode())
        messages = client.read_until_closed()
        error = error_of(messages)
        assert error is not None and error.sqlstate == "08P01", describe(messages)
    with connect(proxy) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert "Traceback" not in proxy.log_text()


def test_commit_and_chain_after_a_held_begin_keeps_a_transaction_open(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = start(proxy_runner, topology, **ROUTED)
    with raw_login(proxy) as client:
        assert client.query("BEGIN")[-1] == (ord("Z"), b"T")
        chained = client.query("COMMIT AND CHAIN")
        assert error_of(chained) is None and chained[-1] == (ord("Z"), b"T"), describe(chained)
        assert client.query("SELECT 1")[-1] == (ord("Z"), b"T")
        assert client.query("COMMIT")[-1] == (ord("Z"), b"I")
