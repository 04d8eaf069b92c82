"""Fixtures of the protocol fuzzer: the corpus, the fuzzed table, a proxy config for them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology
from tests.e2e.conftest import AUTH_USERS
from tests.harness.proxy import proxy_config

from .capture import TABLE_SQL

CORPUS_DIR = Path(__file__).parent / "corpus"


def load_corpus(directory: Path = CORPUS_DIR) -> dict[str, bytes]:
    """``{file name: client bytes}`` of every recorded session, in name order."""
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.bin"))}


def fuzz_config(topology: Topology, port: int, pool_size: int = 3) -> str:
    """Transaction mode, the auth-test users (trust, md5, SCRAM), read/write splitting on
    (so the idle path routes every statement), a short checkout wait (a leaked server shows
    as an error, not as a stall). No promotion checks: they borrow pooled servers in the
    background, and SHOW POOLS must show only what the fuzzed clients left."""
    return proxy_config(topology, port=port, pool_size=pool_size, users=AUTH_USERS,
                        extra_general={"connect_timeout": 3000, "follow_promotions": False},
                        extra_pool={"query_parser_enabled": True,
                                    "query_parser_read_write_splitting": True})


@pytest.fixture(scope="module")
def fuzz_table(pg_topology: Topology) -> None:
    """The table the corpus' SQL writes to, readable and writable by every user."""
    with psycopg.connect(pg_topology.primary.superuser_dsn("app"), autocommit=True) as conn:
        conn.execute(TABLE_SQL)
    pg_topology.wait_for_replicas()
