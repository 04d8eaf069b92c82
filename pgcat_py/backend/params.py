"""Session parameters: which a client carries between servers and how to bring a server in line.

A client's parameters are its startup parameters (``options`` expanded) plus any reported
parameter it later changes with SET (pgcat's "tracked" parameters, so ``SET application_name``
survives a transaction). A server remembers which of its values differ from its own login
defaults; at checkout the difference becomes one simple query of SETs and RESETs.
"""

from __future__ import annotations

import re

# Startup keys that are not session settings.
NOT_SETTINGS = frozenset({"user", "database", "options", "replication"})

# Reported parameters (GUC_REPORT) a client may change and expects to keep, per pgcat's
# tracked set plus IntervalStyle. Others (server_version, is_superuser, in_hot_standby,
# session_authorization, ...) describe the server, not the client.
# Reported parameters no session can SET or RESET: a change (in_hot_standby turns off when
# the server is promoted) is the server's own, never something to undo at a sync.
READ_ONLY_REPORTED = frozenset({"in_hot_standby", "server_version", "server_encoding",
                                "integer_datetimes", "is_superuser"})

TRACKED = frozenset({"application_name", "client_encoding", "datestyle", "timezone",
                     "intervalstyle", "standard_conforming_strings"})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.]*$")


def is_valid_name(name: str) -> bool:
    """A parameter name we can put in SET unquoted (GUC names, custom ``ext.name``)."""
    return bool(_NAME.match(name))


def quote_literal(value: str) -> str:
    """A standard_conforming_strings literal; NUL cannot occur (the wire format forbids it)."""
    return "'" + value.replace("'", "''") + "'"


def sync_statements(wanted: dict[str, str], applied: dict[str, str],
                    defaults: dict[str, str]) -> str:
    """SQL that gives a server the client's ``wanted`` values, or "" when it has them.

    ``applied`` holds what differs from the server's login ``defaults``; all keys lower-case.
    Values go through set_config(), which reads them exactly as a startup ``-c name=value``
    does (``SET search_path TO 'a,b'`` would make one schema named "a,b").
    """
    sets = [f"set_config({quote_literal(name)}, {quote_literal(value)}, false)"
            for name, value in wanted.items() if applied.get(name, defaults.get(name)) != value]
    parts = [f"SELECT {', '.join(sets)}"] if sets else []
    parts += [f"RESET {name}" for name in applied if name not in wanted]
    return ";".join(parts)
