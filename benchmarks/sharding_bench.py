"""Microseconds per hash for each sharding function (pure Python, one core).

Run: .venv/bin/python benchmarks/sharding_bench.py [--repeat N]

Each line is the best of N timing runs (the least disturbed by other work on the machine),
each run long enough to last about 0.2 s. The target for ``pg_bigint_hash`` is <= 2 us.
"""

from __future__ import annotations

import argparse
import timeit
import uuid
from collections.abc import Callable

from sharding import (
    FORMAT_BINARY,
    FORMAT_TEXT,
    KeyType,
    ShardingFunction,
    ShardMap,
    pg_bigint_hash,
    pg_partition_hash,
    pg_text_hash,
    pg_uuid_hash,
    sha1,
)

SHARDS = 16
BIGINT_TARGET_US = 2.0
KEY = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
MULTI_TYPES = (KeyType.BIGINT, KeyType.TEXT, KeyType.UUID)

bigint_map = ShardMap(SHARDS)
sha1_map = ShardMap(SHARDS, ShardingFunction.SHA1)
text_map = ShardMap(SHARDS, key_types=(KeyType.TEXT,))
uuid_map = ShardMap(SHARDS, key_types=(KeyType.UUID,))
multi_map = ShardMap(SHARDS, key_types=MULTI_TYPES)
LONG_TEXT = "x" * 100
BINARY_INT8 = (123456789).to_bytes(8, "big")

CASES: list[tuple[str, Callable[[], object]]] = [
    ("pg_bigint_hash(123456789)", lambda: pg_bigint_hash(123456789, SHARDS)),
    ("pg_bigint_hash(-2**62)", lambda: pg_bigint_hash(-(2**62), SHARDS)),
    ("sha1(123456789)", lambda: sha1(123456789, SHARDS)),
    ("pg_text_hash('customer-42')", lambda: pg_text_hash("customer-42", SHARDS)),
    ("pg_text_hash(100 chars)", lambda: pg_text_hash(LONG_TEXT, SHARDS)),
    ("pg_uuid_hash(uuid.UUID)", lambda: pg_uuid_hash(KEY, SHARDS)),
    ("pg_uuid_hash(str)", lambda: pg_uuid_hash(str(KEY), SHARDS)),
    (
        "pg_partition_hash(bigint, text, uuid)",
        lambda: pg_partition_hash((42, "customer-42", KEY), MULTI_TYPES, SHARDS),
    ),
    ("ShardMap.shard_for(123456789)", lambda: bigint_map.shard_for(123456789)),
    ("ShardMap.shard_for('123456789')", lambda: bigint_map.shard_for("123456789")),
    ("ShardMap(sha1).shard_for(123456789)", lambda: sha1_map.shard_for(123456789)),
    ("shard_for_param(b'123456789', text)", lambda: bigint_map.shard_for_param(b"123456789", 0)),
    ("shard_for_param(int8, binary)", lambda: bigint_map.shard_for_param(BINARY_INT8, 1)),
    ("text key shard_for_param(text)", lambda: text_map.shard_for_param(b"customer-42", 0)),
    ("uuid key shard_for_param(binary)", lambda: uuid_map.shard_for_param(KEY.bytes, 1)),
    (
        "multi key shard_for_params",
        lambda: multi_map.shard_for_params(
            [(b"42", FORMAT_TEXT), (b"customer-42", FORMAT_TEXT), (KEY.bytes, FORMAT_BINARY)]
        ),
    ),
]


def microseconds_per_call(func: Callable[[], object], repeat: int) -> float:
    timer = timeit.Timer(func)
    number, _ = timer.autorange()  # at least 0.2 s per run
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per case")
    args = parser.parse_args()
    width = max(len(name) for name, _ in CASES)
    print(f"{'function':<{width}}  us/hash  ({SHARDS} shards, best of {args.repeat})")
    results = {}
    for name, func in CASES:
        results[name] = microseconds_per_call(func, args.repeat)
        print(f"{name:<{width}}  {results[name]:7.3f}")
    overhead = microseconds_per_call(lambda: None, args.repeat)
    print(f"{'(timing overhead: an empty call)':<{width}}  {overhead:7.3f}  included above")
    bigint = results[CASES[0][0]]
    verdict = "meets" if bigint <= BIGINT_TARGET_US else "MISSES"
    print(f"\npg_bigint_hash {bigint:.3f} us {verdict} the target of <= {BIGINT_TARGET_US} us")


if __name__ == "__main__":
    main()
