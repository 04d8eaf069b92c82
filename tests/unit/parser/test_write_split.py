"""parser/write_split.py: a multi-row INSERT cut per shard, UPDATE / DELETE checked for a
broadcast. Shards come from sharding/'s pg_bigint_hash over 3 shards."""

from __future__ import annotations

import pytest

from parser import ParamRef
from parser.classification import KeyValue
from parser.settings import ShardingKey
from parser.write_split import WriteUnsupported, check_broadcast, split_insert
from sharding import ShardMap

KEYS = (ShardingKey("data", "id"),)
SHARDS = ShardMap(3)


def by_hash(value: KeyValue | ParamRef) -> int:
    assert not isinstance(value, ParamRef)
    return SHARDS.shard_for(value)


def by_position(value: KeyValue | ParamRef) -> int:
    """Parameters: $n goes to shard n % 3 (the executor reads the Bind for real)."""
    assert isinstance(value, ParamRef)
    return value.position % 3


def test_rows_go_to_their_keys_shards_with_other_clauses_kept() -> None:
    sql = ("INSERT INTO data (id, v) VALUES (1, 'a'), (2, 'b'), (3, E'c\\n'), (-4, 'd'::text) "
           "ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v RETURNING id, v")
    parts = split_insert(sql, KEYS, by_hash)
    assert sorted(i for p in parts for i in p.rows) == [0, 1, 2, 3]
    texts = {"(1, 'a')": 1, "(2, 'b')": 2, "(3, E'c\\n')": 3, "(-4, 'd'::text)": -4}
    for part in parts:
        assert part.sql.startswith("INSERT INTO data (id, v) VALUES (")
        assert part.sql.endswith(" ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v RETURNING id, v")
        for text, key in texts.items():
            assert (text in part.sql) == (SHARDS.shard_for(key) == part.shard)
    assert [p.shard for p in parts] == sorted(p.shard for p in parts)


def test_rows_keep_their_order_within_a_shard() -> None:
    ids = list(range(1, 30))
    sql = "insert into data (v, id) values " + ", ".join(f"('x', {i})" for i in ids)
    for part in split_insert(sql, KEYS, by_hash):
        assert list(part.rows) == [i - 1 for i in ids if SHARDS.shard_for(i) == part.shard]
        assert part.sql.count("(") == len(part.rows) + 1


def test_parameters_are_renumbered_per_shard() -> None:
    sql = "INSERT INTO data (v, id) VALUES ($1,$2),($3,$4),($5,$6) RETURNING $7::int"
    parts = {p.shard: p for p in split_insert(sql, KEYS, by_position)}
    assert parts[2].params == (1, 2, 7) and parts[2].rows == (0,)
    assert parts[0].params == (5, 6, 7)
    assert "$1" in parts[0].sql and "$3" in parts[0].sql and "$5" not in parts[0].sql


def test_quoted_names_and_comments_do_not_confuse_the_cut() -> None:
    sql = ('INSERT INTO "data" ("id", "values(") VALUES /* (9) */ (1, \'(\'), (2, \')\')'
           " RETURNING \"values(\"")
    parts = split_insert(sql, KEYS, by_hash)
    assert sorted(i for p in parts for i in p.rows) == [0, 1]
    assert all('RETURNING "values("' in p.sql for p in parts)


@pytest.mark.parametrize("sql", [
    "INSERT INTO data (id, v) VALUES (1, 'a'), (1 + 1, 'b')",
    "INSERT INTO data (id, v) VALUES (1, 'a'), (DEFAULT, 'b')",
    "INSERT INTO data (id, v) VALUES (1, 'a'), (NULL, 'b')",
    "INSERT INTO data VALUES (1, 'a')",
    "INSERT INTO data (v) VALUES ('a')",
    "INSERT INTO data (id, v) SELECT id, v FROM other",
    "WITH x AS (SELECT 1) INSERT INTO data (id) VALUES (1)",
    "INSERT INTO data (id, v) VALUES (1, (SELECT max(v) FROM data))",
    "INSERT INTO data (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 5",
    "INSERT INTO data (id) VALUES (1); INSERT INTO data (id) VALUES (2)",
])
def test_keys_that_cannot_be_placed_are_refused(sql: str) -> None:
    with pytest.raises(WriteUnsupported):
        split_insert(sql, KEYS, by_hash)


@pytest.mark.parametrize("sql", [
    "UPDATE data SET v = 1",
    "UPDATE data SET v = $1 WHERE v = $2",
    "DELETE FROM data WHERE v LIKE 'a%' RETURNING *",
    "DELETE FROM data USING reference r WHERE data.v = r.v",
])
def test_broadcast_writes(sql: str) -> None:
    check_broadcast(sql, KEYS)


@pytest.mark.parametrize("sql", [
    "UPDATE data SET id = id + 1",
    "DELETE FROM data WHERE v IN (SELECT v FROM data WHERE id = 1)",
    "UPDATE data SET v = 1 FROM data d2 WHERE d2.v = data.v",
    "SELECT 1",
])
def test_broadcast_refusals(sql: str) -> None:
    with pytest.raises(WriteUnsupported):
        check_broadcast(sql, KEYS)
