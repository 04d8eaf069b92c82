"""Counters of one server address for SHOW STATS, SHOW SERVERS and the exporter.

A live ServerConnection counts for itself on the relay path (plain attribute additions, one
clock read per answer); when it closes, its counts are folded into its pool's Totals, so an
address's figures are the Totals plus its live connections. Times are seconds here and
microseconds in the admin console (PgBouncer's unit).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..backend.server import ServerConnection


@dataclass(slots=True)
class Totals:
    xact_count: int = 0
    query_count: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    xact_time: float = 0.0
    query_time: float = 0.0
    wait_time: float = 0.0  # clients waiting for a connection of this address
    errors: int = 0
    assignments: int = 0  # connections handed to clients after a wait or at once

    def fold(self, server: ServerConnection) -> None:
        """Add a closing connection's counts (and zero them: folding twice adds nothing)."""
        self._add(server)
        server.reset_counters()

    def with_live(self, servers: Iterable[ServerConnection]) -> Totals:
        """These totals plus the live connections' counts, as a new Totals."""
        total = replace(self)
        for server in servers:
            total._add(server)
        return total

    def _add(self, server: ServerConnection) -> None:
        self.xact_count += server.xact_count
        self.query_count += server.query_count
        self.bytes_received += server.bytes_received
        self.bytes_sent += server.bytes_sent
        self.xact_time += server.xact_time
        self.query_time += server.query_time
        self.errors += server.errors

    def minus(self, earlier: Totals) -> Totals:
        return Totals(*(getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)))


AVERAGE_PERIOD = 15.0  # seconds between averages, as in pgcat and PgBouncer


@dataclass(slots=True)
class Averages:
    """Per second over the last period; times in microseconds per transaction, query or
    assignment (PgBouncer's avg_* columns)."""

    xact_count: int = 0
    query_count: int = 0
    recv: int = 0
    sent: int = 0
    errors: int = 0
    xact_time: int = 0
    query_time: int = 0
    wait_time: int = 0

    @classmethod
    def between(cls, now: Totals, before: Totals, seconds: float) -> Averages:
        d = now.minus(before)
        return cls(round(d.xact_count / seconds), round(d.query_count / seconds),
                   round(d.bytes_received / seconds), round(d.bytes_sent / seconds),
                   round(d.errors / seconds), _per(d.xact_time, d.xact_count),
                   _per(d.query_time, d.query_count), _per(d.wait_time, d.assignments))


def _per(seconds: float, count: int) -> int:
    return round(seconds * 1e6 / count) if count > 0 else 0
