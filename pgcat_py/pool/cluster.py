"""Cluster: every server of one (pool, user), by shard and role, and the choice among them.

A checkout names a shard and a role ("primary", "replica" or "any"); the cluster orders the
candidates (random, or least outstanding connections first for ``loc``) and tries them in
turn, so one dead replica costs a retry, not an error. The common case, an idle connection
on the first candidate, is served synchronously; otherwise a CheckoutAttempt waits on the
pools by callback.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from ..backend.server import ServerConnection
from ..protocol.errors import PoolTimeout, ProxyError
from ..router import Route
from .server_pool import ALL_SERVERS_DOWN, ServerPool

ROLES = ("primary", "replica", "any")


@dataclass(frozen=True)
class ClusterSettings:
    pool_name: str
    user: str
    pool_mode: str = "transaction"
    load_balancing_mode: str = "random"
    default_role: str = "any"
    default_shard: str = "shard_0"


class CheckoutClient(Protocol):
    """Whoever asked: gets exactly one of the two callbacks."""

    def server_ready(self, pool: ServerPool, server: ServerConnection) -> None: ...
    def checkout_failed(self, exc: ProxyError) -> None: ...


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
    if last is None or isinstance(last, PoolTimeout):
        return PoolTimeout(ALL_SERVERS_DOWN)
    return ProxyError(f"{ALL_SERVERS_DOWN}: {last.message}", sqlstate=last.sqlstate)


class Cluster:
    """The pools of one (pool, user); see the module docstring."""

    def __init__(self, settings: ClusterSettings, shards: list[list[ServerPool]]) -> None:
        self.settings = settings
        self.shards = shards
        # ParameterStatus set shown to clients at login: (Name, value) by lower-case name,
        # learned from the first server connection (pgcat's "original server parameters").
        self.server_parameters: dict[str, tuple[str, str]] = {}
        # Set by whoever builds the cluster when the route never varies (one shard, or a
        # fixed default_shard): saves building a Route per transaction.
        self.fixed_route: Route | None = None
        self._by_role = {(i, role): [p for p in shard if role == "any" or p.target.role == role]
                         for i, shard in enumerate(shards) for role in ROLES}

    @property
    def pools(self) -> list[ServerPool]:
        return [p for shard in self.shards for p in shard]

    def candidates(self, shard: int, role: str) -> list[ServerPool]:
        pools = self._by_role.get((shard, role))
        if pools is None:
            raise ProxyError(
                f"could not get connection from the pool - InvalidShardId({shard})",
                sqlstate="58000")
        if len(pools) == 1:
            return list(pools)
        pools = list(pools)
        random.shuffle(pools)
        if self.settings.load_balancing_mode == "loc":
            pools.sort(key=lambda p: p.sv_active)
        return pools

    def checkout(self, client: CheckoutClient, shard: int, role: str) -> CheckoutAttempt | None:
        """Serve ``client`` now (returns None) or start an attempt that calls back later."""
        pools = self._by_role.get((shard, role))
        if pools is not None and len(pools) == 1:  # the common case: no shuffle, no copy
            server = pools[0].take_idle()
            if server is not None:
                client.server_ready(pools[0], server)
                return None
        candidates = self.candidates(shard, role)
        if len(candidates) > 1:
            server = candidates[0].take_idle()
            if server is not None:
                client.server_ready(candidates[0], server)
                return None
        attempt = CheckoutAttempt(candidates, client)
        attempt.start()
        return attempt

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

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
