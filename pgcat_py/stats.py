"""Counters shared by the admin console and the Prometheus exporter.

One Stats per process. Routing decisions are counted per (pool, user, shard, role, reason
kind): one dictionary increment per transaction, on the decision path, never per message.
A snapshot is a plain dict of counts, so snapshots of several worker processes can be merged
by adding them up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

RouteKey = tuple[str, str, int, str, str]  # pool, user, shard, role, reason kind


def reason_kind(reason: str) -> str:
    """A route reason without its details: "unparseable: <sqlglot's message>" counts as
    "unparseable", so the counters stay few whatever the SQL."""
    return reason.split(";", 1)[0].split(":", 1)[0].strip()


class Stats:
    """The process's counters."""

    def __init__(self) -> None:
        # A plain dict, not a Counter: the compiled relay reaches a dict's own lookups.
        self.routes: dict[RouteKey, int] = {}

    def count_route(self, key: RouteKey, count: int = 1) -> None:
        routes = self.routes
        routes[key] = routes.get(key, 0) + count

    def snapshot(self) -> dict[RouteKey, int]:
        return dict(self.routes)

    @staticmethod
    def merge(snapshots: Iterable[dict[RouteKey, int]]) -> dict[RouteKey, int]:
        total: Counter[RouteKey] = Counter()
        for snapshot in snapshots:
            total.update(snapshot)
        return dict(total)
