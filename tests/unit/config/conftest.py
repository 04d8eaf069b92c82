"""Fixtures for the config tests: a small valid pgcat.toml with slots to vary it, and the
folder of pgcat's own shipped configs (read in place, never copied into the project)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# tests/unit/config/conftest.py -> parents[3] is the repository root.
SHIPPED_CONFIGS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "pgcat-configs"

ONE_PRIMARY = 'database = "app"\nservers = [["127.0.0.1", 5432, "primary"]]'


def build_toml(
    general: str = "",
    pool: str = "",
    user: str = "",
    shard: str = ONE_PRIMARY,
    extra: str = "",
) -> str:
    """One pool `app`, one user `alice` (users.0), one shard; each slot adds lines to a table."""
    return f"""
[general]
admin_username = "admin"
admin_password = "admin_pw"
{general}

[pools.app]
{pool}

[pools.app.users.0]
username = "alice"
password = "alice_pw"
pool_size = 5
{user}

[pools.app.shards.0]
{shard}

{extra}
"""


@pytest.fixture
def toml() -> Callable[..., str]:
    return build_toml


@pytest.fixture
def shipped_configs() -> Path:
    if not SHIPPED_CONFIGS.is_dir():
        pytest.skip(f"pgcat's shipped configs are not at {SHIPPED_CONFIGS} (shared data absent)")
    return SHIPPED_CONFIGS
