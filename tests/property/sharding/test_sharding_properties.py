"""Properties of the sharding functions over arbitrary keys and shard counts.

The reference below is a line-by-line transcription of hashfn.c's hash_bytes_extended
(unaligned, little-endian path: bytes read one at a time, the C switch's fall-through written
out), kept deliberately naive; the package's word-at-a-time version must agree with it.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharding import (
    FORMAT_BINARY,
    FORMAT_TEXT,
    KeyType,
    ShardingFunction,
    ShardKeyError,
    ShardMap,
    coerce_text,
    hash_combine64,
    partition_row_hash,
    pg_bigint_hash,
    pg_partition_hash,
    pg_text_hash,
    pg_uuid_hash,
    sha1,
)
from sharding.keytype import INTEGER_RANGES
from sharding.lookup3 import hash_bytes_extended, seeded_state
from sharding.pg_hash import HASH_PARTITION_SEED, hash_int

M = 0xFFFFFFFF
bigints = st.integers(-(2**63), 2**63 - 1)
int4s = st.integers(-(2**31), 2**31 - 1)
shard_counts = st.integers(1, 64)
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
uuids = st.uuids()
seeds = st.sampled_from([0, 1, HASH_PARTITION_SEED, 2**64 - 1, 0x1234_5678_9ABC_DEF0])


def rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M


def reference_mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & M
    a ^= rot(c, 4)
    c = (c + b) & M
    b = (b - a) & M
    b ^= rot(a, 6)
    a = (a + c) & M
    c = (c - b) & M
    c ^= rot(b, 8)
    b = (b + a) & M
    a = (a - c) & M
    a ^= rot(c, 16)
    c = (c + b) & M
    b = (b - a) & M
    b ^= rot(a, 19)
    a = (a + c) & M
    c = (c - b) & M
    c ^= rot(b, 4)
    b = (b + a) & M
    return a, b, c


def reference_final(a: int, b: int, c: int) -> tuple[int, int, int]:
    c ^= b
    c = (c - rot(b, 14)) & M
    a ^= c
    a = (a - rot(c, 11)) & M
    b ^= a
    b = (b - rot(a, 25)) & M
    c ^= b
    c = (c - rot(b, 16)) & M
    a ^= c
    a = (a - rot(c, 4)) & M
    b ^= a
    b = (b - rot(a, 14)) & M
    c ^= b
    c = (c - rot(b, 24)) & M
    return a, b, c


# switch (len) of the little-endian unaligned path: each case adds one tail byte to a
# register, and falls through to the smaller cases. (case label, register a/b/c, shift)
TAIL_CASES = [
    (11, 2, 24), (10, 2, 16), (9, 2, 8),
    (8, 1, 24), (7, 1, 16), (6, 1, 8), (5, 1, 0),
    (4, 0, 24), (3, 0, 16), (2, 0, 8), (1, 0, 0),
]  # fmt: skip


def le_word(chunk: bytes) -> int:
    return chunk[0] + (chunk[1] << 8) + (chunk[2] << 16) + (chunk[3] << 24)


def reference_hash_bytes_extended(k: bytes, seed: int) -> int:
    length = len(k)
    a = b = c = (0x9E3779B9 + length + 3923095) & M
    if seed != 0:
        a = (a + (seed >> 32)) & M
        b = (b + (seed & M)) & M
        a, b, c = reference_mix(a, b, c)
    pos = 0
    while length >= 12:
        a = (a + le_word(k[pos : pos + 4])) & M
        b = (b + le_word(k[pos + 4 : pos + 8])) & M
        c = (c + le_word(k[pos + 8 : pos + 12])) & M
        a, b, c = reference_mix(a, b, c)
        pos += 12
        length -= 12
    registers = [a, b, c]
    for case, register, shift in TAIL_CASES:
        if length >= case:
            registers[register] = (registers[register] + (k[pos + case - 1] << shift)) & M
    a, b, c = reference_final(*registers)
    return (b << 32) | c


@given(st.binary(max_size=80), seeds)
def test_word_at_a_time_lookup3_equals_byte_at_a_time_transcription(key: bytes, seed: int) -> None:
    assert hash_bytes_extended(key, seed) == reference_hash_bytes_extended(key, seed)


@given(bigints, shard_counts)
def test_pg_bigint_hash_is_a_shard_and_deterministic(key: int, shards: int) -> None:
    shard = pg_bigint_hash(key, shards)
    assert 0 <= shard < shards
    assert pg_bigint_hash(key, shards) == shard


@given(bigints, shard_counts)
def test_pg_bigint_hash_fast_path_equals_generic_path(key: int, shards: int) -> None:
    # the generic path: lookup3 with the seed, hashint8extended's fold, hash_combine64
    assert pg_bigint_hash(key, shards) == hash_combine64(0, hash_int(key)) % shards
    assert pg_bigint_hash(key, shards) == pg_partition_hash([key], [KeyType.BIGINT], shards)


@given(int4s, shard_counts)
def test_int2_int4_int8_keys_of_equal_value_share_a_shard(key: int, shards: int) -> None:
    as_int8 = pg_partition_hash([key], [KeyType.BIGINT], shards)
    assert pg_partition_hash([key], [KeyType.INTEGER], shards) == as_int8
    small = key % 2**16 - 2**15
    assert pg_partition_hash([small], [KeyType.SMALLINT], shards) == pg_bigint_hash(small, shards)


def test_uint32_seeded_state_is_not_the_unseeded_one() -> None:
    # guards the precomputation: the seed must have gone through mix()
    assert seeded_state(4, HASH_PARTITION_SEED) != seeded_state(4, 0)


@given(bigints, shard_counts)
def test_sha1_is_a_shard_and_deterministic(key: int, shards: int) -> None:
    assert 0 <= sha1(key, shards) < shards
    assert sha1(key, shards) == sha1(key, shards)


@given(texts, shard_counts)
def test_pg_text_hash_is_a_shard_and_deterministic(text: str, shards: int) -> None:
    shard = pg_text_hash(text, shards)
    assert 0 <= shard < shards
    assert pg_text_hash(text, shards) == shard


@given(uuids, shard_counts)
def test_uuid_object_and_every_spelling_share_a_shard(key: uuid.UUID, shards: int) -> None:
    shard = pg_uuid_hash(key, shards)
    assert 0 <= shard < shards
    for spelling in (str(key), str(key).upper(), "{" + str(key) + "}", key.hex):
        assert pg_uuid_hash(spelling, shards) == shard


@given(bigints, shard_counts)
def test_text_and_binary_bind_parameters_route_alike(key: int, shards: int) -> None:
    shard_map = ShardMap(shards)
    text_param = shard_map.shard_for_param(str(key).encode(), FORMAT_TEXT)
    binary_param = shard_map.shard_for_param(key.to_bytes(8, "big", signed=True), FORMAT_BINARY)
    assert text_param == binary_param == shard_map.shard_for(key) == shard_map.shard_for(str(key))


@given(bigints, shard_counts)
def test_sha1_map_routes_text_and_binary_parameters_alike(key: int, shards: int) -> None:
    shard_map = ShardMap(shards, ShardingFunction.SHA1)
    binary = key.to_bytes(8, "big", signed=True)
    assert shard_map.shard_for_param(binary, FORMAT_BINARY) == sha1(key, shards)
    assert shard_map.shard_for_param(str(key).encode(), FORMAT_TEXT) == sha1(key, shards)


@given(texts, shard_counts)
def test_text_parameter_in_either_format_routes_like_the_str(text: str, shards: int) -> None:
    shard_map = ShardMap(shards, key_types=(KeyType.TEXT,))
    data = text.encode()
    assert shard_map.shard_for_param(data, FORMAT_TEXT) == pg_text_hash(text, shards)
    assert shard_map.shard_for_param(data, FORMAT_BINARY) == pg_text_hash(text, shards)


row_values = st.tuples(st.none() | bigints, st.none() | texts, st.none() | uuids)
ROW_TYPES = (KeyType.BIGINT, KeyType.TEXT, KeyType.UUID)


@given(row_values, shard_counts)
def test_null_columns_of_a_multi_column_key_are_skipped(
    row: tuple[int | None, str | None, uuid.UUID | None], shards: int
) -> None:
    # compute_partition_hash_value: "Nulls are just ignored", so a row hashes like the
    # key made of its non-NULL columns alone (and an all-NULL row hashes to 0).
    present = [(v, t) for v, t in zip(row, ROW_TYPES, strict=True) if v is not None]
    row_hash = partition_row_hash(row, ROW_TYPES)
    assert row_hash == partition_row_hash([v for v, _ in present], [t for _, t in present])
    assert ShardMap(shards, key_types=ROW_TYPES).shard_for_row(list(row)) == row_hash % shards


@given(bigints, bigints)
def test_multi_column_key_order_matters(first: int, second: int) -> None:
    types = (KeyType.BIGINT, KeyType.BIGINT)
    forward = partition_row_hash([first, second], types)
    backward = partition_row_hash([second, first], types)
    assert (forward == backward) == (first == second)


@given(
    st.integers(-(2**70), 2**70),
    st.text(" \t\n\r\f\v", max_size=2),
    st.integers(0, 30),
    st.booleans(),
    st.sampled_from([KeyType.SMALLINT, KeyType.INTEGER, KeyType.BIGINT]),
)
def test_integer_text_reads_as_its_value_or_is_out_of_range(
    value: int, space: str, zeros: int, plus: bool, key_type: KeyType
) -> None:
    sign = "-" if value < 0 else "+" if plus else ""
    text = f"{space}{sign}{'0' * zeros}{abs(value)}{space}"
    low, high = INTEGER_RANGES[key_type]
    if low <= value <= high:
        assert coerce_text(text, key_type) == value
        assert coerce_text(text.encode(), key_type) == value
    else:
        with pytest.raises(ShardKeyError, match="out of range"):
            coerce_text(text, key_type)
