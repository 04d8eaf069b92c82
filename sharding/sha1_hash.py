"""pgcat's ``sha1`` sharding function (src/sharding.rs, ``Sharder::sha1``).

The key's decimal text (with a ``-`` for negatives) is hashed with SHA-1, and the last
8 hex digits of the digest, i.e. its low 32 bits read big-endian, are taken modulo N
(pgcat's comment says "8 bytes"; the code takes 8 hex characters, 4 bytes).
"""

from __future__ import annotations

import hashlib

from sharding.coerce import out_of_range
from sharding.keytype import KeyType
from sharding.pg_hash import INT64_MAX, INT64_MIN, check_shards

_TAIL_BYTES = 4  # the 8 hex characters pgcat keeps


def sha1(key: int, shards: int) -> int:
    """The shard of an integer key under pgcat's ``sharding_function = "sha1"``."""
    if not INT64_MIN <= key <= INT64_MAX:  # pgcat's keys are i64
        raise out_of_range(key, KeyType.BIGINT)
    digest = hashlib.sha1(str(key).encode("ascii"), usedforsecurity=False).digest()
    return int.from_bytes(digest[-_TAIL_BYTES:], "big") % check_shards(shards)
