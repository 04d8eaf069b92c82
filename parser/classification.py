"""The values the parser hands to the router: a Classification and its parts.

Everything here is a frozen, slotted dataclass or an enum, so a Classification can be cached
per query shape and shared by every query of that shape; only `shard_keys` differs between
two queries of one shape (the literal values).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

# A shard key value as written in the query: an integer, a text, or a uuid (cast to uuid).
# The same union as sharding.KeyValue; sharding.coerce_literal reads it for the key's type.
KeyValue = int | str | UUID


class StatementKind(enum.Enum):
    """What one statement is, by its leading keywords (PostgreSQL's SQL command names)."""

    SELECT = "SELECT"  # SELECT, WITH ... SELECT, set operations, parenthesised queries
    VALUES = "VALUES"
    TABLE = "TABLE"
    SHOW = "SHOW"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    MERGE = "MERGE"
    BEGIN = "BEGIN"  # BEGIN and START TRANSACTION
    COMMIT = "COMMIT"  # COMMIT and END
    ROLLBACK = "ROLLBACK"  # ROLLBACK and ABORT
    SAVEPOINT = "SAVEPOINT"
    RELEASE_SAVEPOINT = "RELEASE SAVEPOINT"
    ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT"
    PREPARE_TRANSACTION = "PREPARE TRANSACTION"
    COMMIT_PREPARED = "COMMIT PREPARED"
    ROLLBACK_PREPARED = "ROLLBACK PREPARED"
    SET = "SET"  # session-level SET (also SET SESSION CHARACTERISTICS, SET ROLE)
    SET_LOCAL = "SET LOCAL"  # transaction-scoped: SET LOCAL, SET CONSTRAINTS
    SET_TRANSACTION = "SET TRANSACTION"
    RESET = "RESET"
    DISCARD = "DISCARD"
    LISTEN = "LISTEN"
    UNLISTEN = "UNLISTEN"
    NOTIFY = "NOTIFY"
    PREPARE = "PREPARE"
    EXECUTE = "EXECUTE"
    DEALLOCATE = "DEALLOCATE"
    DECLARE = "DECLARE"
    FETCH = "FETCH"
    MOVE = "MOVE"
    CLOSE = "CLOSE"
    COPY = "COPY"
    CREATE_TEMP = "CREATE TEMP"  # CREATE TEMP TABLE / VIEW / SEQUENCE
    DDL = "DDL"  # CREATE, ALTER, DROP, TRUNCATE, GRANT, VACUUM, ...
    EXPLAIN = "EXPLAIN"
    CALL = "CALL"
    DO = "DO"
    LOCK = "LOCK"
    EMPTY = "EMPTY"  # an empty query (only spaces, comments or semicolons)
    UNKNOWN = "UNKNOWN"  # not recognised, or not parseable


class CopyDirection(enum.Enum):
    """COPY ... FROM (the client sends data) or COPY ... TO (the server sends data)."""

    FROM = "FROM"
    TO = "TO"


class KeyStatus(enum.Enum):
    """How far the shard keys of a query are known."""

    NONE = "none"  # no sharded table involved (or no key configured): any shard will do
    FOUND = "found"  # the query touches only the rows of `keys`
    ALL = "all"  # the query may touch rows on every shard (no key, OR with a non-key, ...)
    UNKNOWN = "unknown"  # confined by a key whose value only the server knows (id = f(x))


@dataclass(frozen=True, slots=True)
class ParamRef:
    """A `$n` parameter standing for a shard key: the proxy reads it from the Bind message.

    `position` is n (1-based, as written). `cast` is the type the query casts it to
    ("int", "text", "uuid" or another type name), None when not cast. `array` is True for
    `key = ANY($n)`: the parameter is an array of keys.
    """

    position: int
    cast: str | None = None
    array: bool = False


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The shard keys of a query. Meaningful `keys` only when status is FOUND.

    A multi-row INSERT has one key per row; keys may repeat and may span shards: the router
    hashes them and decides.
    """

    status: KeyStatus
    keys: tuple[KeyValue | ParamRef, ...] = ()

    @property
    def has_params(self) -> bool:
        """True when some key comes from a Bind parameter."""
        return any(type(key) is ParamRef for key in self.keys)

    def bind(self, params: Mapping[int, KeyValue | tuple[KeyValue, ...] | None]) -> ShardKeys:
        """Replace each ParamRef by its Bind value (by position); a missing value is unknown.

        `params` maps positions to Bind values the router decoded (sharding.coerce_param);
        an array parameter (`key = ANY($n)`) gives a tuple of keys.
        """
        if self.status is not KeyStatus.FOUND or not self.has_params:
            return self
        keys: list[KeyValue | ParamRef] = []
        for key in self.keys:
            if type(key) is not ParamRef:
                keys.append(key)
                continue
            value = params.get(key.position)
            if value is None:
                return UNKNOWN_KEYS
            if isinstance(value, tuple):
                keys.extend(value)
            else:
                keys.append(value)
        return ShardKeys(KeyStatus.FOUND, tuple(keys))


NO_KEYS = ShardKeys(KeyStatus.NONE)
ALL_SHARDS = ShardKeys(KeyStatus.ALL)
UNKNOWN_KEYS = ShardKeys(KeyStatus.UNKNOWN)


class IsolationLevel(enum.Enum):
    """Transaction isolation levels, as BEGIN / SET TRANSACTION spell them."""

    SERIALIZABLE = "SERIALIZABLE"
    REPEATABLE_READ = "REPEATABLE READ"
    READ_COMMITTED = "READ COMMITTED"
    READ_UNCOMMITTED = "READ UNCOMMITTED"


@dataclass(frozen=True, slots=True)
class TransactionModes:
    """The modes given to BEGIN, START TRANSACTION or SET TRANSACTION; None = not given.

    A hot standby refuses SERIALIZABLE (and READ WRITE), so a READ ONLY transaction can go to
    a replica only if it does not also ask for SERIALIZABLE.
    """

    read_only: bool | None = None
    isolation_level: IsolationLevel | None = None
    deferrable: bool | None = None


@dataclass(frozen=True, slots=True)
class Traits:
    """Everything a Classification says except the key values: shared by a query shape.

    is_write: False only for texts made of reads the parser is sure of (SELECT, VALUES,
        TABLE, set operations over them, SHOW of a setting) with no write hidden in them.
    kinds: one StatementKind per statement, in order.
    tables: the tables the statements name, each once (lowercased unless quoted, schema
        kept when written); CTE names left out; only COPY's among utility statements.
    reason: why the text is a write ("read" when it is not), for logs and EXPLAIN.
    is_transaction_start / is_transaction_end: BEGIN or START TRANSACTION / COMMIT,
        ROLLBACK, END, ABORT or PREPARE TRANSACTION somewhere in the text.
    transaction_modes: modes from BEGIN, START TRANSACTION or SET TRANSACTION.
    pins_session: the server session now holds state that cannot be moved to another
        server (LISTEN, session advisory locks, WITH HOLD cursors, temporary tables).
    sets_session_state: the server session changes beyond the transaction (SET, RESET,
        DISCARD, PREPARE, DEALLOCATE, LISTEN, UNLISTEN, set_config(), and every pin).
    copy_direction: the direction of the first COPY, None without COPY.
    error: an error the proxy should report instead of running the query (an UPDATE of the
        sharding key); None otherwise. Bad SQL is not an error here: the server reports it.
    """

    is_write: bool
    kinds: tuple[StatementKind, ...]
    tables: tuple[str, ...] = ()
    reason: str = "read"
    is_transaction_start: bool = False
    is_transaction_end: bool = False
    transaction_modes: TransactionModes | None = None
    pins_session: bool = False
    sets_session_state: bool = False
    copy_direction: CopyDirection | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """The classification of a whole query text: its Traits and its shard keys.

    The traits are those of the query's shape (cached, shared); only `shard_keys` is built
    per query, which keeps a cache hit to one small object. The traits' fields are
    readable here directly (`classification.is_write`).
    """

    traits: Traits
    shard_keys: ShardKeys = NO_KEYS

    @property
    def is_write(self) -> bool:
        return self.traits.is_write

    @property
    def kinds(self) -> tuple[StatementKind, ...]:
        return self.traits.kinds

    @property
    def tables(self) -> tuple[str, ...]:
        return self.traits.tables

    @property
    def reason(self) -> str:
        return self.traits.reason

    @property
    def is_transaction_start(self) -> bool:
        return self.traits.is_transaction_start

    @property
    def is_transaction_end(self) -> bool:
        return self.traits.is_transaction_end

    @property
    def transaction_modes(self) -> TransactionModes | None:
        return self.traits.transaction_modes

    @property
    def begin_read_only(self) -> bool:
        """True when the text starts a transaction declared READ ONLY."""
        modes = self.traits.transaction_modes
        return self.traits.is_transaction_start and modes is not None and modes.read_only is True

    @property
    def pins_session(self) -> bool:
        return self.traits.pins_session

    @property
    def sets_session_state(self) -> bool:
        return self.traits.sets_session_state

    @property
    def copy_direction(self) -> CopyDirection | None:
        return self.traits.copy_direction

    @property
    def error(self) -> str | None:
        return self.traits.error


def unknown_write(reason: str, keys: ShardKeys = UNKNOWN_KEYS) -> Classification:
    """The classification of text the parser cannot vouch for: a write, keys unknown."""
    return Classification(Traits(True, (StatementKind.UNKNOWN,), reason=reason), keys)
