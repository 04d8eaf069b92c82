"""What a reload changes: pools added, removed or changed, and general keys (pgcat.md §1.6).

pgcat rebuilds a pool only when its own `[pools.NAME]` section changed, so a new `ban_time`
or `idle_timeout` in `[general]` never reaches existing pools (a quirk §1.6 allows us to drop).
Here a pool counts as changed when its section changed, when any of its users' effective
settings changed (general values it inherits included), when a general key that pools read
and cannot override changed, or when it uses the global `[plugins]` and those changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgcat_py.config.errors import join_key_path
from pgcat_py.config.model import Config

# Read by every pool's servers, with no per-pool override.
POOL_GENERAL_KEYS = frozenset(
    {
        "ban_time",
        "healthcheck_timeout",
        "healthcheck_delay",
        "server_round_robin",
        "validate_config",
        "server_tls",
        "verify_server_certificate",
        "server_tls_ca_file",
    }
)

# Cannot change without restarting the process: listeners, the worker layout, and the
# client-facing SSL context (built once at startup).
RESTART_KEYS = frozenset(
    {
        "host",
        "port",
        "worker_threads",
        "enable_prometheus_exporter",
        "prometheus_exporter_port",
        "tls_certificate",
        "tls_private_key",
        "tls_mode",
    }
)


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """Names only, never values (a changed password shows as its key path)."""

    pools_added: tuple[str, ...]
    pools_removed: tuple[str, ...]
    pools_changed: tuple[str, ...]
    general_changed: tuple[str, ...]  # every [general] key that changed
    restart_required: tuple[str, ...]  # those of them a reload cannot apply
    plugins_changed: bool  # the global [plugins]
    changed_keys: tuple[str, ...]  # every changed key path, for the reload log line

    @property
    def is_empty(self) -> bool:
        return not self.changed_keys


def diff(old: Config, new: Config) -> ConfigDiff:
    """Compares two configs (the `path` of each is ignored)."""
    general_changed = tuple(
        name
        for name in type(old.general).model_fields
        if getattr(old.general, name) != getattr(new.general, name)
    )
    plugins_changed = old.plugins != new.plugins
    common = sorted(old.pools.keys() & new.pools.keys())
    changed = tuple(
        name for name in common if _pool_changed(old, new, name, general_changed, plugins_changed)
    )
    return ConfigDiff(
        pools_added=tuple(sorted(new.pools.keys() - old.pools.keys())),
        pools_removed=tuple(sorted(old.pools.keys() - new.pools.keys())),
        pools_changed=changed,
        general_changed=general_changed,
        restart_required=tuple(name for name in general_changed if name in RESTART_KEYS),
        plugins_changed=plugins_changed,
        changed_keys=_changed_paths(
            old.model_dump(exclude={"path"}, by_alias=True),
            new.model_dump(exclude={"path"}, by_alias=True),
        ),
    )


def _pool_changed(
    old: Config, new: Config, name: str, general_changed: tuple[str, ...], plugins: bool
) -> bool:
    old_pool, new_pool = old.pools[name], new.pools[name]
    if old_pool != new_pool or POOL_GENERAL_KEYS.intersection(general_changed):
        return True
    if plugins and new_pool.plugins is None:
        return True
    return any(
        old.effective(name, user) != new.effective(name, user) for user in new_pool.users.values()
    )


def _changed_paths(old: Any, new: Any, path: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Key paths whose values differ; a table present on one side only is one path."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(old.keys() | new.keys()):
            if key not in old or key not in new:
                found.append(join_key_path((*path, key)))
            else:
                found += _changed_paths(old[key], new[key], (*path, key))
        return tuple(found)
    return () if old == new else (join_key_path(path),)
