"""Cluster: every server of one (pool, user), by shard and role, and the choice among them.

A checkout names a shard and a role ("primary", "replica" or "any"); the cluster picks the
candidates (random order, or least outstanding connections first for ``loc``) and tries them
in turn, so one dead replica costs a retry, not an error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..backend.server import ServerConnection
from ..protocol.errors import PoolTimeout, ProxyError
from .server_pool import ServerPool

ROLES = ("primary", "replica", "any")


@dataclass(frozen=True)
class ClusterSettings:
    pool_name: str
    user: str
    pool_mode: str = "transaction"
    load_balancing_mode: str = "random"
    default_role: str = "any"
    default_shard: str = "shard_0"


class Cluster:
    """The pools of one (pool, user); see the module docstring."""

    def __init__(self, settings: ClusterSettings, shards: list[list[ServerPool]]) -> None:
        self.settings = settings
        self.shards = shards
        # ParameterStatus set shown to clients at login: (Name, value) by lower-case name,
        # learned from the first server connection (pgcat's "original server parameters").
        self.server_parameters: dict[str, tuple[str, str]] = {}

    @property
    def pools(self) -> list[ServerPool]:
        return [p for shard in self.shards for p in shard]

    def candidates(self, shard: int, role: str) -> list[ServerPool]:
        pools = [p for p in self.shards[shard]
                 if role == "any" or p.target.role == role]
        random.shuffle(pools)
        if self.settings.load_balancing_mode == "loc":
            pools.sort(key=lambda p: p.sv_active)
        return pools

    async def checkout(self, shard: int = 0, role: str | None = None
                       ) -> tuple[ServerPool, ServerConnection]:
        """A server of ``role`` on ``shard``, trying each candidate once."""
        role = role or self.settings.default_role
        if not 0 <= shard < len(self.shards):
            raise ProxyError(
                f"could not get connection from the pool - InvalidShardId({shard})",
                sqlstate="58000")
        last: ProxyError | None = None
        for pool in self.candidates(shard, role):
            try:
                return pool, await pool.checkout()
            except ProxyError as exc:
                last = exc
        if last is None or isinstance(last, PoolTimeout):
            raise PoolTimeout("could not get connection from the pool - AllServersDown")
        raise ProxyError(f"could not get connection from the pool - AllServersDown: "
                         f"{last.message}", sqlstate=last.sqlstate)

    async def learn_server_parameters(self) -> dict[str, tuple[str, str]]:
        """The ParameterStatus set to show clients; connects once if not known yet."""
        if not self.server_parameters:
            pool, server = await self.checkout(0, "any")
            self.server_parameters = {k: (server.reported[k][0], v)
                                      for k, v in server.defaults.items()}
            pool.checkin(server)
        return self.server_parameters

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
