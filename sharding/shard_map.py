"""A pool's shard map: how many shards it has, how a key picks one, which ids are valid.

The router builds one :class:`ShardMap` per pool from its config (the ``[pools.X.shards]``
table names, ``sharding_function``, and the key column types; pgcat has exactly one bigint
key) and asks it for a shard from whatever it found: a literal, a Bind parameter, a
``SET SHARDING KEY`` value, a ``SET SHARD TO`` id.

With ``sharding_function = "pg_bigint_hash"`` a key goes to the REMAINDER PostgreSQL's
``PARTITION BY HASH`` would give it with MODULUS = number of shards, for every key type
and any number of key columns; ``"sha1"`` is pgcat's SHA-1 scheme for one integer key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sharding.coerce import Bytes, KeyValue, check_integer, coerce_literal, coerce_param
from sharding.errors import ShardIdError, ShardKeyError, show_value
from sharding.keytype import KeyType
from sharding.pg_hash import (
    check_shards,
    pg_bigint_hash,
    pg_partition_hash,
    pg_text_hash,
    pg_uuid_hash,
)
from sharding.sha1_hash import sha1


class ShardingFunction(StrEnum):
    """pgcat's ``sharding_function`` values."""

    PG_BIGINT_HASH = "pg_bigint_hash"
    SHA1 = "sha1"

    @classmethod
    def parse(cls, name: str) -> ShardingFunction:
        """A function by its config name, including the serde aliases pgcat accepts."""
        try:
            return _FUNCTION_NAMES[name]
        except KeyError:
            raise ValueError(
                f"unknown sharding_function {name!r} (expected 'pg_bigint_hash' or 'sha1')"
            ) from None


# pgcat deserialises both the snake_case names and the Rust variant names.
_FUNCTION_NAMES = {
    "pg_bigint_hash": ShardingFunction.PG_BIGINT_HASH,
    "PgBigintHash": ShardingFunction.PG_BIGINT_HASH,
    "sha1": ShardingFunction.SHA1,
    "Sha1": ShardingFunction.SHA1,
}


@dataclass(frozen=True, slots=True)
class ShardMap:
    """N shards numbered ``0..N-1`` and the function that maps keys onto them."""

    shards: int
    function: ShardingFunction = ShardingFunction.PG_BIGINT_HASH
    key_types: tuple[KeyType, ...] = (KeyType.BIGINT,)

    def __post_init__(self) -> None:
        check_shards(self.shards)
        if not self.key_types:
            raise ValueError("a shard map needs at least one key column")
        if self.function is ShardingFunction.SHA1 and (
            len(self.key_types) != 1 or not self.key_types[0].is_integer
        ):
            raise ValueError("sharding_function 'sha1' takes exactly one integer key column")

    @classmethod
    def from_pool_config(
        cls,
        shard_names: Iterable[str | int],
        function: str | ShardingFunction = ShardingFunction.PG_BIGINT_HASH,
        key_types: Sequence[str | KeyType] = (KeyType.BIGINT,),
    ) -> ShardMap:
        """The map of a pool whose ``[pools.X.shards]`` table has these names ("0", "1", ...).

        The names must be exactly ``0..N-1`` (pgcat sorts them and uses them positionally,
        so a gap would route to a shard that is not there; we refuse it up front).
        """
        ids = _shard_ids(shard_names)
        return cls(
            shards=len(ids),
            function=ShardingFunction.parse(str(function)),
            key_types=tuple(KeyType.parse(str(key_type)) for key_type in key_types),
        )

    @property
    def shard_ids(self) -> range:
        return range(self.shards)

    def check_shard_id(self, shard_id: int | str) -> int:
        """The shard id as an int, if this pool has it (``SET SHARD TO``, ``shard_id`` hints)."""
        number = _shard_number(shard_id)
        if number is None or not 0 <= number < self.shards:
            raise ShardIdError(
                f"shard {show_value(shard_id)} is not configured: the pool has {self.shards} "
                f"shard(s), numbered from 0 to {self.shards - 1}",
                shard_id,
                self.shards,
            )
        return number

    def shard_for(self, key: object) -> int:
        """The shard of a single-column key given as a literal: int, str, uuid.UUID or None."""
        key_type = self._single_key_type()
        if type(key) is int and key_type.is_integer:
            # The hot path: an integer literal for an integer key.
            return self._shard_of_value(check_integer(key, key_type))
        return self._shard_of((coerce_literal(key, key_type),))

    def shard_for_row(self, values: Sequence[object]) -> int:
        """The shard of a multi-column key: one literal (or None for NULL) per key column."""
        self._check_arity(len(values))
        return self._shard_of(
            tuple(coerce_literal(v, t) for v, t in zip(values, self.key_types, strict=True))
        )

    def shard_for_param(self, data: Bytes | None, format_code: int) -> int:
        """The shard of a single-column key given as a Bind parameter (format 0 text, 1 binary)."""
        return self._shard_of((coerce_param(data, format_code, self._single_key_type()),))

    def shard_for_params(self, params: Sequence[tuple[Bytes | None, int]]) -> int:
        """The shard of a multi-column key given as Bind parameters: (data, format) per column."""
        self._check_arity(len(params))
        return self._shard_of(
            tuple(
                coerce_param(data, format_code, key_type)
                for (data, format_code), key_type in zip(params, self.key_types, strict=True)
            )
        )

    def _shard_of(self, values: tuple[KeyValue | None, ...]) -> int:
        if len(values) == 1 and values[0] is not None:
            return self._shard_of_value(values[0])
        if self.function is ShardingFunction.SHA1:
            raise ShardKeyError("a NULL sharding key has no shard under 'sha1'", None)
        return pg_partition_hash(values, self.key_types, self.shards)

    def _shard_of_value(self, value: KeyValue) -> int:
        """One non-NULL key, already coerced to its column's type: the direct functions."""
        if isinstance(value, int):
            if self.function is ShardingFunction.SHA1:
                return sha1(value, self.shards)
            return pg_bigint_hash(value, self.shards)
        if isinstance(value, str):
            return pg_text_hash(value, self.shards)
        return pg_uuid_hash(value, self.shards)

    def _single_key_type(self) -> KeyType:
        if len(self.key_types) != 1:
            raise ValueError(
                f"this shard map has {len(self.key_types)} key columns; "
                "use shard_for_row or shard_for_params"
            )
        return self.key_types[0]

    def _check_arity(self, count: int) -> None:
        if count != len(self.key_types):
            raise ValueError(f"{count} key values for {len(self.key_types)} key columns")


def _shard_number(shard_id: object) -> int | None:
    """A shard id as an int: an int, or a str of ASCII digits; None if it is neither."""
    if isinstance(shard_id, bool):
        return None
    if isinstance(shard_id, int):
        return shard_id
    if isinstance(shard_id, str):
        text = shard_id.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def _shard_ids(shard_names: Iterable[str | int]) -> list[int]:
    names = list(shard_names)
    ids: dict[int, str | int] = {}
    for name in names:
        number = _shard_number(name)
        if number is None or number < 0:
            raise ShardIdError(
                f"shard name {show_value(name)} is not a shard number (name shards 0, 1, ...)",
                name,
                len(names),
            )
        if number in ids:
            raise ShardIdError(
                f"shard {show_value(name)} is configured twice (also as {show_value(ids[number])})",
                name,
                len(names),
            )
        ids[number] = name
    if not ids:
        raise ShardIdError("a pool needs at least one shard", None, 0)
    missing = sorted(set(range(len(ids))) - ids.keys())
    if missing:
        raise ShardIdError(
            f"shards must be numbered 0 to {len(ids) - 1} without gaps; "
            f"missing {', '.join(map(str, missing))}",
            missing[0],
            len(ids),
        )
    return sorted(ids)
