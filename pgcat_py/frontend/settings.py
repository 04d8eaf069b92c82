"""A client's SET and RESET statements, remembered so its settings follow it between servers.

In transaction mode a client's next transaction may run on another server connection, and
the one it used is reset before anyone else gets it. Whatever the client SET outside a
transaction block (any setting, not only the reported ones PostgreSQL sends as
ParameterStatus) is kept with the client and applied with set_config() on the server it
gets next, like its startup parameters (backend/params.py). Read from the statement text,
and recorded only once the server confirmed it (CommandComplete SET at ReadyForQuery 'I').
"""

from __future__ import annotations

import re
from typing import Final

from ..backend.params import is_valid_name

ParamsKey = tuple[tuple[str, str], ...]
# Clients' settings keys (ClientSession.params_key), one tuple per distinct set of settings
# (an idle client then holds no copy of its own: a tuple of pairs, a hundred bytes or more).
_PARAMS_KEYS: dict[ParamsKey, ParamsKey] = {}
PARAMS_KEYS_SHARED: Final = 256

_NAME = r"[A-Za-z_][A-Za-z0-9_$.]*"
# SET [SESSION] name {TO | =} value; not SET LOCAL (the transaction's only), SET
# TRANSACTION, SET ROLE / SESSION AUTHORIZATION (reset at check-in, not replayed), TIME ZONE
# (reported by the server as ParameterStatus, and followed that way).
_SET = re.compile(
    rf"\s*SET\s+(?:SESSION\s+)?(?!LOCAL\b|TRANSACTION\b|ROLE\b|SESSION\b|TIME\s+ZONE\b"
    rf"|CONSTRAINTS\b)({_NAME})\s*(?:=|\s+TO\s)\s*(.*?)[\s;]*", re.IGNORECASE | re.DOTALL)
_RESET = re.compile(rf"\s*RESET\s+(ALL|{_NAME})[\s;]*", re.IGNORECASE)
_ITEM = re.compile(r"'((?:[^']|'')*)'|[^,\s][^,]*")


def setting_change(sql: str) -> tuple[str, str | None] | None:
    """(name, value) for a SET, (name, None) for a RESET or SET ... TO DEFAULT ("all" for
    RESET ALL); None when ``sql`` is neither (or more than one statement)."""
    match = _SET.fullmatch(sql)
    if match is not None:
        name, value = match.group(1).lower(), match.group(2)
        if not is_valid_name(name) or ";" in value:
            return None
        if value.upper() == "DEFAULT":
            return name, None
        return name, _set_config_value(value)
    match = _RESET.fullmatch(sql)
    if match is not None:
        return match.group(1).lower(), None
    return None


def _set_config_value(value: str) -> str:
    """The text set_config() needs for a SET value list: quotes of string literals off
    ('1234' -> 1234, 'a', 'b' -> a, b), identifiers and numbers as written."""
    items = [m.group(1).replace("''", "'") if m.group(1) is not None else m.group(0).strip()
             for m in _ITEM.finditer(value)]
    return ", ".join(items)


def shared_params_key(key: ParamsKey) -> ParamsKey:
    """``key`` (a client's settings, sorted: what a server's settings are checked against),
    or an equal one that other clients hold already: one tuple for them all."""
    shared = _PARAMS_KEYS.get(key)
    if shared is None:
        if len(_PARAMS_KEYS) >= PARAMS_KEYS_SHARED:
            _PARAMS_KEYS.clear()  # clients choose the values: bounded; they keep theirs
        shared = _PARAMS_KEYS[key] = key
    return shared


def apply_change(params: dict[str, str], startup: dict[str, str],
                 change: tuple[str, str | None]) -> None:
    """Update a client's settings; a RESET goes back to what the client started with."""
    name, value = change
    if name == "all" and value is None:
        params.clear()
        params.update(startup)
    elif value is None:
        if name in startup:
            params[name] = startup[name]
        else:
            params.pop(name, None)
    else:
        params[name] = value
