"""Cluster: every server of one (pool, user), by shard and role, and the choice among them.

A checkout names a shard and a role ("primary", "replica" or "any"); the cluster orders the
candidates (random, least outstanding connections first for ``loc``, or round robin) and
tries them in turn, so one dead replica costs a retry, not an error. Banned servers are left
out (pgcat: when every replica of a shard is banned, they are all unbanned); reads fall back
to the primary after the replicas (replica_to_primary_failover_enabled). The common case, an
idle connection on the only candidate, is served synchronously; otherwise a CheckoutAttempt
waits on the pools by callback. Roles are state: a promotion moves a pool between roles.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Protocol

from ..backend.prepared import StatementRegistry
from ..backend.server import ServerConnection
from ..protocol.errors import PoolTimeout, ProxyError
from ..router import PRIMARY, REPLICA, Route, Router, RouterSettings
from ..stats import RouteKey, reason_kind
from .server_pool import ALL_SERVERS_DOWN, LOG_EVERY, ServerPool

log = logging.getLogger(__name__)
ROUTES_LOGGER: Final = "pgcat_py.frontend.session"  # the logger of each transaction's route
LSN_HISTORY: Final = 256  # primary positions kept per shard for read_your_writes
MAX_COUNTED_ROUTES: Final = 4096  # routes counted apart before their counts are folded

ROLES: Final = ("primary", "replica", "any")


@dataclass(frozen=True)
class ClusterSettings:
    pool_name: str
    user: str
    pool_mode: str = "transaction"
    load_balancing_mode: str = "random"
    default_role: str = "any"
    default_shard: str = "shard_0"
    replica_to_primary_failover: bool = True
    # Settings every client of this (pool, user) starts with unless it asks otherwise, as
    # PostgreSQL's per-role ALTER ROLE ... SET (the user's statement_timeout).
    user_settings: tuple[tuple[str, str], ...] = ()
    checkout_failure_limit: int = 0  # failed checkouts before a client is closed; 0: never
    log_parameter_changes: bool = False  # log_client_parameter_status_changes
    ban_replica_lag: int = 0  # ms; with the two below, see pool/lag.py
    ban_replica_lag_bytes: int = 0
    read_your_writes: bool = False


class _Counted:
    """Transactions on one route of a cluster's (Cluster.count_route)."""

    __slots__ = ("count", "key", "route")

    def __init__(self, route: Route, key: RouteKey) -> None:
        self.route = route  # held: the id it is filed under stays its own
        self.key = key
        self.count = 0


class CheckoutClient(Protocol):
    """Whoever asked: gets exactly one of the two callbacks."""

    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None: ...
    def checkout_failed(self, exc: ProxyError) -> None: ...


def _all_usable(pools: list[ServerPool]) -> bool:
    """None of ``pools`` is banned or lagging (candidates would keep them all)."""
    return all(not (pool.banned_until or pool.lagging) for pool in pools)  # a loop, compiled


class CheckoutAttempt:
    """Walks the candidate pools until one hands out a connection."""

    __slots__ = ("_candidates", "_client", "_current", "_last_error")

    def __init__(self, candidates: list[ServerPool], client: CheckoutClient) -> None:
        self._candidates = candidates
        self._client = client
        self._current: ServerPool | None = None
        self._last_error: ProxyError | None = None

    def start(self) -> None:
        while self._candidates:
            pool = self._candidates.pop(0)
            self._current = pool
            server = pool.request(self)
            if server is not None:
                self._current = None
                self._client.server_ready(pool, server)
            return  # either served, or waiting: a callback follows
        self._current = None
        self._client.checkout_failed(_all_down(self._last_error))

    def waiting_since(self) -> float | None:
        """When the wait in the current pool's queue began (monotonic), if waiting."""
        return self._current.waiters.get(self) if self._current is not None else None

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel(self)
            self._current = None

    # Waiter callbacks from ServerPool
    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None:
        self._current = None
        self._client.server_ready(pool, server)

    def checkout_failed(self, pool: ServerPool, exc: ProxyError) -> None:
        self._last_error = exc
        self.start()


def _all_down(last: ProxyError | None) -> ProxyError:
    if last is None:
        return PoolTimeout(ALL_SERVERS_DOWN)
    if isinstance(last, PoolTimeout):
        return last  # it says how long the client waited, and for which server
    return ProxyError(f"{ALL_SERVERS_DOWN}: {last.message}", sqlstate=last.sqlstate)


class Cluster:
    """The pools of one (pool, user); see the module docstring."""

    def __init__(self, settings: ClusterSettings, shards: list[list[ServerPool]],
                 router: Router | None = None) -> None:
        self.settings = settings
        self.shards = shards
        self.retired = False  # a reload replaced it (see retire)
        self.paused = False  # admin PAUSE: new transactions wait (see frontend/idle.py)
        self.disabled = False  # admin DISABLE: new logins refused
        self.paused_clients: list[Callable[[], None]] = []  # called back at RESUME
        self.router = router or Router(RouterSettings(
            shards=len(shards), default_role=settings.default_role,
            default_shard=settings.default_shard))
        self.router.healthy_shards = self.healthy_shards
        self._configured_functions = self.router.settings.parser.write_functions
        self._learned_functions: frozenset[str] = frozenset()
        # User-defined aggregates of the database (catalog.py): a cross-shard merge refuses
        # them, as each shard would answer with its own partial result.
        self.user_aggregates: frozenset[str] = frozenset()
        # ParameterStatus set shown to clients at login: (Name, value) by lower-case name,
        # learned from the first server connection (pgcat's "original server parameters").
        self.server_parameters: dict[str, tuple[str, str]] = {}
        # The route when nothing can vary: saves building a Route per transaction.
        self.fixed_route = self.router.fixed_route() if not self.router.varies else None
        fixed = self.fixed_route
        self.fixed_route_key = ("", "", 0, "", "") if fixed is None else (
            settings.pool_name, settings.user, fixed.shard, fixed.role, fixed.reason)
        self.fixed_route_count = 0  # transactions that took fixed_route (see count_route)
        # Whether each transaction's route is logged (the session logs it at DEBUG): asked
        # once per cluster (a reload makes new ones), since logging's isEnabledFor is a
        # Python call that cost a routed transaction 2 000 instructions of 43 000, compiled.
        self.logs_routes = logging.getLogger(ROUTES_LOGGER).isEnabledFor(logging.DEBUG)
        self._counted: dict[int, _Counted] = {}  # id(route) -> its count (count_route)
        self._folded: dict[RouteKey, int] = {}  # counts of routes no longer held there
        # Server-side names of named statements, shared by the clients (transaction mode).
        self.statements = StatementRegistry()
        self._turn = itertools.count()
        self._unban_all_logged_at = 0.0
        # role -> shard -> its pools of that role. Not a (shard, role) key: compiled, that
        # tuple is built and hashed anew at each checkout (400 instructions of one).
        self._by_role: dict[str, list[list[ServerPool]]] = {}
        self.rebuild_roles()
        for pool in self.pools:
            pool.read_your_writes = settings.read_your_writes
        # Per shard: when the primary's WAL position was read, and what it was, the last
        # LSN_HISTORY times (pool/lag.py), oldest first.
        self.primary_lsn: list[deque[tuple[float, int]]] = [
            deque(maxlen=LSN_HISTORY) for _ in shards]

    @property
    def watches_lag(self) -> bool:
        """Whether pool/lag.py must measure this pool's replicas."""
        s = self.settings
        return bool(s.ban_replica_lag or s.ban_replica_lag_bytes or s.read_your_writes) and \
            any(p.role == REPLICA for p in self.pools)

    def count_route(self, route: Route) -> None:
        """One more transaction on ``route``, counted by the route's identity (the router
        interns routes): a Stats dict keyed by the route's 5-tuple cost a compiled routed
        transaction 2 300 instructions, the tuple being boxed anew at each use."""
        counted = self._counted.get(id(route))
        if counted is None:
            if len(self._counted) >= MAX_COUNTED_ROUTES:
                self._fold()
            s = self.settings
            key = (s.pool_name, s.user, route.shard, route.role, reason_kind(route.reason))
            counted = self._counted[id(route)] = _Counted(route, key)
        counted.count += 1

    def _fold(self) -> None:
        for counted in self._counted.values():
            self._folded[counted.key] = self._folded.get(counted.key, 0) + counted.count
        self._counted.clear()

    def route_counts(self) -> dict[RouteKey, int]:
        """Transactions per stats key so far, fixed_route's included."""
        counts = dict(self._folded)
        for counted in self._counted.values():
            counts[counted.key] = counts.get(counted.key, 0) + counted.count
        if self.fixed_route_count:
            key = self.fixed_route_key
            counts[key] = counts.get(key, 0) + self.fixed_route_count
        return counts

    def rebuild_roles(self) -> None:
        """Recompute who serves which role (after a promotion changed a pool's role)."""
        self._by_role = {
            "any": [list(shard) for shard in self.shards],
            PRIMARY: [[p for p in shard if p.role == PRIMARY] for shard in self.shards],
            REPLICA: [[p for p in shard if p.role == REPLICA] for shard in self.shards]}

    def _pools_of(self, shard: int, role: str) -> list[ServerPool] | None:
        """The pools of ``role`` on ``shard``; None for a shard or role that does not exist."""
        shards = self._by_role.get(role)
        return shards[shard] if shards is not None and 0 <= shard < len(shards) else None

    @property
    def pools(self) -> list[ServerPool]:
        return [p for shard in self.shards for p in shard]

    @property
    def has_choice(self) -> bool:
        """More than one server to choose from: a route can matter."""
        return len(self.shards) > 1 or len(self.shards[0]) > 1

    def set_learned_write_functions(self, names: frozenset[str]) -> bool:
        """Route calls to these functions (learned from the catalog, catalog.py) to the
        primary, besides the configured write_functions; False when nothing changed."""
        if names == self._learned_functions:
            return False
        self._learned_functions = names
        old = self.router
        parser = old.settings.parser
        settings = replace(old.settings, parser=replace(
            parser, write_functions=self._configured_functions | names))
        self.router = Router(settings, plugins=old.plugins, activity=old.activity)
        self.router.healthy_shards = self.healthy_shards
        return True

    def healthy_shards(self) -> list[int]:
        now = time.monotonic()
        return [i for i, shard in enumerate(self.shards)
                if any(not p.is_banned(now) for p in shard)]

    def candidates(self, shard: int, role: str, fresh_since: float = 0.0) -> list[ServerPool]:
        """The pools to try, in order, for ``role`` on ``shard``. ``fresh_since``: the
        client used the primary then (read_your_writes): only replicas known to have
        replayed what it wrote qualify."""
        pools = self._pools_of(shard, role)
        if pools is None:
            raise ProxyError(
                f"could not get connection from the pool - InvalidShardId({shard})",
                sqlstate="58000")
        # The common case: no bans, no lagging replica.
        usable = [p for p in pools if not p.banned_until and not p.lagging]
        if len(usable) < len(pools):
            now = time.monotonic()
            current = [p for p in pools if not p.lagging]
            usable = [p for p in current if not p.is_banned(now)]
            if not usable and current:
                usable = self._unban_all(current, role, shard, now)
        if fresh_since and role != PRIMARY:
            usable = self._caught_up(usable, shard, fresh_since)
        self._order(usable)
        if role == REPLICA and (self.settings.replica_to_primary_failover or not usable):
            usable += self._by_role[PRIMARY][shard]
        return usable

    def _caught_up(self, pools: list[ServerPool], shard: int,
                   since: float) -> list[ServerPool]:
        """Of ``pools``, the primary and the replicas that replayed the primary's position
        as measured after ``since`` (none before such a measurement)."""
        # The first position read after ``since`` covers everything the client wrote (an
        # older client's falls back on the oldest kept: later, so still enough).
        history = self.primary_lsn[shard]
        index = bisect_left(history, (since, -1))
        if index == len(history):
            return [p for p in pools if p.role == PRIMARY]
        needed = history[index][1]
        return [p for p in pools if p.role == PRIMARY or p.replay_lsn >= needed]

    def _unban_all(self, pools: list[ServerPool], role: str, shard: int,
                   now: float) -> list[ServerPool]:
        """Every one banned: more likely a false positive than a total outage (pgcat)."""
        if now - self._unban_all_logged_at > LOG_EVERY:
            log.warning("every %s server of shard %d is banned: unbanning them all", role,
                        shard)
            self._unban_all_logged_at = now
        for pool in pools:
            pool.unban()
        return list(pools)

    def _order(self, pools: list[ServerPool]) -> None:
        """random: a random first choice, the rest in turn (as good as a shuffle for
        spreading load, at a fraction of its cost); loc: fewest busy connections first;
        round_robin: each pool first in turn."""
        count = len(pools)
        if count < 2:
            return
        turn = self._next_turn(count)
        if turn:
            pools[:] = pools[turn:] + pools[:turn]
        if self.settings.load_balancing_mode == "loc":
            pools.sort(key=lambda p: p.sv_active)  # stable: ties keep the random order

    def _next_turn(self, count: int) -> int:
        """Which of ``count`` pools comes first (before loc's sort)."""
        if self.settings.load_balancing_mode == "round_robin":
            return next(self._turn) % count
        return int(random.random() * count) % count

    def _first_choice(self, pools: list[ServerPool]) -> ServerPool:
        """The pool _order would put first, without building the ordered list."""
        count = len(pools)
        turn = self._next_turn(count)
        best = pools[turn]
        if self.settings.load_balancing_mode == "loc":
            for step in range(1, count):  # in turn from there: ties keep the earlier
                pool = pools[(turn + step) % count]
                if pool.sv_active < best.sv_active:
                    best = pool
        return best

    def checkout(self, client: CheckoutClient, shard: int, role: str,
                 fresh_since: float = 0.0) -> CheckoutAttempt | None:
        """Serve ``client`` now (returns None) or start an attempt that calls back later."""
        taken = self.take_now(shard, role, fresh_since)
        if taken is not None:
            client.server_ready(taken[0], taken[1])
            return None
        return self.wait_for(client, shard, role, fresh_since)

    def take_now(self, shard: int, role: str, fresh_since: float = 0.0
                 ) -> tuple[ServerPool, ServerConnection] | None:
        """An idle server of the first candidate pool and that pool, if one is idle. The
        session calls this itself, then its own server_ready: compiled, a call through the
        CheckoutClient Protocol costs more than the whole pool's part of a checkout."""
        pools = self._pools_of(shard, role)
        if pools and not fresh_since and _all_usable(pools):
            # the common case, no ban and no lag: the first choice alone, no list built
            pool = pools[0] if len(pools) == 1 else self._first_choice(pools)
        else:
            candidates = self.candidates(shard, role, fresh_since)
            if len(candidates) < 2:
                return None  # wait_for tries the one there is
            pool = candidates[0]
        server = pool.take_idle()
        return (pool, server) if server is not None else None

    def wait_for(self, client: CheckoutClient, shard: int, role: str,
                 fresh_since: float = 0.0) -> CheckoutAttempt:
        """Walk the candidates, waiting where none is idle (after take_now found none)."""
        attempt = CheckoutAttempt(self.candidates(shard, role, fresh_since), client)
        attempt.start()
        return attempt

    async def follow_roles(self) -> None:
        """Follow promotions. In each shard with replicas the primary is asked whether it
        is still one (on an idle connection, or a new one after it had errors); when it
        says no, or cannot be reached after errors, the server that says it is not in
        recovery becomes the primary. Quiet shards cost nothing."""
        for index, shard in enumerate(self.shards):
            current = [pool for pool in shard if pool.role == PRIMARY]
            if len(shard) < 2 or len(current) != 1:
                continue
            primary = current[0]
            had_errors = primary.errors != primary.errors_seen
            primary.errors_seen = primary.errors
            role = await primary.observed_role(open_if_needed=had_errors)
            if role == PRIMARY or (role is None and not had_errors):
                continue
            others = [pool for pool in shard if pool is not primary]
            observed = await asyncio.gather(*(pool.observed_role(True) for pool in others))
            promoted = [pool for pool, r in zip(others, observed, strict=True) if r == PRIMARY]
            if promoted:
                self._promote(index, primary, promoted[0])

    def _promote(self, shard: int, old: ServerPool, new: ServerPool) -> None:
        old.role, new.role = REPLICA, PRIMARY
        new.unban()
        self.rebuild_roles()
        log.warning("shard %d of pool %s: %s is the primary now (was %s)", shard,
                    self.settings.pool_name, new.target.name, old.target.name)

    async def learn_server_parameters(self) -> dict[str, tuple[str, str]]:
        """The ParameterStatus set to show clients; connects once if not known yet."""
        if not self.server_parameters:
            last: ProxyError | None = None
            for pool in self.candidates(0, self.settings.default_role) or self.pools:
                try:
                    server = await pool.checkout()
                except ProxyError as exc:
                    last = exc
                    continue
                self.server_parameters = {k: (server.reported[k][0], v)
                                          for k, v in server.defaults.items()}
                pool.release(server)
                break
            else:
                raise _all_down(last)
        return self.server_parameters

    def resume(self) -> None:
        """Admin RESUME: the transactions held since PAUSE start."""
        self.paused = False
        waiting, self.paused_clients = self.paused_clients, []
        for resumed in waiting:
            resumed()

    def retire(self) -> None:
        """A reload replaced this pool: its clients move on at their next transaction."""
        self.retired = True
        for pool in self.pools:
            pool.retire()

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
