"""The soak's client errors, each classed and judged expected or unexpected.

Expected:
- a connection error (SQLSTATE class 08, 57P01 to 57P03, or a driver's "the connection is
  gone" with no SQLSTATE) while a replica is down or just back (the trouble window the
  chaos thread opens at each kill and closes some seconds after the restart): the client
  whose server died gets 08006, as DESIGN.md invariant 3 says;
- a replica's "conflict with recovery" cancel (40001, 40P01): PostgreSQL's own behaviour
  under replayed writes, not the proxy's.
Anything else is unexpected, and the soak fails on it. The first few texts of each class are
kept for the report (unexpected ones under a key starting with "!").
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
import psycopg

KEEP_EXAMPLES = 3  # texts kept per class
SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin / crash shutdown, starting up
RECOVERY_CONFLICT_STATES = frozenset({"40001", "40P01"})
# Driver errors that mean the connection broke, with no SQLSTATE to go by.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,  # TimeoutError too
)


@dataclass(frozen=True)
class Judged:
    kind: str  # the work that failed (read, write, ..., storm)
    error_class: str  # connection, recovery_conflict, or other:<SQLSTATE or type>
    expected: bool
    text: str


def sqlstate_of(exc: BaseException) -> str | None:
    """psycopg's and asyncpg's errors both carry `sqlstate` (None when not from a server)."""
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def judge(kind: str, exc: BaseException, in_trouble: bool) -> Judged:
    state = sqlstate_of(exc)
    text = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    if state in RECOVERY_CONFLICT_STATES and "conflict with recovery" in str(exc):
        return Judged(kind, "recovery_conflict", True, text)
    is_connection = (state is not None and (state.startswith("08") or state in SHUTDOWN_STATES)
                     ) or (state is None and isinstance(exc, CONNECTION_ERRORS))
    if is_connection:
        return Judged(kind, "connection", in_trouble, text)
    return Judged(kind, f"other:{state or type(exc).__name__}", False, text)


class ErrorLog:
    """Thread-safe counts of judged errors; `in_trouble()` says whether a replica is down."""

    def __init__(self, in_trouble: Callable[[float], bool]) -> None:
        self._in_trouble = in_trouble
        self._lock = threading.Lock()
        self.expected: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def record(self, kind: str, exc: BaseException) -> None:
        judged = judge(kind, exc, self._in_trouble(time.monotonic()))
        key = f"{judged.kind}/{judged.error_class}"
        with self._lock:
            (self.expected if judged.expected else self.unexpected)[key] += 1
            kept = self.examples.setdefault(key if judged.expected else f"!{key}", [])
            if len(kept) < KEEP_EXAMPLES:
                kept.append(judged.text)

    def totals(self) -> tuple[Counter[str], Counter[str]]:
        """Copies of (expected, unexpected) counts by "kind/class"."""
        with self._lock:
            return Counter(self.expected), Counter(self.unexpected)
