"""ShardMap: built from a pool's config, validating shard ids, routing every key shape."""

from __future__ import annotations

import uuid

import pytest

from sharding import (
    FORMAT_BINARY,
    FORMAT_TEXT,
    KeyType,
    ShardIdError,
    ShardingFunction,
    ShardKeyError,
    ShardMap,
    pg_bigint_hash,
    pg_partition_hash,
    pg_text_hash,
    pg_uuid_hash,
    sha1,
)

U = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")


def test_pool_config_shard_names_make_the_map() -> None:
    shard_map = ShardMap.from_pool_config(["1", "0", "2"], "pg_bigint_hash")
    assert shard_map == ShardMap(3)
    assert shard_map.shard_ids == range(3)


@pytest.mark.parametrize(
    ("name", "function"), [("PgBigintHash", "pg_bigint_hash"), ("Sha1", "sha1")]
)
def test_pgcat_serde_aliases_of_sharding_function(name: str, function: str) -> None:
    assert ShardingFunction.parse(name) == function


def test_unknown_sharding_function_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sharding_function 'md5'"):
        ShardMap.from_pool_config(["0"], "md5")


def test_gap_in_shard_names_is_refused_not_indexed_out_of_bounds() -> None:
    with pytest.raises(ShardIdError, match="numbered 0 to 2 without gaps; missing 1"):
        ShardMap.from_pool_config(["0", "2", "3"])


def test_non_numeric_shard_name_is_refused() -> None:
    with pytest.raises(ShardIdError, match='shard name "primary" is not a shard number'):
        ShardMap.from_pool_config(["0", "primary"])


def test_same_shard_under_two_names_is_refused() -> None:
    with pytest.raises(ShardIdError, match='shard "00" is configured twice'):
        ShardMap.from_pool_config(["0", "00"])


def test_pool_without_shards_is_refused() -> None:
    with pytest.raises(ShardIdError, match="at least one shard"):
        ShardMap.from_pool_config([])


@pytest.mark.parametrize("shards", [0, -1, True])
def test_shard_count_must_be_positive(shards: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        ShardMap(shards)


def test_sha1_takes_one_integer_key_only() -> None:
    with pytest.raises(ValueError, match="sha1"):
        ShardMap(3, ShardingFunction.SHA1, (KeyType.TEXT,))


@pytest.mark.parametrize("shard_id", [0, 2, "1", " 2 "])
def test_configured_shard_id_is_accepted(shard_id: int | str) -> None:
    assert ShardMap(3).check_shard_id(shard_id) == int(shard_id)


@pytest.mark.parametrize("shard_id", [3, -1, "3", "x", "", True])
def test_unconfigured_shard_id_is_refused_naming_it(shard_id: int | str) -> None:
    with pytest.raises(ShardIdError, match=f'shard "{shard_id}" is not configured') as info:
        ShardMap(3).check_shard_id(shard_id)
    assert info.value.shard_id == shard_id
    assert info.value.shards == 3


def test_literal_parameter_and_command_forms_of_a_key_agree() -> None:
    shard_map = ShardMap(3)
    expected = pg_bigint_hash(5, 3)
    assert shard_map.shard_for(5) == expected
    assert shard_map.shard_for("5") == expected  # SET SHARDING KEY TO '5', comments
    assert shard_map.shard_for_param(b"5", FORMAT_TEXT) == expected
    assert shard_map.shard_for_param((5).to_bytes(4, "big"), FORMAT_BINARY) == expected


def test_pgcat_bind_vector_text_parameter_five_goes_to_shard_two() -> None:
    assert ShardMap(3).shard_for_param(b"5", FORMAT_TEXT) == 2


def test_sha1_map_uses_pgcat_sha1() -> None:
    shard_map = ShardMap(12, ShardingFunction.SHA1)
    assert [shard_map.shard_for(key) for key in range(5)] == [sha1(key, 12) for key in range(5)]
    assert shard_map.shard_for_param(b"-5", FORMAT_TEXT) == 10


def test_sha1_map_refuses_a_null_key() -> None:
    with pytest.raises(ShardKeyError, match="NULL"):
        ShardMap(12, ShardingFunction.SHA1).shard_for(None)


def test_null_key_goes_where_postgresql_puts_null_rows() -> None:
    # compute_partition_hash_value skips NULLs: the row hash stays 0, remainder 0.
    assert ShardMap(5).shard_for(None) == 0
    assert ShardMap(5).shard_for_param(None, FORMAT_TEXT) == 0


def test_int4_key_out_of_range_is_refused_even_on_the_fast_path() -> None:
    with pytest.raises(ShardKeyError, match="out of range for type integer"):
        ShardMap(3, key_types=(KeyType.INTEGER,)).shard_for(2**31)


def test_bad_bigint_key_is_a_shard_key_error() -> None:
    with pytest.raises(ShardKeyError, match='invalid input syntax for type bigint: "abc"'):
        ShardMap(3).shard_for_param(b"abc", FORMAT_TEXT)


def test_text_and_uuid_maps_use_their_types_hash() -> None:
    text_map = ShardMap(7, key_types=(KeyType.TEXT,))
    assert text_map.shard_for("alice") == pg_text_hash("alice", 7)
    assert text_map.shard_for_param(b"alice", FORMAT_BINARY) == pg_text_hash("alice", 7)
    uuid_map = ShardMap(7, key_types=(KeyType.UUID,))
    assert uuid_map.shard_for(str(U)) == pg_uuid_hash(U, 7)
    assert uuid_map.shard_for_param(U.bytes, FORMAT_BINARY) == pg_uuid_hash(U, 7)


def test_multi_column_key_combines_like_postgresql() -> None:
    types = (KeyType.BIGINT, KeyType.TEXT, KeyType.UUID)
    shard_map = ShardMap(11, key_types=types)
    expected = pg_partition_hash([42, "x", U], types, 11)
    assert shard_map.shard_for_row([42, "x", str(U)]) == expected
    params = [(b"42", FORMAT_TEXT), (b"x", FORMAT_TEXT), (U.bytes, FORMAT_BINARY)]
    assert shard_map.shard_for_params(params) == expected


def test_multi_column_key_with_one_column_set_equals_that_column_alone() -> None:
    # NULLs are skipped, so (NULL, 42) combines exactly like a single-column key 42.
    shard_map = ShardMap(11, key_types=(KeyType.TEXT, KeyType.BIGINT))
    assert shard_map.shard_for_row([None, 42]) == pg_bigint_hash(42, 11)


def test_multi_column_map_refuses_a_single_key_and_wrong_arity() -> None:
    shard_map = ShardMap(3, key_types=(KeyType.BIGINT, KeyType.BIGINT))
    with pytest.raises(ValueError, match="2 key columns"):
        shard_map.shard_for(1)
    with pytest.raises(ValueError, match="1 key values for 2 key columns"):
        shard_map.shard_for_row([1])
