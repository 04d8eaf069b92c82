"""The relay compiled with mypyc (pgcat_py.compiled) under real clients: psycopg and pgbench
through proxies started with --compiled, one unrouted and one with the parser and read/write
splitting on.

Skipped, with the reason, unless build/compiled holds a build of the sources as they are now
(scripts/setup or `python -m pgcat_py.compiled_build` makes one): an edit anywhere in the
packages makes the build stale until it is rebuilt. The rest of the suite runs pure Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgcat_py.compiled import COMPILED_KIND, build_problem, relay_kind_of
from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import ProxyProcess, TomlValue, proxy_config, start_proxy

from .conftest import dsn

pytestmark = pytest.mark.timeout(180)

COMPILED = [sys.executable, "-m", "pgcat_py", "--compiled"]
ROUTED_POOL: dict[str, TomlValue] = {"default_role": "any", "query_parser_enabled": True,
               "query_parser_read_write_splitting": True, "primary_reads_enabled": True}


def _compiled_proxy(topology: Topology, workdir: Path, **pool: TomlValue
                    ) -> Iterator[ProxyProcess]:
    problem = build_problem()
    if problem is not None:
        pytest.skip(f"no current compiled relay: {problem}")
    text = proxy_config(topology, port=free_port(), pool_size=5,
                        extra_pool={"default_role": "primary", **pool})
    with start_proxy(text, workdir, command=COMPILED) as proxy:
        assert relay_kind_of(proxy.pid) == COMPILED_KIND, proxy.log_tail()
        yield proxy
        log = proxy.log_text()
    # a TypeError from compiled code's runtime type checks ends up here, not at the client
    assert "Traceback" not in log and " ERROR " not in log, log[-4000:]


@pytest.fixture(scope="module")
def compiled_proxy(pg_topology: Topology, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ProxyProcess]:
    """Transaction mode, pool_size 5, everything to the primary."""
    yield from _compiled_proxy(pg_topology, tmp_path_factory.mktemp("compiled"))


@pytest.fixture(scope="module")
def compiled_routed_proxy(pg_topology: Topology, tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[ProxyProcess]:
    """Transaction mode, pool_size 5, reads split over the primary and the replica."""
    yield from _compiled_proxy(pg_topology, tmp_path_factory.mktemp("compiled_routed"),
                               **ROUTED_POOL)


@pytest.fixture(scope="module")
def pgbench_tables(pg_topology: Topology) -> None:
    """pgbench's tables (scale 1) in database app, replayed on the replica."""
    p = pg_topology.primary
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", p.host, "-p", str(p.port),
                    "-U", "app", "app"], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "PGPASSWORD": "app"})
    pg_topology.wait_for_replicas(timeout=60)


def pgbench(proxy: ProxyProcess, *args: str) -> str:
    cmd = ["pgbench", "-n", "-h", proxy.host, "-p", str(proxy.port), "-U", "app", *args, "app"]
    done = subprocess.run(cmd, env={**os.environ, "PGPASSWORD": "app"}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr + proxy.log_tail()
    assert "number of failed transactions: 0" in done.stdout, done.stdout
    return done.stdout


def test_psycopg_through_the_compiled_relay(compiled_proxy: ProxyProcess) -> None:
    with psycopg.connect(dsn(compiled_proxy)) as conn:
        assert conn.execute("select %s::int * 2", [21]).fetchone() == (42,)
        conn.execute("create table if not exists compiled_items (id int primary key, v text)")
        conn.execute("truncate compiled_items")
        conn.commit()
        with conn.transaction():
            conn.execute("insert into compiled_items values (1, 'a'), (2, 'b')")
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute("insert into compiled_items values (1, 'dup')")
        assert conn.execute("select count(*) from compiled_items").fetchone() == (2,)
        for i in range(8):  # named statements from the sixth run on (prepare_threshold 5)
            assert conn.execute("select %s::int + 1", [i]).fetchone() == (i + 1,)
        # rows that span many reads: headers split across chunks
        rows = conn.execute("select g, repeat('x', g % 300) from generate_series(1, 20000) g")
        assert sum(1 for _ in rows) == 20000
        with conn.cursor().copy("copy (select g from generate_series(1, 5000) g) to stdout") as cp:
            assert sum(1 for _ in cp.rows()) == 5000
    with psycopg.connect(dsn(compiled_proxy, user="admin", password="admin",
                             dbname="pgbouncer"), autocommit=True) as admin:
        pools = admin.execute("SHOW POOLS").fetchall()  # reads the compiled pools' state
        assert pools


@pytest.mark.parametrize("protocol", ["simple", "extended", "prepared"])
def test_pgbench_select_only_through_the_compiled_relay(
        compiled_proxy: ProxyProcess, pgbench_tables: None, protocol: str) -> None:
    out = pgbench(compiled_proxy, "-S", "-M", protocol, "-c", "8", "-j", "2", "-t", "300")
    assert "processed: 2400/2400" in out


def test_pgbench_tpcb_through_the_compiled_relay(compiled_proxy: ProxyProcess,
                                                 pgbench_tables: None) -> None:
    out = pgbench(compiled_proxy, "-M", "extended", "-c", "4", "-j", "2", "-t", "100")
    assert "processed: 400/400" in out


def test_pgbench_routed_through_the_compiled_relay(compiled_routed_proxy: ProxyProcess,
                                                   pgbench_tables: None) -> None:
    out = pgbench(compiled_routed_proxy, "-S", "-M", "simple", "-c", "8", "-j", "2",
                  "-t", "300")
    assert "processed: 2400/2400" in out
    out = pgbench(compiled_routed_proxy, "-M", "simple", "-c", "4", "-j", "2", "-t", "100")
    assert "processed: 400/400" in out


# framing.cstring_end reads a bytes chunk byte by byte when compiled: the same answers as
# bytes.index (the pure Python the rest of the suite runs), NULs near, far and missing
CSTRING_CHECK = """
from pgcat_py.compiled import use_compiled
assert use_compiled()
from pgcat_py.protocol import framing
assert not framing.__file__.endswith(".py"), framing.__file__
long = b"x" * 200 + b"\\0tail"
for data, start, end in [(b"\\0", 0, 1), (b"name\\0text\\0", 5, 10), (long, 0, len(long)),
                         (long, 100, len(long)), (b"abc", 0, 3), (long, 0, 100)]:
    try:
        expected = data.index(0, start, end)
    except ValueError:
        expected = None
    try:
        found = framing.cstring_end(data, start, end)
    except ValueError:
        found = None
    assert found == expected, (data, start, end, found, expected)
    assert framing.decode_text(data, start, end) == data[start:end].decode()
print("ok")
"""


def test_compiled_cstring_end_agrees_with_bytes_index() -> None:
    problem = build_problem()
    if problem is not None:
        pytest.skip(f"no current compiled relay: {problem}")
    done = subprocess.run([sys.executable, "-c", CSTRING_CHECK], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
