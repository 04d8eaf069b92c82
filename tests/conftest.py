"""Fixtures shared by the whole suite: one real PostgreSQL topology per session, proxies.

`pg_topology` is a main primary with one streaming replica and two shard primaries, made
from the local binaries (pgcat_py.localpg) under a fresh /tmp base and removed at the end,
also after a failure or Ctrl-C. Tests that use it (directly or through another fixture) get
the `pg` marker, so `-m "not pg"` runs everything that needs no server.
Set PGCAT_PY_KEEP_PG=1 to keep the data dirs and logs for a post-mortem.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pgcat_py.localpg import (
    PgBinariesNotFound,
    Topology,
    create_topology,
    find_pg_bin,
    has_topology,
    load_topology,
)
from tests.harness.proxy import ProxyProcess, start_proxy

PG_FIXTURES = frozenset({"pg_topology", "pg_base"})
KEEP_ENV = "PGCAT_PY_KEEP_PG"
DOCKER_SOCKET = Path("/var/run/docker.sock")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server; fixturenames includes indirect fixtures."""
    for item in items:
        if PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pg)


def _docker_available() -> bool:
    """A Docker engine to run PostgreSQL in (testcontainers); none on the dev machine."""
    return DOCKER_SOCKET.is_socket() or bool(os.environ.get("DOCKER_HOST"))


def _require_pg_binaries() -> None:
    """Skip only when there is no PostgreSQL to run at all; anything else fails loudly."""
    try:
        find_pg_bin()
    except PgBinariesNotFound as exc:
        if _docker_available():
            reason = f"{exc}; a Docker engine exists, but the suite only runs local binaries"
        else:
            reason = str(exc)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_topology() -> Iterator[Topology]:
    """1 primary + 1 streaming replica + 2 shard primaries on free 127.0.0.1 ports."""
    with own_topology(replicas=1, shards=2) as topology:
        yield topology


@contextmanager
def own_topology(replicas: int, shards: int) -> Iterator[Topology]:
    """A topology of its own under a fresh base, stopped and removed afterwards (a module's
    fixture, when the shared one does not fit)."""
    _require_pg_binaries()
    base = _new_base()
    topology: Topology | None = None
    try:
        topology = create_topology(base, replicas=replicas, shards=shards)
        yield topology
    finally:
        try:
            if topology is not None:
                topology.stop()
        finally:
            _remove_base(base)


def _new_base() -> Path:
    """Under /tmp, mode 0755: not tmp_path, which is 0700 root while servers run as postgres."""
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-"))
    base.chmod(0o755)
    return base


def _remove_base(base: Path) -> None:
    if not os.environ.get(KEEP_ENV):
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_base() -> Iterator[Path]:
    """A fresh base dir for a test's own topology (e.g. one a failover test may break).

    Whatever topology the test creates there is stopped and removed afterwards.
    """
    _require_pg_binaries()
    base = _new_base()
    try:
        yield base
    finally:
        try:
            if has_topology(base):
                load_topology(base).stop()
        finally:
            _remove_base(base)


@pytest.fixture
def proxy_runner(tmp_path: Path) -> Iterator[Callable[[str], ProxyProcess]]:
    """start_proxy(config_text) in this test's tmp dir; every proxy is stopped afterwards."""
    started: list[ProxyProcess] = []

    def run(config_text: str) -> ProxyProcess:
        proxy = start_proxy(config_text, tmp_path / f"proxy{len(started)}")
        started.append(proxy)
        return proxy

    yield run
    for proxy in started:
        proxy.stop()
