"""Routing: which shard and which role a transaction goes to, with the reason why.

A Route is a value that carries its reason, for logs, metrics and the admin console. The
Router of a pool turns the first statement of a transaction, the client's overrides (pgcat's
custom commands) and the pool's keys into a Route, following pgcat's meanings
(reference/pgcat.md §2) without its sticky-role bugs:

- role: a SET SERVER ROLE override wins; else, with query_parser_enabled and
  query_parser_read_write_splitting, a statement the parser is sure is a read goes to a
  replica (or to any server with primary_reads_enabled) and everything else, unknown,
  unparseable or too long included, to the primary; else default_role.
- shard: SET SHARD / SET SHARDING KEY; else a shard_id / sharding_key comment; else the
  automatic_sharding_key values found by the parser (literals, or Bind parameters); else
  default_shard (shard_N, random, random_healthy, or our `fail`).
- cross_shard_queries (ours, issue 12): a lone SELECT outside an explicit transaction that
  needs several shards (a sharded table and no key, or keys on several shards) gets a
  scatter route (shard SCATTER, the shards in ``shards``): pgcat_py/scatter/ runs it on each
  and merges the results. Off, such a statement keeps pgcat's behaviour (default_shard, or
  the "several shards" error).
- cross_shard_writes (ours, issue 12): a lone INSERT, UPDATE, DELETE or COPY FROM that
  needs several shards, outside an explicit transaction, gets a scatter route with
  ``writes`` set: pgcat_py/scatter/writes.py splits or broadcasts it. Inside one it is
  refused (0A000). Off, pgcat's behaviour stays.
- db_activity_based_routing (activity.py, a tracker per pool): a read the parser sent to a
  replica goes to the primary while the pool initializes, or when it reads a table written
  within table_mutation_cache_ms_ttl.
Nothing inferred from one statement carries over to the next transaction (except the
tables db_activity_based_routing remembers). A pool's plugins (plugins/) run in the idle
path around this decision; the router only carries them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from parser import (
    Classification,
    CopyDirection,
    IsolationLevel,
    KeyStatus,
    Parser,
    ParserSettings,
    StatementKind,
    comment_hints,
)
from sharding import KeyValue, ShardingError, ShardingFunction, ShardMap, coerce_param

try:  # mypyc's class attributes (mypy_extensions comes with mypy, which builds the relay)
    from mypy_extensions import mypyc_attr
except ImportError:  # pragma: no cover - pure Python without the build tools

    def mypyc_attr(*_args: object, **_kwargs: object) -> Callable[[type], type]:  # type: ignore[misc]
        return lambda cls: cls

from .activity import DbActivity
from .protocol.errors import FEATURE_NOT_SUPPORTED, SYSTEM_ERROR, ProxyError

if TYPE_CHECKING:
    from .plugins import PoolPlugins

log = logging.getLogger(__name__)

PRIMARY: Final = "primary"
REPLICA: Final = "replica"
ANY: Final = "any"
TEXT_CACHE_SIZE: Final = 4096  # routes remembered by exact SQL text, per pool
TEXT_CACHE_MAX_LENGTH: Final = 2048  # longer texts are not remembered (memory)
SCATTER: Final = -1  # Route.shard of a cross-shard statement (pgcat_py/scatter/)
_SCATTERED_WRITES: Final = frozenset({(StatementKind.INSERT,), (StatementKind.UPDATE,),
                               (StatementKind.DELETE,), (StatementKind.COPY,)})


@dataclass(frozen=True, slots=True)
class Route:
    """Where one transaction goes: a shard, a role, and why."""

    shard: int  # SCATTER: every shard of ``shards`` (all when empty)
    role: str  # "primary", "replica" or "any"
    reason: str
    shards: tuple[int, ...] = ()
    writes: bool = False  # a SCATTER route of a write (cross_shard_writes)


@mypyc_attr(allow_interpreted_subclasses=True)  # plugins' PluginRefusal
class RouteError(ProxyError):
    """No route for this statement (a key on several shards, an unknown shard, ...)."""


@dataclass(slots=True)
class Overrides:
    """What a client chose with pgcat's custom commands; sticky until changed. Call
    ``changed()`` after setting fields: ``any_set`` is read once per transaction."""

    shard: int | None = None
    role: str | None = None  # SET SERVER ROLE primary / replica / any
    parser: bool | None = None  # False after primary/replica/any, True after 'auto'
    primary_reads: bool | None = None
    any_set: bool = False

    def changed(self) -> None:
        self.any_set = (self.shard is not None or self.role is not None
                        or self.parser is not None or self.primary_reads is not None)


# Every client that chose nothing shares this one (72 bytes each otherwise: most clients
# never send a custom command); ClientSession.own_overrides makes a client's own before
# a command changes anything. Never change its fields.
NO_OVERRIDES: Final = Overrides()


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """A pool's routing keys (pgcat's names)."""

    shards: int = 1
    default_role: str = ANY
    default_shard: str = "shard_0"
    query_parser_enabled: bool = False
    read_write_splitting: bool = False
    primary_reads_enabled: bool = False
    session_mode: bool = False
    parser: ParserSettings = field(default_factory=ParserSettings)
    sharding_function: str = "pg_bigint_hash"
    cross_shard_queries: bool = False  # ours: merge SELECTs over several shards
    cross_shard_max_rows: int = 100_000  # groups a merge may hold in memory
    cross_shard_writes: bool = False  # ours: split or broadcast writes over several shards


# A statement as the router sees it: its SQL and, for the extended protocol, the Bind
# parameters as (data, format code) by 1-based position.
BindParams = Sequence[tuple[bytes | None, int]]


class Router:
    """The routing decisions of one pool; see the module docstring."""

    def __init__(self, settings: RouterSettings, *, plugins: PoolPlugins | None = None,
                 activity: DbActivity | None = None) -> None:
        self.settings = settings
        self.shard_map = ShardMap(settings.shards,
                                  ShardingFunction.parse(settings.sharding_function))
        self.parser = Parser(settings.parser) if settings.query_parser_enabled else None
        p = settings.parser
        self._hints = p.shard_id_regex is not None or p.sharding_key_regex is not None
        self._auto_keys = bool(p.sharding_keys) and self.parser is not None
        # Healthy shards for default_shard = random_healthy (set by the cluster).
        self.healthy_shards: Callable[[], list[int]] = lambda: list(range(settings.shards))
        # Decisions that depend on the SQL text alone (one shard, no hints, no overrides):
        # by exact text, so a statement seen before (a Parse's text, an ORM's query) costs
        # one dict hit instead of the lexer and the shape cache.
        self._by_text: dict[str, Route] = {}
        # The pool's plugins (plugins/) and db_activity_based_routing's tracker (shared by
        # the pool's users; only with read/write splitting, as in pgcat): None when off.
        self.plugins = plugins
        self.activity = activity if self.splits_reads else None
        self.clock: Callable[[], float] = time.monotonic  # activity's clock (tests set it)
        self._text_only = (settings.shards == 1 and not self._hints and self.activity is None
                           and not settings.default_shard.startswith(("random", "fail")))
        # The same decisions by the text's shape (parser.Parser.shape_of), when the parser
        # runs: texts that differ only in literals (pgbench -S, an ORM's inlined values)
        # cost the lexer and one dict hit, not the shape cache and the decision.
        self._by_shape: dict[str, Route] | None = (
            {} if self._text_only and self.parser is not None
            and (self._auto_keys or self.splits_reads) else None)
        self._interned: dict[tuple[int, str, str], Route] = {}

    @property
    def reads_bind_keys(self) -> bool:
        """Can a Bind parameter pick the shard (automatic sharding over several shards)?"""
        return self._auto_keys and self.settings.shards > 1

    @property
    def splits_reads(self) -> bool:
        return self.parser is not None and self.settings.read_write_splitting

    @property
    def varies(self) -> bool:
        """Can two transactions of a client without overrides go to different places?"""
        s = self.settings
        return (self.splits_reads or self._hints or self.plugins is not None
                or (s.shards > 1 and not s.default_shard.startswith("shard_"))
                or self._scatters)

    @property
    def _scatters(self) -> bool:
        s = self.settings
        return ((s.cross_shard_queries or s.cross_shard_writes) and s.shards > 1
                and self._auto_keys
                and not s.session_mode)

    def fixed_route(self) -> Route:
        """The route when nothing varies and no override is set."""
        return Route(self._default_shard(), self.settings.default_role, "default_role")

    # --- the decision -----------------------------------------------------------------
    def route(self, sql: str | None, overrides: Overrides, *, read_only_txn: bool | None = None,
              bind: BindParams = ()) -> Route:
        """The route of a transaction that starts with ``sql`` (None: not SQL, e.g. a
        FunctionCall, or too big to look at). ``read_only_txn``: the statement runs in an
        explicit transaction that is (True) or is not (False) read-only."""
        if (self._text_only and sql is not None and read_only_txn is None
                and not overrides.any_set):
            route = self._by_text.get(sql)
            if route is None:
                route = self._route_text(sql, overrides, bind)
                if len(self._by_text) >= TEXT_CACHE_SIZE:
                    self._by_text.clear()  # cheap and bounded; hot texts come back at once
                if len(sql) <= TEXT_CACHE_MAX_LENGTH:
                    self._by_text[sql] = route
            return route
        return self._decide(sql, overrides, read_only_txn, bind)

    def _route_text(self, sql: str, overrides: Overrides, bind: BindParams) -> Route:
        """A text-only decision (one shard, no hints, no overrides), by shape when the
        parser runs: with one shard the literals cannot change it."""
        by_shape = self._by_shape
        if by_shape is None or self.parser is None:
            return self._decide(sql, overrides, None, bind)
        shape = self.parser.shape_of(sql)
        route = by_shape.get(shape) if shape is not None else None
        if route is None:
            route = self._decide(sql, overrides, None, bind)
            if shape is not None:
                if len(by_shape) >= TEXT_CACHE_SIZE:
                    by_shape.clear()
                by_shape[shape] = route
        return route

    def _decide(self, sql: str | None, overrides: Overrides, read_only_txn: bool | None,
                bind: BindParams) -> Route:
        classification = self._classify(sql, overrides)
        role, why = self._role(classification, overrides, read_only_txn)
        shard, where = self._shard(sql, classification, overrides, bind)
        if isinstance(shard, tuple) or shard == SCATTER:
            writes = self._is_scattered_write(classification, read_only_txn)
            merged = self.settings.cross_shard_queries and self._is_lone_select(classification)
            if writes or (merged and read_only_txn is None):
                shards = shard if isinstance(shard, tuple) else ()
                return Route(SCATTER, role, f"{why}; {where}", shards, writes)
            if merged:  # one shard's rows would pass for the answer: refused instead
                raise RouteError(
                    "a SELECT over several shards inside an explicit transaction is not "
                    "supported (cross_shard_queries merges a lone SELECT outside one): give "
                    "it a sharding key or SET SHARD, or run it outside the transaction",
                    sqlstate=FEATURE_NOT_SUPPORTED)
            shard, where = self._not_scattered(shard)
        if self.activity is not None and classification is not None:
            role, why = self._by_activity(classification, overrides, role, why, shard)
        key = (shard, role, f"{why}; {where}" if where else why)
        route = self._interned.get(key)
        if route is None:
            if len(self._interned) >= TEXT_CACHE_SIZE:
                self._interned.clear()
            route = self._interned[key] = Route(*key)
        return route

    def _is_lone_select(self, c: Classification | None) -> bool:
        return (c is not None and c.kinds == (StatementKind.SELECT,) and not c.is_write)

    def _is_scattered_write(self, c: Classification | None, read_only_txn: bool | None
                            ) -> bool:
        """cross_shard_writes: a lone INSERT, UPDATE, DELETE or COPY FROM; refused in an
        explicit transaction (its shards would need one server each until COMMIT)."""
        if (not self.settings.cross_shard_writes or c is None
                or c.kinds not in _SCATTERED_WRITES
                or (c.kinds[0] is StatementKind.COPY
                    and c.copy_direction is not CopyDirection.FROM)):
            return False
        if read_only_txn is not None:
            raise RouteError("a write on several shards inside an explicit transaction is not "
                             "supported (cross_shard_writes runs only single statements)",
                             sqlstate=FEATURE_NOT_SUPPORTED)
        return True

    def _not_scattered(self, shard: int | tuple[int, ...]) -> tuple[int, str]:
        """pgcat's answer for a statement that is not merged: the key error, or
        default_shard."""
        if isinstance(shard, tuple):
            raise _several_shards(set(shard))
        return self._default_shard(), "default_shard"

    def _by_activity(self, c: Classification, overrides: Overrides, role: str, why: str,
                     shard: int) -> tuple[str, str]:
        """db_activity_based_routing (activity.py): a write remembers its tables; a read
        the parser sent to a replica goes to the primary while the pool initializes or
        when it reads a table written within table_mutation_cache_ms_ttl."""
        activity = self.activity
        assert activity is not None
        now = self.clock()
        if c.is_write:
            activity.note_write(now, shard, c.tables)
            return role, why
        if role == PRIMARY or overrides.role is not None:
            activity.is_initializing(now)  # a query of the pool all the same
            return role, why
        reason = activity.primary_reason(now, shard, c.tables)
        return (role, why) if reason is None else (PRIMARY, reason)

    def note_writes(self, texts: Sequence[str | None], shard: int) -> None:
        """db_activity_based_routing: the writes among statements pipelined behind the
        one that routed the transaction (they run on its server, ``shard``)."""
        if self.activity is None or self.parser is None:
            return
        now = self.clock()
        for text in texts:
            if text is not None:
                c = self.parser.classify(text)
                if c.is_write:
                    self.activity.note_write(now, shard, c.tables)

    def classify(self, sql: str) -> Classification | None:
        return self.parser.classify(sql) if self.parser is not None else None

    def is_write(self, sql: str) -> bool:
        """Would ``sql`` need the primary (anything the parser cannot vouch for does)?"""
        return self.parser is None or self.parser.classify(sql).is_write

    def _classify(self, sql: str | None, overrides: Overrides) -> Classification | None:
        if sql is None or self.parser is None:
            return None
        if not (self._auto_keys or self.activity is not None or self._parser_on(overrides)):
            return None
        return self.parser.classify(sql)

    def _parser_on(self, overrides: Overrides) -> bool:
        if overrides.parser is not None:
            return overrides.parser and self.parser is not None
        return self.splits_reads

    def _role(self, c: Classification | None, overrides: Overrides,
              read_only_txn: bool | None) -> tuple[str, str]:
        if overrides.role is not None:
            return overrides.role, "SET SERVER ROLE"
        if not self._parser_on(overrides):
            return self.settings.default_role, "default_role"
        if self.settings.session_mode:
            # A session keeps its SETs, temp tables and locks on one connection: its primary.
            return PRIMARY, "session mode"
        if read_only_txn is False:
            return PRIMARY, "explicit transaction"
        if read_only_txn is None and (c is None or c.is_write):
            return PRIMARY, c.reason if c is not None else "not parsed"
        primary_reads = overrides.primary_reads
        if primary_reads is None:
            primary_reads = self.settings.primary_reads_enabled
        why = "read-only transaction" if read_only_txn else "read"
        return (ANY, why) if primary_reads else (REPLICA, why)

    def _shard(self, sql: str | None, c: Classification | None, overrides: Overrides,
               bind: BindParams) -> tuple[int | tuple[int, ...], str]:
        if self.settings.shards == 1:
            return 0, ""
        if overrides.shard is not None:
            return overrides.shard, "SET SHARD"
        if self._hints and sql is not None:
            hint = comment_hints(sql, self.settings.parser)
            if hint is not None:
                return self._hinted(hint.shard_id, hint.sharding_key)
        if c is not None and self._auto_keys:
            shard = self._key_shard(c, bind)
            if isinstance(shard, tuple):
                return shard, f"cross-shard: sharding keys on shards {shard}"
            if shard is not None:
                return shard, "sharding key"
            if self._scatters and c.shard_keys.status is not KeyStatus.NONE:
                # No key (ALL), or one only the server knows (UNKNOWN: id = f(x), an array
                # parameter): the rows may be on any shard.
                return SCATTER, "cross-shard: no sharding key"
        return self._default_shard(), "default_shard"

    def _hinted(self, shard_id: int | None, key: int | None) -> tuple[int, str]:
        if shard_id is not None:
            return self.check_shard(shard_id), "shard_id comment"
        assert key is not None
        return self.shard_for_key(key), "sharding_key comment"

    def _key_shard(self, c: Classification, bind: BindParams) -> int | tuple[int, ...] | None:
        """The keys' shard; their shards (sorted) when several and cross_shard_queries may
        merge the statement; None without a key."""
        keys = c.shard_keys
        if keys.status is not KeyStatus.FOUND:
            return None
        if keys.has_params:
            keys = keys.bind(self._bind_values(keys, bind))
            if keys.status is not KeyStatus.FOUND:
                return None
        try:
            shards = {self.shard_map.shard_for(key) for key in keys.keys}
        except (ShardingError, ValueError) as exc:
            raise RouteError(str(exc), sqlstate=getattr(exc, "sqlstate", "22023")) from None
        if len(shards) > 1:
            if self._scatters:
                return tuple(sorted(shards))
            raise _several_shards(shards)
        return shards.pop() if shards else None

    def _bind_values(self, keys: object, bind: BindParams) -> dict[int, KeyValue | None]:
        key_type = self.shard_map.key_types[0]
        values: dict[int, KeyValue | None] = {}
        for position, (data, fmt) in enumerate(bind, start=1):
            try:
                values[position] = coerce_param(data, fmt, key_type)
            except (ShardingError, ValueError):
                continue  # not the key's parameter, or not a number: the server will say
        return values

    # --- shards -----------------------------------------------------------------------
    def check_shard(self, shard: int) -> int:
        if not 0 <= shard < self.settings.shards:
            raise RouteError(
                f"shard {shard} is not configured {self.settings.shards}, "
                "(shard numbers start at 0)", sqlstate=SYSTEM_ERROR)
        return shard

    def shard_for_key(self, key: int) -> int:
        try:
            return self.shard_map.shard_for(key)
        except (ShardingError, ValueError) as exc:
            raise RouteError(str(exc), sqlstate=getattr(exc, "sqlstate", "22023")) from None

    def _default_shard(self) -> int:
        choice = self.settings.default_shard
        if choice.startswith("shard_"):
            return int(choice[len("shard_"):])
        if choice == "random":
            return random.randrange(self.settings.shards)
        if choice == "random_healthy":
            healthy = self.healthy_shards()
            return random.choice(healthy) if healthy else random.randrange(self.settings.shards)
        raise RouteError(  # "fail": no guessing where a row lives (pgcat #858)
            "no shard selected for this statement and default_shard is 'fail': add a "
            "sharding key, a shard_id comment or SET SHARD", sqlstate=FEATURE_NOT_SUPPORTED)


def _several_shards(shards: set[int]) -> RouteError:
    return RouteError(
        f"the statement's sharding keys are on {len(shards)} shards "
        f"({', '.join(map(str, sorted(shards)))}); cross-shard statements are not "
        "supported here (cross_shard_queries merges a lone SELECT outside a transaction)",
        sqlstate=FEATURE_NOT_SUPPORTED)


def read_only_transaction(begin: Classification | None, params: dict[str, str]) -> bool:
    """May a transaction started this way run on a hot standby? Declared READ ONLY (or
    default_transaction_read_only on) and not SERIALIZABLE, which a standby refuses."""
    modes = begin.transaction_modes if begin is not None else None
    read_only = modes.read_only if modes is not None else None
    if read_only is None:
        read_only = params.get("default_transaction_read_only", "off").lower() in (
            "on", "true", "1", "yes")
    if not read_only:
        return False
    level = modes.isolation_level if modes is not None else None
    if level is None:
        level_name = params.get("default_transaction_isolation", "").lower()
        return level_name != "serializable"
    return level is not IsolationLevel.SERIALIZABLE
