"""Routing: which shard and which role a transaction goes to, with the reason why.

A Route is a value that carries its reason, for logs, metrics and the admin console. This
first version routes by the pool's configuration alone (default_role, default_shard); the
parser- and session-driven routing builds on the same value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    shard: int
    role: str  # "primary", "replica" or "any"
    reason: str


def default_shard_index(default_shard: str, shard_count: int) -> int:
    """pgcat's default_shard: "shard_N", "random" or "random_healthy"."""
    if default_shard.startswith("shard_"):
        return int(default_shard[len("shard_"):])
    return random.randrange(shard_count)


def default_route(default_role: str, default_shard: str, shard_count: int) -> Route:
    if shard_count == 1:
        return Route(0, default_role, "default_role")
    return Route(default_shard_index(default_shard, shard_count), default_role,
                 "default_role, default_shard")
