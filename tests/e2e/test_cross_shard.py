"""Cross-shard SELECT (issue 12, item 1), differentially: the same rows in one PostgreSQL
table and spread over 3 shards by pg_bigint_hash (each shard's table is `PARTITION BY HASH`
with only its own partition, so a row on the wrong shard is refused by PostgreSQL itself).
Seeded random SELECTs through the proxy must give what the single server gives: the same
column names and type OIDs, the same rows (in the same order when ORDER BY fixes it).
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from sharding import ShardingFunction, ShardMap
from tests.conftest import own_topology
from tests.harness.proxy import ProxyProcess, proxy_config, start_proxy
from tests.harness.waiting import wait_for

from .conftest import dsn
from .cross_shard_queries import ORDERED, QueryGenerator, canonical, fully_ordered

pytestmark = [pytest.mark.pg, pytest.mark.timeout(300)]

SHARDS = 3
ROWS = 400
SEED = 12
QUERIES = 300
TABLE = ("(id bigint NOT NULL, grp int, val numeric(10, 2), f float8, name text, "
         "flag bool, small int, ts timestamptz, d date)")
EPOCH = datetime.datetime(2024, 10, 26, 22, tzinfo=datetime.UTC)  # a DST change near
Connection = psycopg.Connection[tuple[object, ...]]


def _rows() -> list[tuple[object, ...]]:
    rng = random.Random(SEED)
    rows: list[tuple[object, ...]] = []
    for id_ in range(1, ROWS + 1):
        rows.append((id_, rng.choice([None, *range(8)]),
                     None if rng.random() < 0.1 else Decimal(rng.randrange(-5000, 5000)) / 100,
                     None if rng.random() < 0.1 else float(rng.randrange(-100, 100)) / 4,
                     rng.choice([None, "alpha", "beta", "Gamma", "delta", "épsilon", "zeta"]),
                     rng.choice([None, True, False]), rng.randrange(5),
                     None if rng.random() < 0.1 else
                     EPOCH + datetime.timedelta(minutes=rng.randrange(0, 600)),
                     rng.choice([None, datetime.date(1999, 12, 31), datetime.date(2024, 2, 29),
                                 datetime.date(1, 1, 1), datetime.date(2000, 1, 1)])))
    return rows


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    with own_topology(replicas=0, shards=SHARDS) as topo:
        _load(topo)
        yield topo


USER_AGGREGATE = "CREATE AGGREGATE my_total (int8) (sfunc = int8pl, stype = int8)"


def _load(topo: Topology) -> None:
    rows = _rows()
    shard_map = ShardMap(SHARDS, ShardingFunction.parse("pg_bigint_hash"))
    insert = "INSERT INTO data VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    with psycopg.connect(topo.primary.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE data {TABLE}")
        conn.cursor().executemany(insert, rows)
        conn.execute(USER_AGGREGATE)
    for index, shard in enumerate(topo.shards):
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            conn.execute(USER_AGGREGATE)
            conn.execute(f"CREATE TABLE data {TABLE} PARTITION BY HASH (id)")
            conn.execute(f"CREATE TABLE data_{index} PARTITION OF data "
                         f"FOR VALUES WITH (MODULUS {SHARDS}, REMAINDER {index})")
            mine = [r for r in rows if shard_map.shard_for(r[0]) == index]
            conn.cursor().executemany(insert, mine)


@pytest.fixture(scope="module")
def proxy(topology: Topology, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ProxyProcess]:
    text = proxy_config(topology, port=free_port(), pool_size=4, sharded_pool=True,
                        extra_pool={"query_parser_enabled": True,
                                    "automatic_sharding_key": "data.id",
                                    "cross_shard_queries": True,
                                    "cross_shard_max_rows": 1000})
    started = start_proxy(text, Path(tmp_path_factory.mktemp("cross_shard")))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def oracle(topology: Topology) -> Iterator[Connection]:
    with psycopg.connect(topology.primary.dsn(), autocommit=True) as conn:
        yield conn


def through(proxy: ProxyProcess, **kwargs: object) -> Connection:
    return psycopg.connect(dsn(proxy, dbname="sharded"), autocommit=True, **kwargs)  # type: ignore[arg-type]


def result(conn: Connection, sql: str, prepare: bool | None = None
           ) -> tuple[list[tuple[str, int]], list[tuple[object, ...]]]:
    cursor = conn.execute(sql, prepare=prepare)
    description = [(c.name, c.type_code) for c in cursor.description or ()]
    return description, cursor.fetchall()


def assert_same(proxy_conn: Connection, oracle: Connection, sql: str,
                prepare: bool | None = None) -> None:
    expected = result(oracle, sql)
    got = result(proxy_conn, sql, prepare)
    assert got[0] == expected[0], sql
    if fully_ordered(sql):
        assert got[1] == expected[1], sql
    elif "LIMIT" in sql:
        assert len(got[1]) == len(expected[1]), sql
    else:
        assert canonical(got[1]) == canonical(expected[1]), sql


ORD = ORDERED  # the rows' order is fixed by ORDER BY: compared in order
EXAMPLES = [
    "SELECT * FROM data",
    ORD + "SELECT id, name FROM data ORDER BY id DESC LIMIT 7 OFFSET 3",
    ORD + "SELECT id, val FROM data ORDER BY val DESC NULLS LAST, id LIMIT 20",
    ORD + 'SELECT name COLLATE "C" AS n, id FROM data ORDER BY n NULLS FIRST, 2 DESC LIMIT 30',
    ORD + "SELECT count(*), sum(val), avg(val), min(f), max(id), avg(small), sum(small) FROM data",
    ORD + "SELECT grp, count(*), avg(f) AS mean FROM data GROUP BY grp ORDER BY grp NULLS FIRST",
    "SELECT grp, sum(val) FROM data GROUP BY 1 HAVING count(*) > 50 AND sum(val) > 0 "
    "ORDER BY 2 DESC",
    ORD + "SELECT DISTINCT grp FROM data ORDER BY grp",
    "SELECT DISTINCT name, flag FROM data",
    ORD + "SELECT flag, bool_and(small > 0), bool_or(small = 4), "
    "count(id) FILTER (WHERE grp > 3) FROM data GROUP BY flag ORDER BY flag",
    ORD + "SELECT count(*) FROM data WHERE id IN (1, 2, 3, 4, 5)",
    ORD + "SELECT id FROM data WHERE id = ANY(ARRAY[7, 8, 9, 10]) ORDER BY id",
    ORD + "SELECT avg(val) FROM data WHERE id < 0",
    "SELECT grp, max(val) AS m FROM data GROUP BY grp ORDER BY m DESC NULLS LAST LIMIT 3",
    ORD + "SELECT id, ts FROM data ORDER BY ts DESC NULLS LAST, id LIMIT 25",
    ORD + "SELECT id FROM data ORDER BY id DESC OFFSET 5 ROWS FETCH FIRST 4 ROWS ONLY",
    ORD + "SELECT id, name FROM data WHERE grp = 1 UNION ALL SELECT id, name FROM data "
    "WHERE small = 2 ORDER BY 1 DESC LIMIT 30 OFFSET 2",
    "SELECT grp, small FROM data WHERE flag UNION SELECT small, grp FROM data",
    ORD + "SELECT grp FROM data UNION SELECT small FROM data UNION SELECT 42 ORDER BY 1",
    ORD + "SELECT d, min(ts), max(ts), count(*) FROM data GROUP BY d ORDER BY d NULLS FIRST",
    ORD + "SELECT count(*), sum(a.small + b.small) FROM data a JOIN data b ON a.id = b.id",
    ORD + "SELECT count(DISTINCT grp), sum(DISTINCT grp), avg(DISTINCT grp), count(*) FROM data",
    ORD + "SELECT flag, count(DISTINCT name), max(val) FROM data GROUP BY flag ORDER BY 1",
    ORD + "SELECT count(DISTINCT grp), count(*) FROM data WHERE id < 0",
    ORD + "SELECT flag, count(DISTINCT grp), avg(DISTINCT small), count(DISTINCT d), sum(val) "
    "FROM data GROUP BY flag ORDER BY flag",
    ORD + "SELECT grp, count(DISTINCT small) FILTER (WHERE flag), sum(DISTINCT small) FILTER "
    "(WHERE val > 0), count(DISTINCT name), min(DISTINCT f) FILTER (WHERE small < 3) "
    "FROM data GROUP BY grp ORDER BY grp NULLS FIRST",
    ORD + "SELECT count(*) AS n, small FROM data GROUP BY 2 ORDER BY 2",
    ORD + "SELECT count(*), count(*) AS n, grp, grp, max(id), max(id) FROM data GROUP BY grp "
    "ORDER BY 3 NULLS FIRST",
    ORD + "SELECT grp, sum(val) / count(*) AS ratio, round(avg(val), 2), grp || ':' || count(*), "
    "sum(small) / count(*) FROM data GROUP BY grp ORDER BY 2 DESC NULLS LAST, 1",
    ORD + "SELECT coalesce(sum(val) FILTER (WHERE grp > 100), 0), count(*) > 10, "
    "max(val) - min(val) FROM data",
    ORD + "SELECT grp, count(*) FROM data GROUP BY grp HAVING sum(val) / count(*) > 0 "
    "OR abs(min(val)) > 49 ORDER BY max(id) - min(id) DESC, grp",
    ORD + "SELECT grp, small, count(*) FROM data GROUP BY grp, small "
    "HAVING grp IN (1, 2, 3) AND small BETWEEN 1 AND 3 ORDER BY 1, 2",
    ORD + "SELECT stddev(val), variance(val), stddev_pop(small), var_pop(small), "
    "var_samp(grp) FILTER (WHERE flag) FROM data",
    ORD + "SELECT grp, stddev_samp(val) FROM data WHERE id < 40 GROUP BY grp ORDER BY grp",
]


@pytest.mark.parametrize("sql", EXAMPLES)
def test_example_matches_one_server(proxy: ProxyProcess, oracle: Connection, sql: str) -> None:
    with through(proxy) as conn:
        assert_same(conn, oracle, sql)


@pytest.mark.parametrize("sql", EXAMPLES)
def test_example_extended_protocol_prepared(proxy: ProxyProcess, oracle: Connection,
                                            sql: str) -> None:
    with through(proxy) as conn:
        for _ in range(2):  # prepared on the first run, then Bind / Execute only
            assert_same(conn, oracle, sql, prepare=True)


def test_generated_selects_match_one_server(proxy: ProxyProcess, oracle: Connection) -> None:
    generator = QueryGenerator(random.Random(SEED))
    with through(proxy) as conn, through(proxy, prepare_threshold=0) as prepared:
        for number in range(QUERIES):
            sql = generator.query()
            assert_same(prepared if number % 3 == 0 else conn, oracle, sql)


REFUSED = {
    "window": "SELECT id, row_number() OVER (ORDER BY id) FROM data",
    "ordered_by_text_without_c": "SELECT string_agg(name, ',' ORDER BY name) FROM data",
    "stddev_of_float8": "SELECT stddev(f) FROM data",
    "subquery": "SELECT id FROM data WHERE grp IN (SELECT grp FROM data WHERE id = 1)",
    "text_order_without_c": "SELECT name FROM data ORDER BY name",
    "text_min": "SELECT min(name) FROM data",
    "distinct_on": "SELECT DISTINCT ON (grp) grp, id FROM data ORDER BY grp, id",
    "limit_parameter": "SELECT id FROM data ORDER BY id LIMIT (SELECT 1)",
    "join_off_the_key": "SELECT count(*) FROM data a JOIN data b ON a.grp = b.grp",
    "intersect": "SELECT grp FROM data INTERSECT SELECT small FROM data",
    "union_in_union_all": "SELECT grp FROM data UNION SELECT 1 UNION ALL SELECT 2 FROM data",
}


@pytest.mark.parametrize("case", REFUSED)
def test_unmergeable_select_is_refused_with_0a000(proxy: ProxyProcess, case: str) -> None:
    with through(proxy) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute(REFUSED[case])
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (ROWS,)  # goes on


def test_too_many_groups_is_a_clear_error(proxy: ProxyProcess) -> None:
    with through(proxy) as conn:
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded,
                           match="cross_shard_max_rows"):
            conn.execute("SELECT d.id, g, count(*) FROM data d, generate_series(1, 3) g "
                         "GROUP BY 1, 2")  # 1,200 groups
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_shard_error_reaches_the_client_and_the_session_goes_on(proxy: ProxyProcess) -> None:
    with through(proxy) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):  # raised by the final expression
            conn.execute("SELECT 1 / (count(*) - count(*)) FROM data")
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT nope FROM data")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT id / 0 FROM data")
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (ROWS,)


def test_a_user_defined_aggregate_is_refused_not_answered_per_shard(
        proxy: ProxyProcess, oracle: Connection) -> None:
    # It looks like any function: merged as one, each shard's total would be a row.
    def refused() -> bool:
        with through(proxy) as conn:
            try:
                conn.execute("SELECT my_total(id) FROM data")
            except psycopg.errors.FeatureNotSupported as exc:
                return "user-defined aggregate my_total" in str(exc)
        return False

    assert wait_for(refused, 10.0)  # the catalog is read when the pool starts
    with through(proxy) as conn:
        assert result(conn, "SELECT my_total(id) FROM data WHERE id = 7") == \
            result(oracle, "SELECT my_total(id) FROM data WHERE id = 7")


def test_inside_a_transaction_a_keyless_select_is_refused_not_half_answered(
        proxy: ProxyProcess) -> None:
    # default_shard would answer with one shard's rows; a key still routes to its shard.
    with through(proxy) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported), conn.transaction():
            conn.execute("SELECT count(*) FROM data")
        with conn.transaction():
            assert conn.execute("SELECT count(*) FROM data WHERE id = 1").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (ROWS,)


async def test_asyncpg_binary_results_match_one_server(proxy: ProxyProcess,
                                                       oracle: Connection) -> None:
    """asyncpg prepares (Parse + Describe, no Execute), then binds with binary results."""
    conn = await asyncpg.connect(host=proxy.host, port=proxy.port, user="app",
                                 password="app", database="sharded")
    try:
        for sql in [*EXAMPLES, *REFUSED_WITH_BINARY]:
            expected = result(oracle, sql)
            statement = await conn.prepare(sql)
            names = [(a.name, a.type.oid) for a in statement.get_attributes()]
            rows = [tuple(r) for r in await statement.fetch()]
            assert names == expected[0], sql
            if fully_ordered(sql):
                assert rows == expected[1], sql
            elif "LIMIT" in sql:
                assert len(rows) == len(expected[1]), sql
            else:
                assert canonical(rows) == canonical(expected[1]), sql
    finally:
        await conn.close()


REFUSED_WITH_BINARY: list[str] = []


PARAMETERIZED = [
    (ORD + "SELECT id, val FROM data WHERE small > %s ORDER BY val NULLS FIRST, id", (2,)),
    (ORD + "SELECT grp, count(*), avg(val) FROM data WHERE f < %s GROUP BY grp ORDER BY grp",
     (1.5,)),
    (ORD + "SELECT id, name FROM data WHERE id IN (%s, %s, %s, %s) ORDER BY id",
     (5, 77, 301, 399)),  # keys on several shards, not all: only those shards
    (ORD + "SELECT count(*), max(id) FROM data WHERE id = ANY(%s)", ([1, 2, 3, 200],)),
]


@pytest.mark.parametrize(("sql", "params"), PARAMETERIZED)
@pytest.mark.parametrize("prepare", [False, True])
def test_bind_parameters_reach_every_shard(proxy: ProxyProcess, oracle: Connection, sql: str,
                                           params: tuple[object, ...], prepare: bool) -> None:
    with through(proxy) as conn:
        for _ in range(2):
            got = conn.execute(sql, params, prepare=prepare)
            expected = oracle.execute(sql, params)
            assert [c.name for c in got.description or ()] == \
                [c.name for c in expected.description or ()]
            assert got.fetchall() == expected.fetchall()


@pytest.mark.parametrize("prepare", [False, True])
def test_string_agg_and_array_agg_hold_the_same_values(proxy: ProxyProcess, oracle: Connection,
                                                      prepare: bool) -> None:
    sql = ("SELECT grp, string_agg(name, ' | '), array_agg(small), array_agg(val), count(*) "
           "FROM data GROUP BY grp ORDER BY grp")
    with through(proxy) as conn:
        got = conn.execute(sql, prepare=prepare).fetchall()
    expected = oracle.execute(sql).fetchall()

    def unordered(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        return [(g, sorted(str(s).split(" | ")) if s is not None else None,
                 sorted(a, key=repr), sorted(v, key=repr), n)  # type: ignore[arg-type]
                for g, s, a, v, n in rows]
    assert unordered(got) == unordered(expected)


ORDERED_AGGREGATES = [
    "SELECT grp, string_agg(name, ',' ORDER BY id DESC), array_agg(small ORDER BY id), "
    "count(*), string_agg(name, '' ORDER BY id DESC) FILTER (WHERE flag) "
    "FROM data WHERE id < 100 GROUP BY grp ORDER BY grp",
    "SELECT array_agg(val ORDER BY val NULLS FIRST, id), count(DISTINCT small) FROM data "
    "WHERE small > 2 AND id < 200",
    'SELECT flag, string_agg(name, \'-\' ORDER BY name COLLATE "C" DESC, id) FROM data '
    "WHERE id < 100 GROUP BY flag ORDER BY flag",
    "SELECT small, string_agg(name, ',' ORDER BY id), array_agg(id ORDER BY grp DESC, id), "
    "count(DISTINCT grp) FROM data WHERE id < 80 GROUP BY small ORDER BY small",
    "SELECT d, max(ts) - min(ts), to_char(max(ts), 'YYYY') FROM data GROUP BY d "
    "ORDER BY d NULLS LAST",  # text results: an interval has no binary merge
]


@pytest.mark.parametrize("sql", ORDERED_AGGREGATES)
@pytest.mark.parametrize("prepare", [False, True])
def test_ordered_string_agg_and_array_agg_match_one_server(
        proxy: ProxyProcess, oracle: Connection, sql: str, prepare: bool) -> None:
    with through(proxy) as conn:
        assert_same(conn, oracle, ORDERED + sql, prepare=prepare)


def test_float_sums_need_shortest_float_output(proxy: ProxyProcess) -> None:
    with through(proxy) as conn:
        conn.execute("SET extra_float_digits = 0")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="extra_float_digits"):
            conn.execute("SELECT avg(f) FROM data")
        assert conn.execute("SELECT max(f) FROM data").fetchone() is not None  # no sum: fine


def test_explain_route_shows_the_merge_or_the_refusal(proxy: ProxyProcess) -> None:
    with through(proxy) as conn:
        row = conn.execute("EXPLAIN ROUTE SELECT grp, count(*) FROM data GROUP BY grp"
                           ).fetchone()
        assert row is not None and row[0] == -1 and "grouped" in row[2], row
        assert len(row[3].split(",")) == SHARDS, row
        row = conn.execute("EXPLAIN ROUTE SELECT sum(id) OVER () FROM data").fetchone()
        assert row is not None and "refused (0A000)" in row[2], row


def test_a_cancel_request_stops_a_cross_shard_query_on_every_shard(proxy: ProxyProcess) -> None:
    sql = "SELECT count(*) FROM data WHERE pg_sleep(0.05) IS NOT NULL"
    with through(proxy) as conn:
        route = conn.execute(f"EXPLAIN ROUTE {sql}").fetchone()
        assert route is not None and route[0] == -1, route  # every shard
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(sql)
        assert time.monotonic() - started < 4  # ~7 s per shard without the cancel
        timer.join()
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (ROWS,)


def test_dates_are_compared_only_in_datestyle_iso(proxy: ProxyProcess) -> None:
    with through(proxy) as conn:
        conn.execute("SET DateStyle = 'SQL, DMY'")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="DateStyle"):
            conn.execute("SELECT id FROM data ORDER BY ts, id")
        conn.execute("SET DateStyle = 'ISO, MDY'")
        assert len(conn.execute("SELECT id FROM data ORDER BY ts, id").fetchall()) == ROWS


def test_a_statement_prepared_by_a_cross_shard_query_runs_later_on_one_shard(
        proxy: ProxyProcess, oracle: Connection) -> None:
    sql = "SELECT id, name FROM data WHERE id IN (%s, %s) ORDER BY id"
    shard_map = ShardMap(SHARDS, ShardingFunction.parse("pg_bigint_hash"))
    other = next(k for k in range(2, ROWS) if shard_map.shard_for(k) != shard_map.shard_for(1))
    with through(proxy) as conn:
        for params in [(1, other), (1, 1), (other, other), (1, other)]:
            got = conn.execute(sql, params, prepare=True).fetchall()  # named: _pg3_0
            assert got == oracle.execute(sql, params).fetchall(), params


async def test_asyncpg_prepared_statement_moves_between_one_and_several_shards(
        proxy: ProxyProcess, oracle: Connection) -> None:
    conn = await asyncpg.connect(host=proxy.host, port=proxy.port, user="app",
                                 password="app", database="sharded")
    try:
        statement = await conn.prepare(
            "SELECT id, val FROM data WHERE id = ANY($1::bigint[]) ORDER BY id")
        for keys in ([1, 2, 3, 250], [7], [7, 7], list(range(1, 40))):
            rows = [tuple(r) for r in await statement.fetch(keys)]
            expected = oracle.execute("SELECT id, val FROM data WHERE id = ANY(%s) ORDER BY id",
                                      (keys,)).fetchall()
            assert rows == expected, keys
    finally:
        await conn.close()


def _active_servers(proxy: ProxyProcess) -> int:
    with psycopg.connect(dsn(proxy, user="admin", password="admin", dbname="pgbouncer"),
                         autocommit=True, prepare_threshold=None) as console:
        cursor = console.execute("SHOW POOLS")
        names = [c.name for c in cursor.description or ()]
        pools = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(p["sv_active"]) for p in pools if p["database"] == "sharded")


def test_a_client_gone_mid_stream_leaves_no_server_behind(proxy: ProxyProcess) -> None:
    """A client that stops reading then disconnects while a large merged result streams:
    every shard server is discarded or given back, none stays active."""
    raw = psycopg.pq.PGconn.connect(dsn(proxy, dbname="sharded").encode())
    assert raw.status == psycopg.pq.ConnStatus.OK
    raw.send_query(b"SELECT d.id, g FROM data d, generate_series(1, 3000) g ORDER BY g, d.id")
    time.sleep(0.5)  # rows flow until the client's socket is full, then the merge waits
    assert _active_servers(proxy) == SHARDS  # one server per shard, held while it streams
    raw.finish()
    deadline = time.monotonic() + 10
    while _active_servers(proxy) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _active_servers(proxy) == 0
    with through(proxy) as conn:
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (ROWS,)
