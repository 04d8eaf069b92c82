"""pgcat.toml for pgcat-py: models of every pgcat key (with pgcat's code defaults) plus our
documented extensions, loading with key-path errors, warnings, secrets from the environment,
redaction and reload diffs.

    loaded = load_config("pgcat.toml")        # ConfigError -> exit EX_CONFIG (78)
    for warning in loaded.warnings: log.warning("%s", warning)
    settings = loaded.config.effective("app", "alice")
"""

from pgcat_py.config.diff import POOL_GENERAL_KEYS, RESTART_KEYS, ConfigDiff, diff
from pgcat_py.config.effective import EffectivePoolSettings
from pgcat_py.config.errors import EX_CONFIG, ConfigError, ConfigWarning, Problem
from pgcat_py.config.general import General
from pgcat_py.config.lint import NOT_YET_SUPPORTED
from pgcat_py.config.loader import LoadedConfig, load_config, parse_config
from pgcat_py.config.model import REDACTED, Config, redact
from pgcat_py.config.plugins import (
    Intercept,
    InterceptQuery,
    Plugins,
    Prewarmer,
    QueryLogger,
    TableAccess,
)
from pgcat_py.config.pool import Mirror, Pool, ServerAddress, Shard, User
from pgcat_py.config.rules import check_tls_files

__all__ = [
    "EX_CONFIG",
    "NOT_YET_SUPPORTED",
    "POOL_GENERAL_KEYS",
    "REDACTED",
    "RESTART_KEYS",
    "Config",
    "ConfigDiff",
    "ConfigError",
    "ConfigWarning",
    "EffectivePoolSettings",
    "General",
    "Intercept",
    "InterceptQuery",
    "LoadedConfig",
    "Mirror",
    "Plugins",
    "Pool",
    "Prewarmer",
    "Problem",
    "QueryLogger",
    "ServerAddress",
    "Shard",
    "TableAccess",
    "User",
    "check_tls_files",
    "diff",
    "load_config",
    "parse_config",
    "redact",
]
