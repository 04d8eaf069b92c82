"""The local PostgreSQL topology is what the rest of the suite assumes it is.

Roles (primary / streaming replica / separate shard clusters), replication that a test can
wait for, one login method per auth-test user (checked on the wire, not just by logging in),
pg_stat_statements everywhere, and restartable topologies for the demo.
"""

from __future__ import annotations

import socket
import struct
import uuid
from pathlib import Path

import psycopg
import pytest

from pgcat_py import demo
from pgcat_py.config import parse_config
from pgcat_py.demo import build_demo_config
from pgcat_py.localpg import (
    APP_DATABASES,
    AUTH_TEST_ROLES,
    MD5_ROLE,
    LocalPgError,
    LoginRole,
    Node,
    Topology,
    create_topology,
    free_ports,
    load_topology,
    query_value,
    run_sql,
)
from pgcat_py.localpg.node import is_running
from tests.harness.proxy import proxy_config

# Authentication request codes (PostgreSQL docs, "Message Formats": AuthenticationXXX)
AUTH_OK = 0
AUTH_MD5_PASSWORD = 5
AUTH_SASL = 10
PROTOCOL_VERSION_3 = 196608  # 3 << 16
EXPECTED_AUTH_REQUEST = {"trust": AUTH_OK, "md5": AUTH_MD5_PASSWORD, "scram-sha-256": AUTH_SASL}


def scalar(node: Node, sql: str, **dsn: str) -> object:
    with psycopg.connect(node.dsn(**dsn), autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def first_auth_request(node: Node, user: str, database: str = "app") -> int:
    """Send a StartupMessage and return the code of the server's first Authentication message."""
    params = f"user\0{user}\0database\0{database}\0\0".encode()
    startup = struct.pack("!ii", 8 + len(params), PROTOCOL_VERSION_3) + params
    with socket.create_connection((node.host, node.port), timeout=5) as sock:
        sock.sendall(startup)
        header = sock.recv(9, socket.MSG_WAITALL)
    kind, _length, code = struct.unpack("!cii", header)
    assert kind == b"R", f"expected an Authentication message, got {header!r}"
    return int(code)


def test_primary_is_not_in_recovery_and_replica_is(pg_topology: Topology) -> None:
    assert scalar(pg_topology.primary, "SELECT pg_is_in_recovery()") is False
    for replica in pg_topology.replicas:
        assert scalar(replica, "SELECT pg_is_in_recovery()") is True


def test_replica_streams_from_its_own_slot(pg_topology: Topology) -> None:
    rows = run_sql(
        pg_topology.pg_bin,
        pg_topology.primary,
        "SELECT application_name, state FROM pg_stat_replication ORDER BY 1;"
        "SELECT slot_name, active FROM pg_replication_slots ORDER BY 1",
    ).split()
    assert rows == ["main.replica1|streaming", "main_replica1|t"]


def test_row_written_on_primary_is_on_replica_after_wait(pg_topology: Topology) -> None:
    table = f"localpg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")
        conn.execute(f"INSERT INTO {table} SELECT generate_series(1, 1000)")
    pg_topology.wait_for_replicas()
    assert scalar(pg_topology.replicas[0], f"SELECT count(*) FROM {table}") == 1000


def test_replica_refuses_writes(pg_topology: Topology) -> None:
    with (
        psycopg.connect(pg_topology.replicas[0].dsn()) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("CREATE TABLE must_fail (id int)")


@pytest.mark.parametrize("role", AUTH_TEST_ROLES, ids=lambda role: role.name)
def test_auth_user_gets_its_own_method_on_the_wire(pg_topology: Topology, role: LoginRole) -> None:
    for node in pg_topology.nodes():
        assert first_auth_request(node, role.name) == EXPECTED_AUTH_REQUEST[role.method]
        user = scalar(node, "SELECT current_user", user=role.name, password=role.password or "")
        assert user == role.name


def test_app_user_authenticates_with_the_generic_host_method(pg_topology: Topology) -> None:
    assert pg_topology.host_auth == "scram-sha-256"
    assert first_auth_request(pg_topology.primary, "app") == AUTH_SASL


def test_md5_user_password_is_stored_as_md5(pg_topology: Topology) -> None:
    sql = f"SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '{MD5_ROLE.name}'"
    assert query_value(pg_topology.pg_bin, pg_topology.primary, sql) == "md5"


def test_wrong_password_is_refused(pg_topology: Topology) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_topology.primary.dsn(password="wrong"))


def test_auth_users_may_create_tables_in_app(pg_topology: Topology) -> None:
    for role in AUTH_TEST_ROLES:
        dsn = pg_topology.primary.dsn(user=role.name, password=role.password or "")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {role.name}_owned (id int)")


# The calls of the statement a backend ran last. Not by query text: aliases and constants
# are not part of the query id, so `SELECT 1 AS marker` shares its entry (and first-seen
# text) with every other `SELECT <const> AS <alias>`.
CALLS_OF_LAST_QUERY = """
    SELECT s.calls FROM pg_stat_statements s
    JOIN pg_stat_activity a ON a.query_id = s.queryid AND a.usesysid = s.userid
        AND a.datid = s.dbid
    WHERE a.pid = %s AND s.toplevel
"""


@pytest.mark.parametrize("dbname", APP_DATABASES)
def test_pg_stat_statements_counts_each_execution(pg_topology: Topology, dbname: str) -> None:
    for node in pg_topology.nodes():
        with (
            psycopg.connect(node.dsn(dbname=dbname), autocommit=True) as worker,
            psycopg.connect(node.dsn(dbname=dbname), autocommit=True) as observer,
        ):
            worker.execute("SELECT 1 AS localpg_probe")
            first = observer.execute(CALLS_OF_LAST_QUERY, (worker.info.backend_pid,)).fetchone()
            worker.execute("SELECT 1 AS localpg_probe")
            second = observer.execute(CALLS_OF_LAST_QUERY, (worker.info.backend_pid,)).fetchone()
        assert first is not None and second is not None, node.name
        assert second[0] == first[0] + 1, node.name


def test_app_owns_public_schema_so_pgbench_can_init(pg_topology: Topology) -> None:
    for dbname in APP_DATABASES:
        owner = scalar(
            pg_topology.primary,
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'",
            dbname=dbname,
        )
        assert owner == "app"


def test_shards_are_separate_clusters(pg_topology: Topology) -> None:
    sql = "SELECT system_identifier FROM pg_control_system()"
    primaries = [pg_topology.primary, *pg_topology.shards]
    identifiers = {query_value(pg_topology.pg_bin, node, sql) for node in primaries}
    assert len(identifiers) == len(primaries) == 3
    for shard in pg_topology.shards:
        assert scalar(shard, "SELECT pg_is_in_recovery()") is False
    first, second = pg_topology.shards
    table = f"only_on_{first.name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(first.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")
    assert scalar(second, f"SELECT to_regclass('{table}') IS NULL") is True


def test_topology_json_round_trips(pg_topology: Topology) -> None:
    assert load_topology(pg_topology.base) == pg_topology


def test_dsn_url_encodes_user_and_password(pg_topology: Topology) -> None:
    dsn = pg_topology.primary.dsn(user="a b", password="p@ss word/")
    assert dsn.startswith("postgresql://a%20b:p%40ss%20word%2F@127.0.0.1:")


def test_failed_start_reports_the_server_log(pg_base: Path) -> None:
    topology = create_topology(pg_base, replicas=0, shards=0)
    topology.stop()
    conf = topology.primary.datadir / "node.conf"
    conf.write_text(conf.read_text() + "shared_buffers = 'not a size'\n")
    with pytest.raises(LocalPgError, match='invalid value for parameter "shared_buffers"'):
        topology.start()


def test_demo_config_is_a_valid_pgcat_config(pg_topology: Topology) -> None:
    loaded = parse_config(build_demo_config(pg_topology, 6432))
    assert loaded.warnings == []  # every key the demo sets is implemented
    assert sorted(loaded.config.pools) == ["app", "bench", "sharded"]
    assert len(loaded.config.pools["sharded"].shards) == 2


def test_harness_proxy_config_is_a_valid_pgcat_config(pg_topology: Topology) -> None:
    text = proxy_config(
        pg_topology, port=6433, sharded_pool=True, extra_pool={"default_role": "primary"}
    )
    loaded = parse_config(text)
    assert loaded.warnings == []
    servers = loaded.config.pools["app"].shards["0"].servers
    assert [(s.port, s.role) for s in servers] == [
        (pg_topology.primary.port, "primary"),
        (pg_topology.replicas[0].port, "replica"),
    ]


def test_demo_stops_every_server_however_the_proxy_ends(
    pg_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Topology] = []

    def crashing_proxy(config_path: Path) -> int:
        topology = load_topology(config_path.parent)
        seen.append(topology)
        assert all(is_running(topology.pg_bin, node) for node in topology.nodes())
        raise RuntimeError("proxy crashed")

    def serving_proxy(config_path: Path) -> int:
        replica = load_topology(config_path.parent).replicas[0]
        assert scalar(replica, "SELECT count(*) FROM pgbench_accounts", dbname="bench") == 100_000
        return 3

    ports = free_ports(4)
    monkeypatch.setattr(demo, "_proxy_runner", lambda: crashing_proxy)
    with pytest.raises(RuntimeError, match="proxy crashed"):
        demo.run_demo(pg_base, 6432, server_ports=ports)
    assert not any(is_running(seen[0].pg_bin, node) for node in seen[0].nodes())
    seen[0].stop()  # stopping twice is fine
    with pytest.raises(LocalPgError, match="already holds a cluster"):
        create_topology(pg_base, replicas=1, shards=2)

    monkeypatch.setattr(demo, "_proxy_runner", lambda: serving_proxy)
    # The second run restarts the same servers; pgbench -i through the primary and the
    # replica's count show that replication resumed.
    assert demo.run_demo(pg_base, 6432) == 3
    assert [node.port for node in load_topology(pg_base).nodes()] == ports
    assert not any(is_running(seen[0].pg_bin, node) for node in seen[0].nodes())
