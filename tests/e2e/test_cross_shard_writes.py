"""Cross-shard writes (issue 12, item 2) against 3 real shards. Each shard's table is
`PARTITION BY HASH (id)` with only its own partition (MODULUS 3), so PostgreSQL itself
refuses a row sent to the wrong shard; the rows found on each shard are also compared with
sharding/'s pg_bigint_hash. One proxy allows cross-shard writes, one keeps the default
("refuse"): pgcat's behaviour, unchanged.
"""

from __future__ import annotations

import os
import subprocess
import threading

import asyncpg
import psycopg
import pytest

from pgcat_py.localpg import Topology
from tests.harness.proxy import ProxyProcess

from .sharded_writes import (  # noqa: F401 (the module fixtures: topology, proxy, ...)
    SHARD_MAP,
    SHARDS,
    allowing_proxy,
    assert_placed,
    empty_shards,
    on_shards,
    refusing_proxy,
    through,
    topology,
)

pytestmark = [pytest.mark.pg, pytest.mark.timeout(300)]


def values(ids: list[int]) -> str:
    return ", ".join(f"({i}, 'v{i}')" for i in ids)


IDS = [7, 1, 12, 5, 3, 30, 2, 9, 11, 4]


def test_multi_row_insert_is_split_by_shard(proxy: ProxyProcess, empty: Topology) -> None:
    assert len({SHARD_MAP.shard_for(i) for i in IDS}) == SHARDS
    with through(proxy) as conn:
        cursor = conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)} "
                              "RETURNING id, v || '!' AS shout")
        assert cursor.rowcount == len(IDS)
        assert cursor.statusmessage == f"INSERT 0 {len(IDS)}"
        assert [c.name for c in cursor.description or ()] == ["id", "shout"]
        assert cursor.fetchall() == [(i, f"v{i}!") for i in IDS]  # the VALUES order
    assert_placed(empty, IDS)


def test_insert_without_returning_and_on_conflict(proxy: ProxyProcess, empty: Topology
                                                  ) -> None:
    with through(proxy) as conn:
        cursor = conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS[:5])}")
        assert cursor.statusmessage == "INSERT 0 5" and cursor.description is None
        cursor = conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)} "
                              "ON CONFLICT (id) DO NOTHING RETURNING id")
        assert cursor.statusmessage == "INSERT 0 5"
        assert sorted(r[0] for r in cursor.fetchall()) == sorted(IDS[5:])
        cursor = conn.execute("INSERT INTO data AS d (id, v) VALUES (1, 'x'), (2, 'y'), "
                              "(3, 'z') ON CONFLICT (id) DO UPDATE SET n = d.n + 1 "
                              "RETURNING id, n")
        assert cursor.fetchall() == [(1, 1), (2, 1), (3, 1)]
    assert_placed(empty, IDS)


def test_insert_with_parameters(proxy: ProxyProcess, empty: Topology) -> None:
    params: list[object] = []
    for i in IDS:
        params += [i, f"p{i}"]
    rows = ", ".join(["(%s, %s)"] * len(IDS))
    with through(proxy) as conn:
        cursor = conn.execute(f"INSERT INTO data (id, v) VALUES {rows} RETURNING v", params)
        assert cursor.fetchall() == [(f"p{i}",) for i in IDS]
        cursor = conn.execute("INSERT INTO data (id, v) VALUES (100, 'a'), (101, 'b'), "
                              "(102, 'c')", prepare=True)
        assert cursor.rowcount == 3
    assert_placed(empty, [*IDS, 100, 101, 102])


def test_update_and_delete_without_key_reach_every_shard(proxy: ProxyProcess,
                                                         empty: Topology) -> None:
    with through(proxy) as conn:
        conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)}")
        cursor = conn.execute("UPDATE data SET n = 7 WHERE id > 3 RETURNING id")
        assert cursor.statusmessage == f"UPDATE {sum(i > 3 for i in IDS)}"
        assert sorted(r[0] for r in cursor.fetchall()) == sorted(i for i in IDS if i > 3)
        cursor = conn.execute("UPDATE data SET v = %s WHERE n = %s", ["seven", 7])
        assert cursor.rowcount == sum(i > 3 for i in IDS)
        cursor = conn.execute("DELETE FROM data WHERE id IN (1, 2, 30)")
        assert cursor.statusmessage == "DELETE 3"
        assert conn.execute("DELETE FROM data WHERE id = 9").statusmessage == "DELETE 1"
    left = [i for i in IDS if i not in (1, 2, 30, 9)]
    assert_placed(empty, left)
    assert {r[2] for shard in on_shards(empty) for r in shard} == {0, 7}


@pytest.mark.parametrize("sql", [
    "INSERT INTO data (id, v) VALUES (1, 'a'), (2 + 1, 'b')",
    "INSERT INTO data (id, v) VALUES (1, 'a'), (DEFAULT, 'b')",
    "INSERT INTO data VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO data (id, v) SELECT g, 'x' FROM generate_series(1, 5) g",
    "UPDATE data SET id = id + 100",
    "DELETE FROM data WHERE v IN (SELECT v FROM data WHERE id = 1)",
])
def test_what_cannot_be_placed_is_refused(proxy: ProxyProcess, empty: Topology,
                                          sql: str) -> None:
    with through(proxy) as conn, pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute(sql)
    assert on_shards(empty) == [[], [], []]


def test_an_error_on_one_shard_writes_nothing(proxy: ProxyProcess, empty: Topology) -> None:
    with through(proxy) as conn:
        conn.execute("INSERT INTO data (id, v) VALUES (3, 'there')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)}")
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
    assert_placed(empty, [3])


def test_explicit_transaction_is_refused(proxy: ProxyProcess, empty: Topology) -> None:
    with through(proxy) as conn:
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)}")
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO data (id, v) VALUES (1, 'one')")  # one shard: as before
        conn.execute("COMMIT")
    assert_placed(empty, [1])


def test_refuse_keeps_pgcat_behaviour(refusing: ProxyProcess, empty: Topology) -> None:
    with through(refusing) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="on 3 shards"):
            conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)}")
        for i in IDS:  # one shard each, by the key
            conn.execute("INSERT INTO data (id, v) VALUES (%s, 'a')", [i])
        on_first = sum(SHARD_MAP.shard_for(i) == 0 for i in IDS)
        assert conn.execute("UPDATE data SET n = 1").rowcount == on_first  # default_shard
    assert_placed(empty, IDS)


def test_psql_sees_one_answer(proxy: ProxyProcess, empty: Topology) -> None:
    env = {**os.environ, "PGPASSWORD": "app"}
    sql = f"INSERT INTO data (id, v) VALUES {values(IDS)}; UPDATE data SET n = 2"
    out = subprocess.run(["psql", "-X", "-h", proxy.host, "-p", str(proxy.port), "-U", "app",
                          "-d", "sharded", "-c", sql.split("; ")[0], "-c", sql.split("; ")[1]],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["INSERT", "0", str(len(IDS)), "UPDATE", str(len(IDS))]
    assert_placed(empty, IDS)


def test_named_prepared_statement_is_split_each_time(proxy: ProxyProcess, empty: Topology
                                                     ) -> None:
    sql = "INSERT INTO data (id, v) VALUES (%s, %s), (%s, %s), (%s, %s) RETURNING id"
    with through(proxy) as conn:
        for start in (1, 4, 7, 10):  # psycopg prepares it by name after a few runs
            params = [x for i in range(start, start + 3) for x in (i, f"n{i}")]
            got = conn.execute(sql, params, prepare=True).fetchall()
            assert got == [(i,) for i in range(start, start + 3)]
    assert_placed(empty, list(range(1, 13)))


def test_cancel_rolls_back_every_shard(proxy: ProxyProcess, empty: Topology) -> None:
    with through(proxy) as conn:
        conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)}")
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("UPDATE data SET n = 1 WHERE (SELECT true FROM pg_sleep(3))")
        finally:
            timer.cancel()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert {r[2] for shard in on_shards(empty) for r in shard} == {0}


def test_a_failed_commit_names_the_shards_that_committed(proxy: ProxyProcess, empty: Topology
                                                         ) -> None:
    """A deferred constraint fails at COMMIT on one shard only: the others have committed
    (no two-phase commit); the client is told which, in a WARNING and the error's DETAIL."""
    boom = next(i for i in IDS if SHARD_MAP.shard_for(i) == 2)
    with psycopg.connect(empty.shards[2].dsn(), autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN IF NEW.v = 'boom' THEN RAISE EXCEPTION 'boom at commit'; "
                     "END IF; RETURN NULL; END $$")
        conn.execute("CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON data_2 DEFERRABLE "
                     "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION boom()")
    try:
        rows = ", ".join(f"({i}, '{'boom' if i == boom else 'ok'}')" for i in IDS)
        notices: list[str] = []
        with through(proxy) as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            with pytest.raises(psycopg.errors.RaiseException) as caught:
                conn.execute(f"INSERT INTO data (id, v) VALUES {rows}")
        detail = caught.value.diag.message_detail or ""
        assert "committed on shard(s) 0, 1" in detail and "failed to commit on shard(s) 2" in detail
        assert any("some shards only" in n for n in notices)
        assert_placed(empty, [i for i in IDS if SHARD_MAP.shard_for(i) != 2])
    finally:
        with psycopg.connect(empty.shards[2].dsn(), autocommit=True) as conn:
            conn.execute("DROP TRIGGER boom ON data_2")


async def test_asyncpg_binary_parameters_and_results(proxy: ProxyProcess, empty: Topology
                                                     ) -> None:
    """asyncpg prepares (Parse + Describe + Flush), then binds binary int8 keys and asks for
    binary results."""
    conn = await asyncpg.connect(host=proxy.host, port=proxy.port, user="app",
                                 password="app", database="sharded")
    try:
        args: list[object] = [x for i in IDS for x in (i, f"a{i}")]
        rows = ", ".join(f"(${2 * k + 1}, ${2 * k + 2})" for k in range(len(IDS)))
        got = await conn.fetch(f"INSERT INTO data (id, v) VALUES {rows} RETURNING id, v, n",
                               *args)
        assert [tuple(r) for r in got] == [(i, f"a{i}", 0) for i in IDS]
        status = await conn.execute("DELETE FROM data WHERE n = $1", 0)
        assert status == f"DELETE {len(IDS)}"
    finally:
        await conn.close()
    assert_placed(empty, [])


def test_explain_route_of_a_split_insert(proxy: ProxyProcess) -> None:
    with through(proxy) as conn:
        row = conn.execute(f"EXPLAIN ROUTE INSERT INTO data (id, v) VALUES {values(IDS)}"
                           ).fetchone()
    assert row is not None and row[0] == -1 and "split: shard 0 gets rows" in str(row[2])


def test_notices_of_every_shard_reach_the_client(proxy: ProxyProcess, empty: Topology) -> None:
    for shard in empty.shards:
        with psycopg.connect(shard.dsn(), autocommit=True) as conn:
            conn.execute("CREATE OR REPLACE FUNCTION shout(t text) RETURNS text LANGUAGE "
                         "plpgsql AS $$ BEGIN RAISE NOTICE 'shout %', t; RETURN t; END $$")
    notices: list[str] = []
    with through(proxy) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute(f"INSERT INTO data (id, v) VALUES {values(IDS)}")
        assert conn.execute("UPDATE data SET v = shout(v)").rowcount == len(IDS)
    assert sorted(notices) == sorted(f"shout v{i}" for i in IDS)


def test_psycopg_executemany_puts_each_row_on_its_shard(proxy: ProxyProcess, empty: Topology
                                                        ) -> None:
    with through(proxy) as conn:
        cursor = conn.cursor()
        cursor.executemany("INSERT INTO data (id, v) VALUES (%s, %s)",
                           [(i, f"m{i}") for i in IDS])
        cursor.executemany("UPDATE data SET n = %s WHERE id = %s RETURNING id, n",
                           [(i * 10, i) for i in IDS], returning=True)
        got = []
        while True:
            got += cursor.fetchall()
            if not cursor.nextset():
                break
        assert got == [(i, i * 10) for i in IDS]
    assert_placed(empty, IDS)


async def test_asyncpg_executemany_puts_each_row_on_its_shard(proxy: ProxyProcess,
                                                             empty: Topology) -> None:
    conn = await asyncpg.connect(host=proxy.host, port=proxy.port, user="app",
                                 password="app", database="sharded")
    try:
        await conn.executemany("INSERT INTO data (id, v) VALUES ($1, $2)",
                               [(i, f"m{i}") for i in IDS])
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.executemany("INSERT INTO data (id, v) VALUES ($1, $2)",
                                   [(i + 100, "x") for i in IDS] + [(IDS[0], "dup")])
    finally:
        await conn.close()
    assert_placed(empty, IDS)  # the failed batch wrote nothing anywhere


def test_a_statement_too_big_to_route_is_refused(proxy: ProxyProcess, empty: Topology) -> None:
    """Past the idle buffer (256 KiB) the proxy cannot read the keys: refused, never sent
    unread to default_shard as without cross_shard_writes."""
    rows = ", ".join(f"({i}, '{'x' * 40}')" for i in range(1, 60000))
    with through(proxy) as conn, pytest.raises(psycopg.OperationalError, match="KiB"):
        conn.execute(f"INSERT INTO data (id, v) VALUES {rows}")
    assert on_shards(empty) == [[], [], []]
