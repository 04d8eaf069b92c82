"""Reload: SIGHUP, admin RELOAD and `autoreload` apply a changed pgcat.toml while serving.

The new file is read and validated first; a broken one is refused (ConfigError names the
file and key path) and the running config goes on. Then the two configs are diffed
(config/diff.py): pools whose settings did not change keep their connections, bans and
counters; changed and added ones are built new; replaced and removed ones retire (idle
connections close now, busy ones after their transaction). Clients move to the new pool at
their next transaction; one inside a transaction finishes it on its old server. [general]
keys apply too (pgcat ignores them), except those that need a restart: those are logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError, load_config
from .config.diff import ConfigDiff, diff
from .config.general import General
from .config.loader import validate_raw
from .config.pool import Pool, User
from .topology import build_pools, credentials_for, socket_options

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)


def reload_config(app: App) -> ConfigDiff:
    """Apply the config file again; raises ConfigError and changes nothing when it is bad."""
    return apply_config(app, load_config(app.config.path).config)


def set_key(app: App, key_path: str, value: str) -> ConfigDiff:
    """Admin SET: the running config with one key changed (a [general] key by its name,
    any other by its dotted path, e.g. ``pools.app.users.0.pool_size``), validated like
    the file and applied like a reload. Until the next reload from the file."""
    raw = app.config.model_dump(by_alias=True, exclude_none=True)
    parts = key_path.split(".")
    if len(parts) == 1:
        parts = ["general", *parts]
    table: Any = raw
    for part in parts[:-1]:
        if not isinstance(table, dict) or part not in table:
            raise ConfigError(app.config.path, key_path, "no such key")
        table = table[part]
    if not isinstance(table, dict) or isinstance(table.get(parts[-1]), dict):
        raise ConfigError(app.config.path, key_path, "not a single value")
    if parts[-1] not in table and parts[-1] not in _KNOWN_KEYS:
        raise ConfigError(app.config.path, key_path, "no such key")
    table[parts[-1]] = _toml_value(value)
    return apply_config(app, validate_raw(raw, app.config.path).config)


# Keys a SET may add (unset ones are absent from the running config's dump).
_KNOWN_KEYS = frozenset(
    field.alias or name
    for model in (General, Pool, User) for name, field in model.model_fields.items())


def _toml_value(text: str) -> object:
    """A SET argument as TOML would read it: integer, boolean, or string (quotes optional)."""
    text = text.strip()
    if text[:1] in "'\"" and text[-1:] == text[:1] and len(text) >= 2:
        return text[1:-1]
    if text.lower() in ("true", "false", "on", "off"):
        return text.lower() in ("true", "on")
    try:
        return int(text)
    except ValueError:
        return text


def apply_config(app: App, new: Config) -> ConfigDiff:
    """Make ``new`` the running config (see the module docstring)."""
    path = new.path
    change = diff(app.config, new)
    if change.is_empty:
        log.info("config of %s: nothing changed", path)
        return change
    rebuilt = set(change.pools_added) | set(change.pools_changed)
    app.auth_queries.reconfigure(new)  # auth_users.py
    fresh = build_pools(new, app.worker, app.auth_queries.secret_for)
    pools = {key: app.pools[key] if key[0] not in rebuilt and key in app.pools else entry
             for key, entry in fresh.items()}
    pools.update(app.auth_queries.kept_entries(app.pools, pools, rebuilt))
    for key, entry in app.pools.items():
        if pools.get(key) is not entry:
            cluster = entry.cluster
            cluster.retire()
            for route_key, count in cluster.route_counts().items():  # counted there: kept
                app.stats.count_route(route_key, count)
    app.pools = pools
    app.config = new
    app.watch_bans()
    g = new.general
    app.admin = credentials_for(g.admin_username, g.admin_password, g.admin_auth_type)
    app.socket_options = socket_options(g)
    app.client_login_timeout = g.client_login_timeout_s  # for logins that start from now
    log.info("config reloaded from %s: %s changed", path, ", ".join(change.changed_keys))
    if change.restart_required:
        log.warning("reload of %s: %s only change at a restart", path,
                    ", ".join(change.restart_required))
    return change
