"""PostgreSQL ``PARTITION BY HASH``: which remainder a key gets for a given modulus.

PostgreSQL hashes each partition key column with its type's extended hash support function
and the seed ``HASH_PARTITION_SEED``, folds the column hashes together with
``hash_combine64`` (NULL columns are skipped), and a row belongs to the partition
``FOR VALUES WITH (MODULUS n, REMAINDER r)`` with ``r = row_hash % n``, unsigned 64-bit
(src/backend/partitioning/partbounds.c, compute_partition_hash_value). A shard index is that
remainder, so N shards line up with N partitions of modulus N.

Per-type hash functions (all through lookup3, see :mod:`sharding.lookup3`):

* int2, int4, int8 (access/hash/hashfunc.c): ``hash_uint32_extended`` of the value; int8
  first folds its high half into the low half, so equal values of the three types hash alike.
* text/varchar with a deterministic collation (utils/adt/varlena.c hashtextextended):
  ``hash_any_extended`` of the UTF-8 bytes.
* uuid (utils/adt/uuid.c uuid_hash_extended): ``hash_any_extended`` of the 16 bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sharding.coerce import KeyValue, check_integer, out_of_range, parse_uuid, text_key_bytes
from sharding.keytype import KeyType
from sharding.lookup3 import MASK32, hash_bytes_extended, hash_bytes_uint32_extended, seeded_state

HASH_PARTITION_SEED = 0x7A5B22367996DCFD  # src/include/catalog/partition.h
HASH_COMBINE64_SALT = 0x49A0F4DD15E5A8E3  # common/hashfn.h hash_combine64: "64bit random data"
MASK64 = 0xFFFFFFFFFFFFFFFF
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def hash_combine64(a: int, b: int) -> int:
    """common/hashfn.h ``hash_combine64``: fold hash ``b`` into the running hash ``a``."""
    return (a ^ (b + HASH_COMBINE64_SALT + (a << 54) + (a >> 7))) & MASK64


def fold_int8(value: int) -> int:
    """hashint8extended's fold of an int8 into the uint32 it hashes.

    "The idea here is to produce a hash value compatible with the values produced by
    hashint4 and hashint2 for logically equal inputs": XOR the high half into the low half,
    inverted for negatives, so any value that fits an int4 folds to its own 32 bits.
    """
    high = value >> 32  # arithmetic shift, like C's on int64
    return (value ^ (high if value >= 0 else ~high)) & MASK32


def hash_int(value: int) -> int:
    """hashint2extended / hashint4extended / hashint8extended with the partition seed."""
    return hash_bytes_uint32_extended(fold_int8(value), HASH_PARTITION_SEED)


def hash_text(value: str) -> int:
    """hashtextextended (deterministic collation) with the partition seed."""
    return hash_bytes_extended(text_key_bytes(value), HASH_PARTITION_SEED)


def hash_uuid(value: uuid.UUID) -> int:
    """uuid_hash_extended with the partition seed."""
    return hash_bytes_extended(value.bytes, HASH_PARTITION_SEED)


def column_hash(value: KeyValue, key_type: KeyType) -> int:
    """The uint64 hash PostgreSQL computes for one partition key column."""
    if key_type.is_integer:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"a {key_type} key takes an int, not {type(value).__name__}")
        return hash_int(check_integer(value, key_type))
    if key_type is KeyType.TEXT:
        if not isinstance(value, str):
            raise TypeError(f"a text key takes a str, not {type(value).__name__}")
        return hash_text(value)
    return hash_uuid(value if isinstance(value, uuid.UUID) else parse_uuid(_as_str(value)))


def partition_row_hash(values: Sequence[KeyValue | None], key_types: Sequence[KeyType]) -> int:
    """compute_partition_hash_value: the row's uint64 hash over all key columns, NULLs skipped."""
    if len(values) != len(key_types):
        raise ValueError(f"{len(values)} key values for {len(key_types)} key columns")
    row_hash = 0
    for value, key_type in zip(values, key_types, strict=True):
        if value is not None:
            row_hash = hash_combine64(row_hash, column_hash(value, key_type))
    return row_hash


def check_shards(shards: int) -> int:
    """The shard count, if it can be a partition MODULUS (a positive integer)."""
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"the number of shards must be a positive integer, got {shards!r}")
    return shards


def pg_partition_hash(
    values: Sequence[KeyValue | None], key_types: Sequence[KeyType], shards: int
) -> int:
    """The REMAINDER PostgreSQL picks for a multi-column ``PARTITION BY HASH`` with MODULUS N."""
    return partition_row_hash(values, key_types) % check_shards(shards)


def pg_text_hash(value: str, shards: int) -> int:
    """The shard of a text/varchar key: PostgreSQL ``PARTITION BY HASH (text_col)``."""
    if not isinstance(value, str):
        raise TypeError(f"pg_text_hash takes a str, not {type(value).__name__}")
    return hash_combine64(0, hash_text(value)) % check_shards(shards)


def pg_uuid_hash(value: uuid.UUID | str, shards: int) -> int:
    """The shard of a uuid key (a ``uuid.UUID`` or any text form PostgreSQL's uuid_in reads)."""
    key = value if isinstance(value, uuid.UUID) else parse_uuid(_as_str(value))
    return hash_combine64(0, hash_uuid(key)) % check_shards(shards)


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a uuid key takes a uuid.UUID or a str, not {type(value).__name__}")
    return value


# --- the bigint fast path -------------------------------------------------------------------
# hash_bytes_uint32_extended(k, HASH_PARTITION_SEED) starts from a state that depends only on
# the seed, and final()'s first step touches only b and c, which the key has not reached yet.
# Both are computed once here; pg_bigint_hash then runs the remaining six steps of final()
# inline. test_pg_bigint_hash_fast_path_equals_generic_path pins it to the generic path.
_A0, _B0, _C0 = seeded_state(4, HASH_PARTITION_SEED)  # 4 = sizeof(uint32)
_C1 = ((_C0 ^ _B0) - ((_B0 << 14) | (_B0 >> 18))) & MASK32  # c ^= b; c -= rot(b, 14)
_C1_ROT11 = ((_C1 << 11) | (_C1 >> 21)) & MASK32  # rot(c, 11) for a's step


def pg_bigint_hash(key: int, shards: int) -> int:
    """The shard of a bigint key: PostgreSQL ``PARTITION BY HASH (bigint_col)``, pgcat's function.

    Also right for int2 and int4 keys (they hash like the same int8 value). Inline and
    unrolled because it runs per routed query; see :func:`hash_int` for the readable form.
    """
    if not INT64_MIN <= key <= INT64_MAX:
        raise out_of_range(key, KeyType.BIGINT)
    if shards < 1:
        check_shards(shards)
    high = key >> 32
    k = key ^ (high if key >= 0 else ~high)  # fold_int8, masked by the steps below
    a = (((_A0 + k) ^ _C1) - _C1_ROT11) & MASK32
    b = ((_B0 ^ a) - ((a << 25) | (a >> 7))) & MASK32
    c = ((_C1 ^ b) - ((b << 16) | (b >> 16))) & MASK32
    a = ((a ^ c) - ((c << 4) | (c >> 28))) & MASK32
    b = ((b ^ a) - ((a << 14) | (a >> 18))) & MASK32
    c = ((c ^ b) - ((b << 24) | (b >> 8))) & MASK32
    # hash_combine64(0, h) is h + salt: the terms in the running hash are all zero.
    return ((((b << 32) | c) + HASH_COMBINE64_SALT) & MASK64) % shards
