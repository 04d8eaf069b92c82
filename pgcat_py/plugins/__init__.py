"""Query plugins: pgcat's (query_logger, intercept, table_access) and ours (plugin_module).

`build_plugins` turns a pool's config into a PoolPlugins (pool.py), or None when the pool
has nothing to run: no query parser, or no plugin switched on. A plugin_module hook
imports `Statement`, `RouteTo` and `Refuse` from here (see hook.py and
examples/plugins/). prewarmer, which runs on new server connections, is not here.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config, ConfigError
from ..config.errors import join_key_path
from .hook import HookLoadError, Refuse, RouteTo, Statement, load_hook
from .intercept import Interceptor
from .pool import PluginRefusal, PoolPlugins

__all__ = ["PluginRefusal", "PoolPlugins", "Refuse", "RouteTo", "Statement", "build_plugins",
           "check_plugin_modules"]


def build_plugins(config: Config, pool_name: str) -> PoolPlugins | None:
    """The plugins of ``pool_name``; ConfigError naming `pools.NAME.plugin_module` if its
    module cannot be imported or has no ``route`` function."""
    pool = config.pools[pool_name]
    if not pool.query_parser_enabled:
        return None  # pgcat runs plugins on parsed statements only
    hook = None
    if pool.plugin_module is not None:
        try:
            hook = load_hook(pool.plugin_module, Path(config.path).resolve().parent)
        except HookLoadError as exc:
            raise ConfigError(config.path, join_key_path(("pools", pool_name, "plugin_module")),
                              str(exc)) from None
    plugins = config.plugins_for(pool_name)
    query_logger = bool(plugins and plugins.query_logger and plugins.query_logger.enabled)
    intercept = plugins.intercept if plugins is not None else None
    interceptor = Interceptor(intercept) if intercept is not None and intercept.enabled else None
    access = plugins.table_access if plugins is not None else None
    denied = frozenset(access.tables) if access is not None and access.enabled else frozenset()
    if not (query_logger or interceptor or denied or hook):
        return None
    return PoolPlugins(pool_name, query_logger=query_logger, interceptor=interceptor,
                       denied_tables=denied, hook=hook)


def check_plugin_modules(config: Config) -> None:
    """Import every pool's plugin_module as startup would (for --check); ConfigError."""
    for pool_name in config.pools:
        build_plugins(config, pool_name)
