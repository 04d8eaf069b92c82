"""Our Python plugin hook: `[pools.NAME] plugin_module = "package.module"`.

The module's ``route(statement)`` function is called with a `Statement` (the SQL text, its
classification, the pool, the user and the route the proxy chose) for every statement the
proxy routes, and returns None (carry on), `RouteTo` (another role and/or shard) or
`Refuse` (an ErrorResponse with this text and SQLSTATE; the statement is not sent and the
session goes on). The module is imported when the config is loaded (at startup, and at a
reload that builds the pool): an import that fails, or a module without a callable
``route``, refuses the config at `pools.NAME.plugin_module`. At run time an exception, or a
value that is none of the three, is logged and counts as None: a hook never breaks a session.

The module is imported by name, from sys.path and from the config file's directory (so a
module next to pgcat.toml needs no PYTHONPATH). Python caches imports: a reload that keeps
the same module name keeps the code already loaded; restart to load new code.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pgcat_py.plugins")

ROLES = frozenset({"primary", "replica", "any"})
HOOK_FUNCTION = "route"
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True, slots=True)
class Statement:
    """What a hook sees of one statement (a whole Query text, or one Parse's text)."""

    sql: str
    pool: str  # the database name the client connected to (pgcat's pool name)
    user: str
    is_write: bool  # False only for what the parser is sure is a read
    kinds: tuple[str, ...]  # one per statement: "SELECT", "INSERT", "DELETE", "DDL", ...
    tables: tuple[str, ...]  # lower-cased unless quoted, schema kept when written
    shard_keys: tuple[object, ...]  # automatic_sharding_key values written as literals
    shard: int  # the route the proxy chose: shard, role, and why
    role: str
    reason: str
    in_transaction: bool  # inside an explicit transaction (its BEGIN came first)

    @property
    def is_read(self) -> bool:
        return not self.is_write


@dataclass(frozen=True, slots=True)
class RouteTo:
    """Send the statement's transaction elsewhere; None keeps the proxy's choice."""

    role: str | None = None  # "primary", "replica" or "any"
    shard: int | None = None
    reason: str = "plugin_module"


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the statement with an ErrorResponse instead of running it."""

    message: str
    sqlstate: str = INSUFFICIENT_PRIVILEGE


Decision = RouteTo | Refuse | None
Hook = Callable[[Statement], Decision]


class HookLoadError(Exception):
    """The module cannot be used; the message says why."""


def load_hook(module_name: str, config_dir: Path | None = None) -> Hook:
    """The ``route`` function of ``module_name``; HookLoadError if it cannot be had."""
    if config_dir is not None and str(config_dir) not in sys.path:
        sys.path.append(str(config_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, SyntaxError, or whatever its top level raised
        raise HookLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    function = getattr(module, HOOK_FUNCTION, None)
    if not callable(function):
        raise HookLoadError(
            f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no function "
            f"{HOOK_FUNCTION}(statement)")
    hook: Hook = function
    return hook


def call_hook(hook: Hook, statement: Statement) -> Decision:
    """The hook's decision; None when it raised or returned something else."""
    try:
        decision = hook(statement)
    except Exception:
        log.exception("plugin_module of pool %s raised on %r; carrying on without it",
                      statement.pool, statement.sql[:200])
        return None
    if decision is None or isinstance(decision, Refuse):
        return decision
    if isinstance(decision, RouteTo):
        if decision.role is not None and decision.role not in ROLES:
            log.error("plugin_module of pool %s: role %r is not one of %s; ignored",
                      statement.pool, decision.role, ", ".join(sorted(ROLES)))
            return None
        return decision
    log.error("plugin_module of pool %s returned %r (expected RouteTo, Refuse or None); "
              "ignored", statement.pool, decision)
    return None
