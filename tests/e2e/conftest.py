"""Fixtures for end-to-end tests: the real proxy process in front of the real topology.

One proxy per module and mode (starting one costs ~0.3 s); tests that need special settings
start their own with ``proxy_runner``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, proxy_config, start_proxy

AUTH_USERS = (
    {"username": "app", "password": "app"},
    {"username": "md5_user", "password": "md5_pass", "auth_type": "md5"},
    {"username": "scram_user", "password": "scram_pass", "auth_type": "scram-sha-256"},
    {"username": "trust_user", "auth_type": "trust"},
)


def _module_proxy(topology: Topology, tmp: Path, **kwargs: object) -> Iterator[ProxyProcess]:
    text = proxy_config(topology, port=free_port(), **kwargs)  # type: ignore[arg-type]
    proxy = start_proxy(text, tmp)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def tx_proxy(pg_topology: Topology, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ProxyProcess]:
    """Transaction mode, pool_size 5, pool `app` on primary + replica, default_role primary."""
    yield from _module_proxy(pg_topology, tmp_path_factory.mktemp("tx_proxy"),
                             pool_mode="transaction", pool_size=5,
                             extra_pool={"default_role": "primary"})


@pytest.fixture(scope="module")
def session_proxy(pg_topology: Topology, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ProxyProcess]:
    """Session mode, pool_size 5, default_role primary."""
    yield from _module_proxy(pg_topology, tmp_path_factory.mktemp("session_proxy"),
                             pool_mode="session", pool_size=5,
                             extra_pool={"default_role": "primary"})


def dsn(proxy: ProxyProcess, user: str = "app", password: str | None = "app",
        dbname: str = "app", **params: str) -> str:
    """A libpq key=value DSN to the proxy."""
    parts = [f"host={proxy.host}", f"port={proxy.port}", f"user={user}", f"dbname={dbname}",
             "sslmode=disable", "connect_timeout=10"]
    if password is not None:
        parts.append(f"password={password}")
    parts += [f"{k}={v}" for k, v in params.items()]
    return " ".join(parts)


ProxyRunner = Callable[[str], ProxyProcess]
