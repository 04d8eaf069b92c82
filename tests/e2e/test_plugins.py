"""Query plugins through the real proxy with psycopg, simple and extended protocol: pgcat's
intercept, table_access and query_logger, our plugin_module hook (the example module in
examples/plugins/), and db_activity_based_routing. Where a statement ran is read from
`inet_server_port()`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import (
    ProxyProcess,
    ProxyStartError,
    TomlValue,
    proxy_config,
    start_proxy,
    toml_value,
)
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = [pytest.mark.pg, pytest.mark.timeout(120)]

EXAMPLE_HOOK = Path(__file__).parents[2] / "examples" / "plugins" / "reports_policy.py"
PARSER = {"query_parser_enabled": True}
SPLIT = {"query_parser_enabled": True, "query_parser_read_write_splitting": True}
PROTOCOLS = ["simple", "extended"]
INTELLIJ = "select current_database() as a, current_schemas(false) as b"
PROBE = "select 'probe' as who, 0 as n, true as ok"

# pgcat's example intercept queries, and one whose answer no server would give.
INTERCEPT = """
[plugins.intercept]
enabled = true
[plugins.intercept.queries.0]
query = "select current_database() as a, current_schemas(false) as b"
schema = [["a", "text"], ["b", "text"]]
result = [["${DATABASE}", "{public}"]]
[plugins.intercept.queries.1]
query = "select current_database(), current_schema(), current_user"
schema = [["current_database", "text"], ["current_schema", "text"], ["current_user", "text"]]
result = [["${DATABASE}", "public", "${USER}"]]
[plugins.intercept.queries.2]
query = "SELECT 'probe' AS who, 0 AS n, TRUE AS ok"
schema = [["who", "text"], ["n", "int4"], ["ok", "bool"]]
result = [["${USER}@${DATABASE}", "42", "t"], ["", "", ""]]
"""
TABLE_ACCESS = """
[plugins.table_access]
enabled = true
tables = ["pg_user", "pg_roles", "Secrets"]
"""
LOGGER = """
[plugins.query_logger]
enabled = true
"""


@pytest.fixture(scope="module")
def topology(pg_topology: Topology) -> Topology:
    with psycopg.connect(pg_topology.primary.dsn(), autocommit=True) as conn:
        for table in ("reports", "secrets", "orders", "customers"):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id int, note text)")
        conn.execute("INSERT INTO reports SELECT 1, 'r' WHERE NOT EXISTS (SELECT FROM reports)")
    pg_topology.wait_for_replicas()
    return pg_topology


def pool_tables(topo: Topology, name: str, keys: Mapping[str, TomlValue]) -> str:
    """One more pool over the topology's primary and replica (database app)."""
    servers = [["127.0.0.1", topo.primary.port, "primary"]]
    servers += [["127.0.0.1", node.port, "replica"] for node in topo.replicas]
    lines = [f"[pools.{name}]", *(f"{k} = {toml_value(v)}" for k, v in keys.items()),
             f"[pools.{name}.users.0]", 'username = "app"', 'password = "app"', "pool_size = 3",
             f"[pools.{name}.shards.0]", 'database = "app"', f"servers = {toml_value(servers)}"]
    return "\n".join(lines) + "\n"


def config(topo: Topology, pool: Mapping[str, TomlValue], extra: str = "") -> str:
    return proxy_config(topo, port=free_port(), pool_size=3, extra_pool=pool) + extra


def connect(proxy: ProxyProcess, dbname: str = "app", autocommit: bool = True
            ) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(dsn(proxy, dbname=dbname), autocommit=autocommit,
                           prepare_threshold=None)


def run(conn: psycopg.Connection[tuple[Any, ...]], sql: str, protocol: str,
        params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """``sql`` as a simple Query (``params`` filled in by psycopg), or by the extended
    protocol: psycopg's Parse, Bind, Describe, Execute, Sync (binary results, so that a
    query without parameters takes that path too)."""
    if protocol == "simple":
        cur = psycopg.ClientCursor(conn) if params else conn.cursor()
        return cur.execute(sql, params or None).fetchall()
    return conn.execute(sql, params, binary=True).fetchall()


def port_of(conn: psycopg.Connection[tuple[Any, ...]], sql: str, protocol: str,
            params: tuple[Any, ...] = ()) -> int:
    return int(run(conn, sql, protocol, params)[0][-1])


def roles(topo: Topology) -> tuple[int, int]:
    return topo.primary.port, topo.replicas[0].port


# --- intercept ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def intercepting(topology: Topology, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ProxyProcess]:
    text = config(topology, PARSER, INTERCEPT + pool_tables(topology, "tools", PARSER))
    proxy = start_proxy(text, tmp_path_factory.mktemp("intercept"))
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_intercept_answers_pgcats_example_query(intercepting: ProxyProcess, protocol: str
                                                ) -> None:
    with connect(intercepting, dbname="tools") as conn:  # the real database is "app"
        assert run(conn, INTELLIJ, protocol) == [("tools", "{public}")]
        spelled = "SELECT  current_database() a,current_schemas(FALSE) b;"
        assert run(conn, spelled, protocol) == [("tools", "{public}")]
        assert run(conn, "select current_database(), current_schema(), current_user",
                   protocol) == [("tools", "public", "app")]
        assert run(conn, "select current_database()", protocol) == [("app",)]  # the server


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_intercept_substitutes_maps_types_and_sends_empty_strings_as_null(
        intercepting: ProxyProcess, protocol: str) -> None:
    with connect(intercepting) as conn:
        cur = conn.cursor()
        if protocol == "simple":
            cur.execute(PROBE)
        else:
            cur.execute(PROBE, (), binary=True)  # int4 and bool come back binary
        assert cur.fetchall() == [("app@app", 42, True), (None, None, None)]
        assert cur.description is not None
        assert [c.type_code for c in cur.description] == [25, 23, 16]
        assert cur.rowcount == 2


def test_intercept_with_psycopg_prepared_statements(intercepting: ProxyProcess) -> None:
    """psycopg's prepare: Parse (named) and Sync, then Bind, Describe, Execute, Sync
    naming it, every time: answered without a server, the statement known across batches."""
    with connect(intercepting, dbname="tools") as conn:
        for _ in range(3):
            assert conn.execute(INTELLIJ, prepare=True).fetchall() == [("tools", "{public}")]
        assert conn.execute("SELECT 7", prepare=True).fetchall() == [(7,)]


def test_intercept_inside_a_transaction_keeps_its_status(intercepting: ProxyProcess) -> None:
    with connect(intercepting, autocommit=False) as conn:
        assert conn.execute(INTELLIJ).fetchall() == [("app", "{public}")]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
        assert conn.execute("SELECT 1").fetchall() == [(1,)]


# --- table_access and query_logger ---------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(topology: Topology, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ProxyProcess]:
    text = config(topology, SPLIT, TABLE_ACCESS + LOGGER)
    proxy = start_proxy(text, tmp_path_factory.mktemp("guarded"))
    try:
        yield proxy
    finally:
        proxy.stop()


REFUSED = {
    "pg_user": "SELECT * FROM pg_user WHERE %s",
    "pg_user_qualified": "select usename from PG_CATALOG.pg_user WHERE %s",
    "pg_roles_joined": "SELECT 1 FROM pg_roles r JOIN orders o ON true WHERE %s",
    "secrets_listed_as_Secrets": "DELETE FROM secrets WHERE %s",
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", REFUSED)
def test_table_access_refuses_and_the_session_goes_on(
        guarded: ProxyProcess, protocol: str, case: str) -> None:
    with connect(guarded) as conn:
        with pytest.raises(errors.InsufficientPrivilege) as refused:
            run(conn, REFUSED[case], protocol, (True,))
        table = case.split("_")[0] if case.startswith("secrets") else "_".join(
            case.split("_")[:2])
        assert refused.value.diag.message_primary == f'permission for table "{table}" denied'
        assert refused.value.diag.sqlstate == "42501"
        assert run(conn, "SELECT count(*) FROM orders WHERE %s", protocol, (True,)) == [(0,)]


def test_table_access_in_a_transaction_aborts_it_as_postgresql_would(
        guarded: ProxyProcess) -> None:
    with connect(guarded, autocommit=False) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM pg_user")
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchall() == [(1,)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_query_logger_logs_pool_user_and_query(guarded: ProxyProcess, protocol: str) -> None:
    marker = f"logged-{protocol}-{time.monotonic_ns()}"
    with connect(guarded) as conn:
        run(conn, f"SELECT '{marker}' AS m", protocol)
    deadline = time.monotonic() + 5
    line = f"[pool: app][user: app] SELECT '{marker}' AS m"
    while line not in guarded.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in guarded.log_text()


def test_pool_plugins_replace_the_global_ones(topology: Topology, proxy_runner: ProxyRunner
                                              ) -> None:
    own = pool_tables(topology, "own", PARSER)
    own += "[pools.own.plugins.query_logger]\nenabled = false\n"  # nothing on: no table_access
    proxy = proxy_runner(config(topology, PARSER, TABLE_ACCESS + own))
    with connect(proxy, dbname="own") as conn:
        assert conn.execute("SELECT count(*) > 0 FROM pg_user").fetchall() == [(True,)]
    with connect(proxy) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM pg_user")


def test_plugins_need_the_query_parser(topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(config(topology, {"default_role": "primary"}, TABLE_ACCESS))
    with connect(proxy) as conn:  # pgcat runs plugins on parsed statements only
        assert conn.execute("SELECT count(*) > 0 FROM pg_user").fetchall() == [(True,)]


# --- plugin_module: the example hook --------------------------------------------------------
@pytest.fixture(scope="module")
def hooked(topology: Topology, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ProxyProcess]:
    """Parser on, no read/write splitting, default_role primary: only the hook moves reads."""
    workdir = tmp_path_factory.mktemp("hooked")
    shutil.copy(EXAMPLE_HOOK, workdir / EXAMPLE_HOOK.name)  # next to pgcat.toml
    pool: dict[str, TomlValue] = {**PARSER, "default_role": "primary",
                                  "plugin_module": EXAMPLE_HOOK.stem}
    proxy = start_proxy(config(topology, pool), workdir)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hook_moves_reads_of_reports_to_the_replica(
        hooked: ProxyProcess, topology: Topology, protocol: str) -> None:
    primary, replica = roles(topology)
    with connect(hooked) as conn:
        for _ in range(3):
            assert port_of(conn, "SELECT inet_server_port() FROM reports WHERE id > %s",
                           protocol, (0,)) == replica
            assert port_of(conn, "SELECT inet_server_port() FROM orders RIGHT JOIN "
                           "(SELECT %s) one ON false", protocol, (0,)) == primary


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hook_refuses_delete_without_where_and_the_session_goes_on(
        hooked: ProxyProcess, topology: Topology, protocol: str) -> None:
    with connect(hooked) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="DELETE without WHERE"):
            run(conn, "DELETE FROM orders RETURNING %s::int", protocol, (1,))
        assert run(conn, "DELETE FROM orders WHERE id = %s RETURNING id", protocol, (-1,)) == []
        assert port_of(conn, "SELECT %s::int, inet_server_port()", protocol, (1,)) \
            == topology.primary.port


def test_hook_that_cannot_be_imported_stops_the_proxy(topology: Topology,
                                                      tmp_path: Path) -> None:
    text = config(topology, {**PARSER, "plugin_module": "no_such_policy_module"})
    with pytest.raises(ProxyStartError, match=r"pools\.app\.plugin_module: cannot import"):
        start_proxy(text, tmp_path / "bad")


def test_reload_loads_a_hook_and_refuses_one_that_cannot_load(topology: Topology,
                                                              tmp_path: Path) -> None:
    workdir = tmp_path / "reload"
    proxy = start_proxy(config(topology, {**PARSER, "default_role": "primary"}), workdir)
    try:
        text = proxy.config_path.read_text()
        with_hook = text.replace("query_parser_enabled = true",
                                 'query_parser_enabled = true\nplugin_module = "{}"')
        proxy.config_path.write_text(with_hook.format("no_such_policy_module"))
        with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgcat"),
                             autocommit=True) as admin:
            with pytest.raises(psycopg.Error, match=r"pools\.app\.plugin_module"):
                admin.execute("RELOAD")
            with connect(proxy) as conn:
                conn.execute("DELETE FROM orders")  # no hook: the old config runs
            shutil.copy(EXAMPLE_HOOK, workdir / EXAMPLE_HOOK.name)
            proxy.config_path.write_text(with_hook.format(EXAMPLE_HOOK.stem))
            admin.execute("RELOAD")
        with connect(proxy) as conn, pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM orders")
    finally:
        proxy.stop()


# --- db_activity_based_routing ---------------------------------------------------------------
ACTIVITY: dict[str, TomlValue] = {**SPLIT, "db_activity_based_routing": True,
                                  "db_activity_init_delay": 300,
                                  "table_mutation_cache_ms_ttl": 1500}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_db_activity_sends_reads_of_just_written_tables_to_the_primary(
        topology: Topology, proxy_runner: ProxyRunner, protocol: str) -> None:
    primary, replica = roles(topology)
    proxy = proxy_runner(config(topology, ACTIVITY, pool_tables(topology, "other", ACTIVITY)))
    read_orders = "SELECT (SELECT count(*) FROM orders WHERE %s), inet_server_port()"
    read_customers = "SELECT (SELECT count(*) FROM customers WHERE %s), inet_server_port()"
    with connect(proxy) as conn, connect(proxy, dbname="other") as other:
        assert port_of(conn, read_customers, protocol, (True,)) == primary  # initializing
        time.sleep(0.4)
        assert port_of(conn, read_orders, protocol, (True,)) == replica
        run(conn, "INSERT INTO orders VALUES (%s, 'x') RETURNING id", protocol, (1,))
        written = time.monotonic()
        assert port_of(conn, read_orders, protocol, (True,)) == primary  # read your write
        assert port_of(conn, read_customers, protocol, (True,)) == replica  # other table
        assert port_of(other, read_orders, protocol, (True,)) == primary  # initializing
        time.sleep(0.4)
        assert port_of(other, read_orders, protocol, (True,)) == replica  # per pool
        time.sleep(max(0.0, 1.6 - (time.monotonic() - written)))
        assert port_of(conn, read_orders, protocol, (True,)) == replica  # forgotten
        run(conn, "DELETE FROM orders WHERE id = %s RETURNING id", protocol, (1,))
    with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgcat"),
                         autocommit=True) as admin:
        reasons = {row[4] for row in admin.execute("SHOW ROUTES").fetchall()
                   if row[0] == "app"}
    assert {"db activity initializing", "recently written table"} <= reasons, reasons


# --- plugins on the rest of a transaction (plugins/linked.py) -------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_table_access_inside_a_transaction_refuses_and_aborts_it(
        guarded: ProxyProcess, protocol: str) -> None:
    # Without it a denied table was one BEGIN away: only a transaction's first statement
    # went through the plugins.
    with connect(guarded, autocommit=False) as conn:
        assert run(conn, "SELECT count(*) FROM orders WHERE %s", protocol, (True,)) == [(0,)]
        with pytest.raises(errors.InsufficientPrivilege) as refused:
            run(conn, "SELECT * FROM pg_user WHERE %s", protocol, (True,))
        assert refused.value.diag.message_primary == 'permission for table "pg_user" denied'
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchall() == [(1,)]


def test_query_logger_logs_every_statement_of_a_transaction(guarded: ProxyProcess) -> None:
    marker = f"in-block-{time.monotonic_ns()}"
    with connect(guarded, autocommit=False) as conn:
        conn.execute("SELECT 1")
        conn.execute(f"SELECT '{marker}' AS m")
        conn.commit()
    line = f"[pool: app][user: app] SELECT '{marker}' AS m"
    assert wait_for(lambda: line in guarded.log_text(), 5.0), guarded.log_tail()


def test_table_access_in_session_mode_after_the_first_query(
        topology: Topology, proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(config(topology, {**PARSER, "pool_mode": "session"}, TABLE_ACCESS))
    with connect(proxy) as conn:
        assert conn.execute("SELECT 1").fetchall() == [(1,)]  # the server is held from here
        for _ in range(2):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM pg_user")
        assert conn.execute("SELECT 2").fetchall() == [(2,)]
