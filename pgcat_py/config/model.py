"""The whole of pgcat.toml as one frozen `Config`, with lookups the proxy needs.

Passwords never leave through here in clear: model reprs hide them and `redacted()` (used for
SHOW CONFIG and logs) replaces them by "***" (DESIGN.md invariant 5).
"""

from __future__ import annotations

from typing import Any

from pgcat_py.config.effective import EffectivePoolSettings, effective_settings
from pgcat_py.config.general import General
from pgcat_py.config.plugins import Plugins
from pgcat_py.config.pool import Pool, User
from pgcat_py.config.types import PASSWORD_KEYS, Section

REDACTED = "***"


def redact(data: Any) -> Any:
    """A copy of a dumped config with every password value replaced by "***"."""
    if isinstance(data, dict):
        return {
            key: REDACTED if key in PASSWORD_KEYS and value is not None else redact(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [redact(item) for item in data]
    return data


class Config(Section):
    """pgcat's `struct Config`: `[general]`, optional global `[plugins]`, `[pools.NAME]`."""

    path: str = "pgcat.toml"  # overwritten with the file actually loaded, as pgcat does
    general: General
    plugins: Plugins | None = None
    pools: dict[str, Pool]

    def effective(self, pool_name: str, user: User | str) -> EffectivePoolSettings:
        """Settings for the (pool, user) connection pool; KeyError if either is unknown."""
        pool = self.pools[pool_name]
        if isinstance(user, str):
            found = pool.find_user(user)
            if found is None:
                raise KeyError(f"pool {pool_name!r} has no user {user!r}")
            user = found
        return effective_settings(self.general, pool_name, pool, user)

    def plugins_for(self, pool_name: str) -> Plugins | None:
        """A pool's own plugins replace the global ones entirely (pgcat.md §9.1)."""
        own = self.pools[pool_name].plugins
        return own if own is not None else self.plugins

    def redacted(self) -> dict[str, Any]:
        """The config as plain data, TOML key names, passwords replaced by "***"."""
        dumped: dict[str, Any] = redact(self.model_dump(mode="json", by_alias=True))
        return dumped
