"""The PostgreSQL types a sharding key column can have, and their value ranges.

A key's type decides both how its value is read (``coerce``) and which PostgreSQL hash
support function hashes it (``pg_hash``). varchar is hashed as text (its hash opclass is
text's), so it is an alias here, as are PostgreSQL's other spellings of each type.
"""

from __future__ import annotations

from enum import StrEnum


class KeyType(StrEnum):
    """A sharding key column type; the value is PostgreSQL's canonical type name."""

    SMALLINT = "smallint"
    INTEGER = "integer"
    BIGINT = "bigint"
    TEXT = "text"
    UUID = "uuid"

    @classmethod
    def parse(cls, name: str) -> KeyType:
        """A type by any name PostgreSQL accepts for it: ``int8``, ``varchar(32)``, ``UUID``."""
        spelled = " ".join(name.lower().split())
        base = spelled.split("(", 1)[0].strip()  # varchar(32) -> varchar
        try:
            return _ALIASES[base]
        except KeyError:
            known = ", ".join(sorted(_ALIASES))
            raise ValueError(
                f"unsupported sharding key type {name!r} (supported: {known})"
            ) from None

    @property
    def is_integer(self) -> bool:
        return self in INTEGER_RANGES


# Inclusive value ranges of the integer types (int2, int4, int8 in PostgreSQL's docs, §8.1.1).
INTEGER_RANGES: dict[KeyType, tuple[int, int]] = {
    KeyType.SMALLINT: (-(2**15), 2**15 - 1),
    KeyType.INTEGER: (-(2**31), 2**31 - 1),
    KeyType.BIGINT: (-(2**63), 2**63 - 1),
}

_ALIASES: dict[str, KeyType] = {
    "smallint": KeyType.SMALLINT,
    "int2": KeyType.SMALLINT,
    "integer": KeyType.INTEGER,
    "int": KeyType.INTEGER,
    "int4": KeyType.INTEGER,
    "bigint": KeyType.BIGINT,
    "int8": KeyType.BIGINT,
    "text": KeyType.TEXT,
    "varchar": KeyType.TEXT,
    "character varying": KeyType.TEXT,
    "uuid": KeyType.UUID,
}
