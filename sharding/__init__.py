"""PostgreSQL-compatible hash sharding functions and shard maps (pure, no I/O).

The public API is re-exported here; the modules own:

* ``lookup3``: Bob Jenkins' lookup3, as PostgreSQL's hashfn.c computes it.
* ``pg_hash``: PostgreSQL ``PARTITION BY HASH`` for bigint/int/smallint, text, uuid and
  multi-column keys (``pg_bigint_hash`` is pgcat's function of that name).
* ``sha1_hash``: pgcat's ``sha1`` sharding function.
* ``keytype``, ``coerce``: key column types, and reading key values from literals and
  text/binary Bind parameters.
* ``shard_map``: a pool's shards and sharding function, as the router uses them.
* ``errors``: ``ShardKeyError`` (a bad key value) and ``ShardIdError`` (a bad shard id).
"""

from sharding.coerce import (
    FORMAT_BINARY,
    FORMAT_TEXT,
    KeyValue,
    coerce_binary,
    coerce_literal,
    coerce_param,
    coerce_text,
)
from sharding.errors import ShardIdError, ShardingError, ShardKeyError
from sharding.keytype import KeyType
from sharding.pg_hash import (
    HASH_PARTITION_SEED,
    hash_combine64,
    partition_row_hash,
    pg_bigint_hash,
    pg_partition_hash,
    pg_text_hash,
    pg_uuid_hash,
)
from sharding.sha1_hash import sha1
from sharding.shard_map import ShardingFunction, ShardMap

__all__ = [
    "FORMAT_BINARY",
    "FORMAT_TEXT",
    "HASH_PARTITION_SEED",
    "KeyType",
    "KeyValue",
    "ShardIdError",
    "ShardKeyError",
    "ShardMap",
    "ShardingError",
    "ShardingFunction",
    "coerce_binary",
    "coerce_literal",
    "coerce_param",
    "coerce_text",
    "hash_combine64",
    "partition_row_hash",
    "pg_bigint_hash",
    "pg_partition_hash",
    "pg_text_hash",
    "pg_uuid_hash",
    "sha1",
]
