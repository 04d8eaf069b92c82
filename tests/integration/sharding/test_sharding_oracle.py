"""PostgreSQL is the oracle: our shard equals the partition PostgreSQL picks for the key.

For thousands of keys of each type (negative, extreme, unicode and empty text, random
uuids, multi-column rows with NULLs) and every MODULUS from 1 to 16, the remainder whose
``satisfies_hash_partition`` is true must be our shard. One SQL round trip checks all keys
of a type against all moduli. A second test inserts rows into real partitioned tables and
reads back the partition each landed in (``tableoid``), so the oracle itself is checked.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest

from pgcat_py.localpg import Topology
from sharding import (
    KeyType,
    ShardKeyError,
    ShardMap,
    coerce_text,
    pg_bigint_hash,
    pg_partition_hash,
    pg_text_hash,
    pg_uuid_hash,
)

pytestmark = pytest.mark.pg

ORACLE_DB = "sharding_oracle"
MAX_MODULUS = 16
KEYS_PER_TYPE = 3000
ROWS_PER_TABLE = 2000

# One hash-partitioned parent per key shape; satisfies_hash_partition needs only the parent
# (its partition key's types, hash functions and collations), not any partition.
PARENTS = {
    "h_int8": "k bigint",
    "h_int4": "k integer",
    "h_int2": "k smallint",
    "h_text": "k text",
    "h_varchar": "k varchar(2000)",
    "h_text_icu": 'k text COLLATE "und-x-icu"',  # ICU, but deterministic: hashes the bytes
    "h_uuid": "k uuid",
    "h_multi": "a bigint, b text, c uuid",
}
PARTITION_KEYS = {"h_multi": "a, b, c"}
ICU_COLLATION_EXISTS = "SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'"

MULTI_TYPES = (KeyType.BIGINT, KeyType.TEXT, KeyType.UUID)

Remainders = dict[tuple[int, int], int]  # (key index, modulus) -> remainder


@pytest.fixture(scope="module")
def oracle(pg_topology: Topology) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a fresh UTF8 database holding the partitioned parents."""
    admin_dsn = pg_topology.primary.superuser_dsn("postgres")
    drop = f"DROP DATABASE IF EXISTS {ORACLE_DB} WITH (FORCE)"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(drop)
        admin.execute(
            f"CREATE DATABASE {ORACLE_DB} TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        dsn = pg_topology.primary.superuser_dsn(ORACLE_DB)
        with psycopg.connect(dsn, autocommit=True) as conn:
            has_icu = conn.execute(ICU_COLLATION_EXISTS).fetchone() is not None
            for table, columns in PARENTS.items():
                if table == "h_text_icu" and not has_icu:
                    continue  # PostgreSQL built without ICU
                key = PARTITION_KEYS.get(table, "k")
                conn.execute(f"CREATE TABLE {table} ({columns}) PARTITION BY HASH ({key})")
            yield conn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(drop)


def postgres_remainders(
    conn: psycopg.Connection[Any],
    table: str,
    sql_types: Sequence[str],
    columns: Sequence[list[Any]],
) -> Remainders:
    """For every key and modulus 1..16, the remainder PostgreSQL's partition check accepts."""
    arrays = ", ".join(f"%s::{sql_type}[]" for sql_type in sql_types)
    names = [f"c{i}" for i in range(len(sql_types))]
    query = f"""
        SELECT u.i, m.n, r.r
        FROM unnest({arrays}) WITH ORDINALITY AS u({", ".join(names)}, i)
        CROSS JOIN generate_series(1, {MAX_MODULUS}) AS m(n)
        CROSS JOIN LATERAL generate_series(0, m.n - 1) AS r(r)
        WHERE satisfies_hash_partition('{table}'::regclass, m.n, r.r, {", ".join(names)})
    """
    remainders: Remainders = {}
    for index, modulus, remainder in conn.execute(query, list(columns)).fetchall():
        assert (index - 1, modulus) not in remainders, "two partitions accept one key"
        remainders[(index - 1, modulus)] = remainder
    return remainders


def assert_same_shards(
    keys: Sequence[Any], remainders: Remainders, shard: Callable[[Any, int], int]
) -> None:
    mismatches = [
        (key, modulus, remainders.get((i, modulus)), shard(key, modulus))
        for i, key in enumerate(keys)
        for modulus in range(1, MAX_MODULUS + 1)
        if shard(key, modulus) != remainders.get((i, modulus))
    ]
    assert not mismatches, (
        f"{len(mismatches)} mismatches (key, N, postgres, ours): {mismatches[:5]}"
    )


def integer_keys(rng: random.Random, bits: int) -> list[int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    edges = [low, low + 1, -1, 0, 1, high - 1, high]
    if bits == 64:
        edges += [-(2**32), -(2**31) - 1, -(2**31), 2**31 - 1, 2**31, 2**32 - 1, 2**32]
    small = list(range(max(low, -100), min(high, 100) + 1))
    wide = [rng.randint(low, high) for _ in range(KEYS_PER_TYPE // 2)]
    magnitudes = [
        rng.choice((-1, 1)) * rng.getrandbits(rng.randint(1, bits - 1)) for _ in range(500)
    ]
    return (edges + small + wide + magnitudes)[:KEYS_PER_TYPE]


# Letters of several scripts and widths: 1-byte ASCII to 4-byte emoji, combining marks.
ALPHABET = (
    string.ascii_letters
    + string.digits
    + " '\"\\%_-\t\n"
    + "éüßñçøå"
    + "ЖЯж"
    + "中文字"
    + "🐘🎉👍"
    + "\u0301"
)


def text_keys(rng: random.Random) -> list[str]:
    keys = ["", " ", "a", "A", "0", "42", "-1", "NULL", "x" * 1000, "é" * 300, "🐘" * 50]
    # every tail length of lookup3's 12-byte blocks, for a few block counts
    keys += ["k" * length for length in range(1, 50)]
    while len(keys) < KEYS_PER_TYPE:
        length = rng.choice((rng.randint(0, 12), rng.randint(0, 40), rng.randint(0, 300)))
        keys.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    return keys


def uuid_keys(rng: random.Random) -> list[uuid.UUID]:
    keys = [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID(int=1), uuid.uuid1()]
    keys += [uuid.UUID(int=rng.getrandbits(128)) for _ in range(KEYS_PER_TYPE // 2)]
    while len(keys) < KEYS_PER_TYPE:
        keys.append(uuid.UUID(int=rng.getrandbits(128), version=4))
    return keys


@pytest.mark.parametrize(("table", "sql_type", "bits"), [("h_int8", "bigint", 64)])
def test_bigint_keys_land_in_postgresqls_partition(
    oracle: psycopg.Connection[Any], table: str, sql_type: str, bits: int
) -> None:
    keys = integer_keys(random.Random(8), bits)
    remainders = postgres_remainders(oracle, table, [sql_type], [keys])
    assert_same_shards(keys, remainders, pg_bigint_hash)
    assert_same_shards(keys, remainders, lambda key, n: ShardMap(n).shard_for(str(key)))


@pytest.mark.parametrize(
    ("table", "sql_type", "bits", "key_type"),
    [("h_int4", "integer", 32, KeyType.INTEGER), ("h_int2", "smallint", 16, KeyType.SMALLINT)],
)
def test_int4_and_int2_keys_land_in_postgresqls_partition(
    oracle: psycopg.Connection[Any], table: str, sql_type: str, bits: int, key_type: KeyType
) -> None:
    keys = integer_keys(random.Random(bits), bits)
    remainders = postgres_remainders(oracle, table, [sql_type], [keys])
    assert_same_shards(keys, remainders, lambda key, n: pg_partition_hash([key], [key_type], n))
    assert_same_shards(keys, remainders, pg_bigint_hash)  # int2/int4 hash like int8


@pytest.mark.parametrize(
    ("table", "sql_type"),
    [("h_text", "text"), ("h_varchar", "varchar"), ("h_text_icu", "text")],
)
def test_text_keys_land_in_postgresqls_partition(
    oracle: psycopg.Connection[Any], table: str, sql_type: str
) -> None:
    if oracle.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,):
        pytest.skip(f"{table} needs an ICU collation, and this PostgreSQL has none")
    keys = text_keys(random.Random(7))
    remainders = postgres_remainders(oracle, table, [sql_type], [keys])
    assert_same_shards(keys, remainders, pg_text_hash)


def test_uuid_keys_land_in_postgresqls_partition(oracle: psycopg.Connection[Any]) -> None:
    keys = uuid_keys(random.Random(16))
    remainders = postgres_remainders(oracle, "h_uuid", ["uuid"], [keys])
    assert_same_shards(keys, remainders, pg_uuid_hash)
    assert_same_shards(keys, remainders, lambda key, n: pg_uuid_hash(str(key).upper(), n))


def multi_column_rows(rng: random.Random) -> list[tuple[int | None, str | None, uuid.UUID | None]]:
    ints, texts, uuids = integer_keys(rng, 64), text_keys(rng), uuid_keys(rng)
    rows = [(rng.choice(ints), rng.choice(texts), rng.choice(uuids)) for _ in range(KEYS_PER_TYPE)]
    # NULL in every combination of columns: PostgreSQL skips NULL columns when combining
    return [
        (
            a if rng.random() > 0.2 else None,
            b if rng.random() > 0.2 else None,
            c if rng.random() > 0.2 else None,
        )
        for a, b, c in rows
    ]


def test_multi_column_keys_with_nulls_land_in_postgresqls_partition(
    oracle: psycopg.Connection[Any],
) -> None:
    rows = multi_column_rows(random.Random(3))
    columns = [list(column) for column in zip(*rows, strict=True)]
    remainders = postgres_remainders(oracle, "h_multi", ["bigint", "text", "uuid"], columns)
    assert_same_shards(rows, remainders, lambda row, n: pg_partition_hash(row, MULTI_TYPES, n))


@pytest.mark.parametrize("modulus", [3, 16])
def test_inserted_rows_land_in_the_partition_of_our_shard(
    oracle: psycopg.Connection[Any], modulus: int
) -> None:
    rng = random.Random(modulus)
    cases: list[tuple[str, str, list[Any], Callable[[Any], int]]] = [
        ("bigint", "bigint", integer_keys(rng, 64), lambda k: pg_bigint_hash(k, modulus)),
        ("text", "text", text_keys(rng), lambda k: pg_text_hash(k, modulus)),
        ("uuid", "uuid", uuid_keys(rng), lambda k: pg_uuid_hash(k, modulus)),
    ]
    for name, sql_type, keys, shard in cases:
        table = f"landing_{name}_{modulus}"
        oracle.execute(f"CREATE TABLE {table} (i int, k {sql_type}) PARTITION BY HASH (k)")
        for remainder in range(modulus):
            oracle.execute(
                f"CREATE TABLE {table}_{remainder} PARTITION OF {table} "
                f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
            )
        keys = keys[:ROWS_PER_TABLE]
        oracle.execute(
            f"INSERT INTO {table} SELECT u.i - 1, u.k "
            f"FROM unnest(%s::{sql_type}[]) WITH ORDINALITY AS u(k, i)",
            [keys],
        )
        landed = dict(oracle.execute(f"SELECT i, tableoid::regclass::text FROM {table}").fetchall())
        mismatches = [
            (key, landed[i], shard(key))
            for i, key in enumerate(keys)
            if landed[i] != f"{table}_{shard(key)}"
        ]
        assert not mismatches, f"{name}: {len(mismatches)} rows elsewhere: {mismatches[:5]}"


# Text forms of keys as a client may send them; each is read by PostgreSQL 15 and by us.
INTEGER_TEXTS = [
    "42", " 42", "42 ", "\t-7\n", "+0", "-0", "007", "9223372036854775807",
    "-9223372036854775808", "9223372036854775808", "", " ", "4.0", "1e3", "12a", "--1", "٣",
]  # fmt: skip
UUID_TEXTS = [
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
    "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
    "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
    " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
    "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
]  # fmt: skip


@pytest.mark.parametrize(
    ("sql_type", "key_type", "texts"),
    [("bigint", KeyType.BIGINT, INTEGER_TEXTS), ("uuid", KeyType.UUID, UUID_TEXTS)],
)
def test_text_keys_read_as_postgresql_reads_them(
    oracle: psycopg.Connection[Any], sql_type: str, key_type: KeyType, texts: list[str]
) -> None:
    for text in texts:
        try:
            row = oracle.execute(f"SELECT %s::text::{sql_type}", [text]).fetchone()
        except psycopg.errors.DataError:
            with pytest.raises(ShardKeyError):
                coerce_text(text, key_type)
            continue
        assert row is not None
        assert coerce_text(text, key_type) == row[0], text
