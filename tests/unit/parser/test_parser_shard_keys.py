"""Shard keys for automatic_sharding_key: pgcat's router tests (TPC-C included) and traps.

pgcat's tests assert shards (pg_bigint_hash, 3 shards: key 5 -> shard 2, 6 -> 0, 7 -> 1);
the parser returns keys and leaves hashing to the router, so the same cases assert keys.
Where pgcat gives up ("shard unchanged"), the parser says ALL or UNKNOWN explicitly.
"""

from __future__ import annotations

from uuid import UUID

import pytest

from parser import (
    KeyStatus,
    ParamRef,
    Parser,
    ParserSettings,
    ShardKeys,
)

FOUND = KeyStatus.FOUND


def keys(sql: str, key: str | list[str] = "data.id") -> ShardKeys:
    return Parser(ParserSettings.build(automatic_sharding_key=key)).classify(sql).shard_keys


def found(*values: object) -> ShardKeys:
    return ShardKeys(FOUND, values)  # type: ignore[arg-type]


ALL = ShardKeys(KeyStatus.ALL)
UNKNOWN = ShardKeys(KeyStatus.UNKNOWN)
NONE = ShardKeys(KeyStatus.NONE)


# pgcat test_automatic_sharding_key, key data.id (and *.unique_enough_column_name).
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM data WHERE id = 5", found(5)),
        ("SELECT one, two, three FROM public.data WHERE id = 6", found(6)),
        (
            "SELECT * FROM data INNER JOIN t2 ON data.id = 5 AND t2.data_id = data.id "
            "WHERE data.id = 5",
            found(5, 5),
        ),
        ('SELECT * FROM "public"."data" WHERE "id" = 6', found(6)),
        ('SELECT * FROM "public"."data" WHERE "data"."id" = 5', found(5)),
        ("SELECT * FROM data WHERE id = $1", found(ParamRef(1))),  # test_prepared_statements
    ],
)
def test_pgcat_automatic_sharding_key(sql: str, expected: ShardKeys) -> None:
    assert keys(sql) == expected


def test_unqualified_key_in_a_join_resolves_like_postgres() -> None:
    # pgcat calls this ambiguous and keeps the previous shard; PostgreSQL resolves `id` to
    # the one table of the join that has it (data), or rejects the query.
    sql = "SELECT * FROM t2 INNER JOIN data ON id = 6 AND data.id = t2.data_id"
    assert keys(sql) == found(6)


def test_star_key_matches_any_table() -> None:
    key = "*.unique_enough_column_name"
    assert keys("SELECT * FROM table_x WHERE unique_enough_column_name = 6", key) == found(6)
    assert keys("SELECT * FROM table_y WHERE another_key = 5", key) == ALL


# pgcat test_automatic_sharding_key_tpcc and _insert_update_delete, key *.w_id.
TPCC = [
    ("SELECT * FROM my_tbl WHERE w_id = 5", found(5)),
    ("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ", NONE),
    ("COMMIT", NONE),
    ("ROLLBACK", NONE),
    (
        "SELECT NO_O_ID FROM NEW_ORDER WHERE NO_D_ID = 7 AND W_ID = 5 AND NO_O_ID > 3 LIMIT 3",
        found(5),
    ),
    (
        "SELECT NO_O_ID FROM NEW_ORDER no WHERE no.NO_D_ID = 7 AND no.W_ID = 5 "
        "AND no.NO_O_ID > 3 LIMIT 3",
        found(5),
    ),
    ("DELETE FROM NEW_ORDER WHERE NO_D_ID = 7 AND W_ID = 5 AND NO_O_ID = 3", found(5)),
    ("SELECT O_C_ID FROM ORDERS WHERE O_ID = 3 AND O_D_ID = 3 AND W_ID = 5", found(5)),
    ("UPDATE ORDERS SET O_CARRIER_ID = 3 WHERE O_ID = 3 AND O_D_ID = 3 AND W_ID = 5", found(5)),
    (
        "UPDATE ORDER_LINE SET OL_DELIVERY_D = 3 WHERE OL_O_ID = 3 AND OL_D_ID = 3 AND W_ID = 5",
        found(5),
    ),
    (
        "SELECT SUM(OL_AMOUNT) FROM ORDER_LINE WHERE OL_O_ID = 3 AND OL_D_ID = 3 AND W_ID = 5",
        found(5),
    ),
    (
        "UPDATE CUSTOMER SET C_BALANCE = C_BALANCE + 3 WHERE C_ID = 3 AND C_D_ID = 3 AND W_ID = 5",
        found(5),
    ),
    ("SELECT W_TAX FROM WAREHOUSE WHERE W_ID = 5", found(5)),
    ("SELECT D_TAX, D_NEXT_O_ID FROM DISTRICT WHERE D_ID = 3 AND W_ID = 5", found(5)),
    ("UPDATE DISTRICT SET D_NEXT_O_ID = 3 WHERE D_ID = 3 AND W_ID = 5", found(5)),
    (
        "SELECT C_DISCOUNT, C_LAST, C_CREDIT FROM CUSTOMER WHERE W_ID = 5 AND C_D_ID = 3 "
        "AND C_ID = 3",
        found(5),
    ),
    (
        "INSERT INTO ORDERS (O_ID, O_D_ID, W_ID, O_C_ID, O_ENTRY_D, O_CARRIER_ID, O_OL_CNT, "
        "O_ALL_LOCAL) VALUES (3, 3, 5, 3, 3, 3, 3, 3)",
        found(5),
    ),
    ("INSERT INTO NEW_ORDER (NO_O_ID, NO_D_ID, W_ID) VALUES (3, 3, 5)", found(5)),
    ("SELECT I_PRICE, I_NAME, I_DATA FROM ITEM WHERE I_ID = 3", ALL),
    (
        "SELECT S_QUANTITY, S_DATA, S_YTD, S_ORDER_CNT, S_REMOTE_CNT, S_DIST_03 FROM STOCK "
        "WHERE S_I_ID = 3 AND W_ID = 5",
        found(5),
    ),
    (
        "UPDATE STOCK SET S_QUANTITY = 3, S_YTD = 3, S_ORDER_CNT = 3, S_REMOTE_CNT = 3 "
        "WHERE S_I_ID = 3 AND W_ID = 5",
        found(5),
    ),
    (
        "INSERT INTO ORDER_LINE (OL_O_ID, OL_D_ID, W_ID, OL_NUMBER, OL_I_ID, OL_SUPPLY_W_ID, "
        "OL_DELIVERY_D, OL_QUANTITY, OL_AMOUNT, OL_DIST_INFO) "
        "VALUES (3, 3, 5, 3, 3, 3, 3, 3, 3, 3)",
        found(5),
    ),
    (
        "SELECT C_ID, C_FIRST, C_MIDDLE, C_LAST, C_BALANCE FROM CUSTOMER WHERE W_ID = 5 "
        "AND C_D_ID = 3 AND C_LAST = '3' ORDER BY C_FIRST",
        found(5),
    ),
    (
        "SELECT O_ID, O_CARRIER_ID, O_ENTRY_D FROM ORDERS WHERE W_ID = 5 AND O_D_ID = 3 "
        "AND O_C_ID = 3 ORDER BY O_ID DESC LIMIT 3",
        found(5),
    ),
    (
        "SELECT OL_SUPPLY_W_ID, OL_I_ID, OL_QUANTITY, OL_AMOUNT, OL_DELIVERY_D FROM ORDER_LINE "
        "WHERE W_ID = 5 AND OL_D_ID = 3 AND OL_O_ID = 3",
        found(5),
    ),
    ("UPDATE WAREHOUSE SET W_YTD = W_YTD + 3 WHERE W_ID = 5", found(5)),
    ("UPDATE DISTRICT SET D_YTD = D_YTD + 3 WHERE W_ID  = 5 AND D_ID = 3", found(5)),
    (
        "UPDATE CUSTOMER SET C_BALANCE = 3, C_YTD_PAYMENT = 3, C_PAYMENT_CNT = 3, C_DATA = 3 "
        "WHERE W_ID = 5 AND C_D_ID = 3 AND C_ID = 3",
        found(5),
    ),
    (
        "INSERT INTO HISTORY (H_C_ID, H_C_D_ID, H_C_W_ID, H_D_ID, W_ID, H_DATE, H_AMOUNT, "
        "H_DATA) VALUES (3, 3, 5, 3, 5, 3, 3, 3)",
        found(5),
    ),
    (
        "SELECT COUNT(DISTINCT(OL_I_ID)) FROM ORDER_LINE, STOCK WHERE ORDER_LINE.W_ID = 5 "
        "AND OL_D_ID = 3 AND OL_O_ID < 3 AND OL_O_ID >= 3 AND STOCK.W_ID = 5 "
        "AND S_I_ID = OL_I_ID AND S_QUANTITY < 3",
        found(5, 5),
    ),
    # pgcat: "a distributed query and contains two shards" -> the router sees 5 and 7.
    (
        "SELECT COUNT(DISTINCT(OL_I_ID)) FROM ORDER_LINE, STOCK WHERE ORDER_LINE.W_ID = 5 "
        "AND OL_D_ID = 3 AND OL_O_ID < 3 AND OL_O_ID >= 3 AND STOCK.W_ID = 7 "
        "AND S_I_ID = OL_I_ID AND S_QUANTITY < 3",
        found(5, 7),
    ),
    (
        "UPDATE ORDERS o SET o.O_CARRIER_ID = 3 WHERE o.O_ID = 3 AND o.O_D_ID = 3 AND o.W_ID = 5",
        found(5),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), TPCC)
def test_pgcat_tpcc_with_star_w_id_key(sql: str, expected: ShardKeys) -> None:
    classification = Parser(ParserSettings.build(automatic_sharding_key="*.w_id")).classify(sql)
    assert classification.shard_keys == expected
    assert classification.error is None


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ORDERS SET w_id = 3 WHERE O_ID = 3 AND O_D_ID = 3 AND W_ID = 5",
        "UPDATE ORDERS o SET o.W_ID = 3 WHERE o.O_ID = 3 AND o.O_D_ID = 3 AND o.W_ID = 5",
        "INSERT INTO t (w_id, a) VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET w_id = 3",
    ],
)
def test_update_of_the_sharding_key_is_an_error(sql: str) -> None:
    classification = Parser(ParserSettings.build(automatic_sharding_key="*.w_id")).classify(sql)
    assert classification.error == "sharding key cannot be updated"
    assert classification.is_write


def test_update_of_a_same_named_column_of_another_table_is_not_an_error() -> None:
    parser = Parser(ParserSettings.build(automatic_sharding_key="data.id"))
    assert parser.classify("UPDATE other SET id = 3 WHERE id = 5").error is None
    assert parser.classify("UPDATE data SET id = 3 WHERE id = 5").error is not None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM data WHERE 5 = id", found(5)),
        ("SELECT * FROM data WHERE (id = 5)", found(5)),
        ("SELECT * FROM data WHERE ((id) = (5)) AND x = 1", found(5)),
        ("SELECT * FROM data WHERE id IN (1, 2, 3)", found(1, 2, 3)),
        ("SELECT * FROM data WHERE id = ANY(ARRAY[1, 2])", found(1, 2)),
        ("SELECT * FROM data WHERE id = ANY($1)", found(ParamRef(1, array=True))),
        ("SELECT * FROM data WHERE id = ANY($1::bigint[])", found(ParamRef(1, "int", True))),
        ("SELECT * FROM data WHERE id = -5", found(-5)),
        ("SELECT * FROM data WHERE id IN (-1, 2)", found(-1, 2)),
        ("SELECT * FROM data WHERE id = '5'::bigint", found(5)),
        ("SELECT * FROM data WHERE id = CAST('5' AS bigint)", found(5)),
        ("SELECT * FROM data WHERE id = -'5'::int", found(-5)),
        ("SELECT * FROM data WHERE id = 5::text", found("5")),
        ("SELECT * FROM data WHERE id = $2::bigint", found(ParamRef(2, "int"))),
        ("SELECT * FROM data WHERE v = $1 AND id = $2", found(ParamRef(2))),
        ("SELECT * FROM data d WHERE d.id = 5", found(5)),
        ("SELECT * FROM public.data AS d WHERE d.id = 5", found(5)),
        ("SELECT * FROM data d JOIN t2 x ON x.id = 7 WHERE d.id = 5", found(5)),
        ("SELECT * FROM t2 JOIN data ON data.id = 5", found(5)),
        ("SELECT * FROM t2 JOIN data d ON d.id = 5 JOIN t3 ON t3.x = d.y", found(5)),
        ("SELECT * FROM data WHERE id = 5 OR id = 7", found(5, 7)),
        ("SELECT * FROM data WHERE id = 5 AND id = 7", found(5, 7)),
        ("SELECT * FROM data WHERE id = 0x1F", found(31)),
        ("UPDATE data SET v = 1 WHERE id = 5", found(5)),
        ("DELETE FROM data WHERE id = 9", found(9)),
        ("DELETE FROM data d USING t2 WHERE d.id = 9 AND t2.x = d.y", found(9)),
        ("INSERT INTO data (id, v) VALUES (1, 'a')", found(1)),
        ("INSERT INTO data (v, id) VALUES ('a', 1), ('b', 2), ('c', 1)", found(1, 2, 1)),
        ("INSERT INTO data (id, v) VALUES ($1, $2)", found(ParamRef(1))),
        ("INSERT INTO data (id) VALUES (-3) RETURNING *", found(-3)),
        ("WITH t AS (SELECT * FROM data WHERE id = 5) SELECT * FROM t", found(5)),
        ("SELECT * FROM (SELECT * FROM data WHERE id = 5) s", found(5)),
        (
            "SELECT * FROM data d WHERE d.id = 5 AND EXISTS "
            "(SELECT 1 FROM data d2 WHERE d2.id = d.id)",
            found(5),
        ),
        ("SELECT * FROM data WHERE id = 5; SELECT * FROM data WHERE id = 7", found(5, 7)),
        ("SELECT * FROM data WHERE id = 5 UNION SELECT * FROM data WHERE id = 7", found(5, 7)),
        ("EXPLAIN SELECT * FROM data WHERE id = 5", found(5)),
        ("DECLARE c CURSOR FOR SELECT * FROM data WHERE id = 5", found(5)),
        ("COPY (SELECT * FROM data WHERE id = 5) TO STDOUT", found(5)),
    ],
)
def test_shard_key_forms(sql: str, expected: ShardKeys) -> None:
    assert keys(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM data", ALL),
        ("SELECT * FROM data WHERE id = 5 OR v = 1", ALL),
        ("SELECT * FROM data WHERE abs(id) = 5", ALL),
        ("SELECT * FROM data WHERE id::text = '5'", ALL),
        ("SELECT * FROM data WHERE id > 5", ALL),
        ("SELECT * FROM data WHERE id BETWEEN 1 AND 2", ALL),
        ("SELECT * FROM data WHERE NOT (id = 5)", ALL),
        ("SELECT * FROM data WHERE id <> 5", ALL),
        ("SELECT * FROM data WHERE id IS NULL", ALL),
        ("SELECT * FROM data d JOIN t2 ON t2.data_id = d.id", ALL),
        ("SELECT * FROM t2 LEFT JOIN data ON data.id = 5", ALL),  # outer join: not a filter
        ("SELECT * FROM data WHERE id = 5 UNION SELECT * FROM data", ALL),
        (
            "WITH d AS (DELETE FROM data RETURNING *) SELECT * FROM data WHERE id = 5",
            ALL,  # the DELETE reaches every shard whatever its sibling says
        ),
        ("SELECT * FROM data WHERE x IN (SELECT x FROM data WHERE id = 5)", ALL),
        ("SELECT * FROM data WHERE id = 5; SELECT * FROM data", ALL),
        ("SELECT * FROM data WHERE id = abs(5)", UNKNOWN),
        ("SELECT * FROM data WHERE id = (SELECT max(id) FROM t2)", UNKNOWN),
        ("SELECT * FROM data WHERE id IN (SELECT data_id FROM t2)", UNKNOWN),
        ("SELECT * FROM data WHERE id = 5 + 1", UNKNOWN),
        ("SELECT * FROM data WHERE id = 5 OR id = f(x)", UNKNOWN),
        ("INSERT INTO data VALUES (1, 'a')", UNKNOWN),  # no column list
        ("INSERT INTO data (id) VALUES (DEFAULT)", UNKNOWN),
        ("INSERT INTO data (id) VALUES (nextval('s'))", UNKNOWN),
        ("INSERT INTO data (v) VALUES (1)", UNKNOWN),  # the key comes from a default
        ("INSERT INTO data (id) SELECT id FROM t2", UNKNOWN),
        ("SELECT * FROM data WHERE id = 'abc", UNKNOWN),  # unterminated: nothing known
        ("SELECT * FRM data WHERE id = 5", UNKNOWN),  # unparseable
        ("SELECT 1", NONE),
        ("SELECT now()", NONE),
        ("SELECT * FROM other WHERE id = 5", NONE),  # not the key table
        ("INSERT INTO other (id) VALUES (5)", NONE),
        ("WITH data AS (SELECT 1 AS id) SELECT * FROM data WHERE id = 5", NONE),  # a CTE
        ("SET search_path TO a", NONE),
        ("BEGIN", NONE),
        ("COPY data FROM STDIN", ALL),  # rows for every shard
        ("COPY public.data TO STDOUT", ALL),
        ("COPY other FROM STDIN", NONE),
        ("CREATE INDEX ON data (v)", ALL),  # schema changes belong on every shard
        ("TRUNCATE data", ALL),
        ("LOCK TABLE data", ALL),
        ("CALL refresh(5)", UNKNOWN),
        ("DO $$ BEGIN END $$", UNKNOWN),
        ("EXECUTE q(5)", UNKNOWN),
        ("FROBNICATE data", UNKNOWN),
    ],
)
def test_shard_keys_that_cannot_be_known_say_so(sql: str, expected: ShardKeys) -> None:
    assert keys(sql) == expected


def test_text_and_uuid_keys() -> None:
    uuid = "550e8400-e29b-41d4-a716-446655440000"
    assert keys("SELECT * FROM users WHERE name = 'bob'", "*.name") == found("bob")
    assert keys("SELECT * FROM users WHERE name = E'b\\'o'", "*.name") == found("b'o")
    assert keys("SELECT * FROM users WHERE name = $$bob$$", "*.name") == found("bob")
    assert keys(f"SELECT * FROM t WHERE u = '{uuid}'::uuid", "*.u") == found(UUID(uuid))
    assert keys(f"SELECT * FROM t WHERE u = uuid '{uuid}'", "*.u") == found(UUID(uuid))
    assert keys(f"SELECT * FROM t WHERE u = '{uuid}'", "*.u") == found(uuid)


def test_several_sharding_keys() -> None:
    configured = ["orders.o_w_id", "customer.c_w_id"]
    sql = "SELECT * FROM orders o JOIN customer c ON c.c_id = o.o_c_id WHERE o.o_w_id = 5"
    assert keys(sql, configured) == found(5)
    assert keys("SELECT * FROM customer WHERE c_w_id = 3", configured) == found(3)
    assert keys("SELECT * FROM customer WHERE o_w_id = 3", configured) == ALL
    assert keys("SELECT * FROM stock WHERE o_w_id = 3", configured) == NONE


def test_no_sharding_key_configured_means_no_keys_even_for_unknown_text() -> None:
    parser = Parser()
    assert parser.classify("SELECT * FROM data WHERE id = 5").shard_keys == NONE
    assert parser.classify("SELECT * FRM data").shard_keys == NONE
    assert parser.classify("SELECT 'abc").shard_keys == NONE


def test_param_positions_bind_to_values() -> None:
    classification = Parser(ParserSettings.build(automatic_sharding_key="data.id")).classify(
        "SELECT * FROM data WHERE id = $2 OR id = ANY($1)"
    )
    bound = classification.shard_keys.bind({1: (7, 8), 2: 5})
    assert bound == found(5, 7, 8)
    assert classification.shard_keys.bind({1: (7,)}) == UNKNOWN  # $2 missing (NULL)


def test_thousands_of_conditions_do_not_hit_the_recursion_limit() -> None:
    ands = " AND ".join(f"id = {i}" for i in range(3000))
    ors = " OR ".join(f"(id = {i} AND v = 1)" for i in range(2000))
    assert keys(f"SELECT * FROM data WHERE {ands}").keys == tuple(range(3000))
    assert keys(f"SELECT * FROM data WHERE {ors}").keys == tuple(range(2000))


def test_deep_nesting_is_a_write_not_a_crash() -> None:
    parser = Parser(ParserSettings.build(automatic_sharding_key="data.id"))
    classification = parser.classify("SELECT " + "(" * 3000 + "1" + ")" * 3000)
    assert classification.is_write
    assert classification.shard_keys == UNKNOWN


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO data (id, v) VALUES ($1,$2)", found(ParamRef(1))),
        ("INSERT INTO data (v, id) VALUES ($1,$2),($3,$4)", found(ParamRef(2), ParamRef(4))),
        ("SELECT * FROM data WHERE id IN ($1,$2)", found(ParamRef(1), ParamRef(2))),
        ("SELECT f($1,$2) FROM data WHERE id = $3", found(ParamRef(3))),
        ('SELECT "a$1,$2" FROM data WHERE id = $1', found(ParamRef(1))),
    ],
)
def test_parameters_without_spaces_are_parsed(sql: str, expected: ShardKeys) -> None:
    """sqlglot 30 fails on "$1,$2": unparsed, the keys would be unknown (default_shard)."""
    assert keys(sql) == expected
