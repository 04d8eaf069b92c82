"""Functions that make a statement a write, pin the session, or change session state.

sqlglot maps many functions onto its own node types (and renames some), so function calls
are found on the shape text instead: a name followed by `(`, schema-qualified or quoted or
not. A false match (a CTE column list named like a write function) only turns a read into a
write, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Functions that write, need the primary, or depend on state only the primary session has.
# A trailing * makes a prefix. The PostgreSQL docs, chapter 9 (Functions and Operators).
BUILTIN_WRITE_FUNCTIONS = (
    "nextval",
    "setval",
    "currval",  # sequence state of this session: set by nextval, which ran on the primary
    "lastval",
    "set_config",
    "txid_current",
    "pg_current_xact_id",
    "pg_notify",
    "pg_advisory_*",
    "pg_try_advisory_*",
    "lo_*",
    "loread",
    "lowrite",
    "pg_logical_emit_message",
    "pg_create_restore_point",
    "pg_switch_wal",
    "dblink_exec",
    # replication slots and origins live on the primary; reading changes consumes them
    "pg_logical_slot_get_*",
    "pg_replication_slot_advance",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_origin_*",
)

# Session-level advisory locks outlive the transaction: the client must keep its server.
SESSION_PIN_FUNCTIONS = (
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
)

# set_config(name, value, false) is a SET: the server session changes.
SESSION_STATE_FUNCTIONS = ("set_config", *SESSION_PIN_FUNCTIONS)


def call_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """A regex matching a call of any of `names` (a trailing * makes a prefix)."""
    alternatives = sorted(
        re.escape(name[:-1]) + r"\w*" if name.endswith("*") else re.escape(name) for name in names
    )
    return re.compile(r'(?<![\w$])"?(' + "|".join(alternatives) + r')"?\s*\(', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FunctionRules:
    """The compiled function patterns of one pool."""

    write: re.Pattern[str]
    pins: re.Pattern[str]
    session: re.Pattern[str]

    @classmethod
    def build(cls, extra_write_functions: Iterable[str] = ()) -> FunctionRules:
        return cls(
            write=call_pattern((*BUILTIN_WRITE_FUNCTIONS, *extra_write_functions)),
            pins=call_pattern(SESSION_PIN_FUNCTIONS),
            session=call_pattern(SESSION_STATE_FUNCTIONS),
        )

    def write_call(self, statement: str) -> str | None:
        """The name of the first write function the statement calls, if any."""
        match = self.write.search(statement)
        return match.group(1).lower() if match else None
