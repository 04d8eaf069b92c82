"""COPY FROM STDIN into a sharded table (issue 12, item 2): each row reaches its key's shard
(PostgreSQL's own PARTITION BY HASH on each shard refuses a row on the wrong one), text and
CSV, through psycopg's copy and psql's \\copy; errors write nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology
from tests.harness.proxy import ProxyProcess

from .sharded_writes import (  # noqa: F401 (the module fixtures: topology, proxy, ...)
    allowing_proxy,
    assert_placed,
    empty_shards,
    on_shards,
    refusing_proxy,
    through,
    topology,
)

pytestmark = [pytest.mark.pg, pytest.mark.timeout(300)]


IDS = list(range(1, 200))


def test_psycopg_copy_text_rows_reach_their_shards(proxy: ProxyProcess, empty: Topology
                                                   ) -> None:
    with through(proxy) as conn:
        cursor = conn.cursor()
        with cursor.copy("COPY data (id, v) FROM STDIN") as copy:
            for i in IDS:
                copy.write_row((i, f"tab\there\nnewline \\ {i}"))
        assert cursor.statusmessage == f"COPY {len(IDS)}" and cursor.rowcount == len(IDS)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert_placed(empty, IDS)
    values = {row[0]: row[1] for shard in on_shards(empty) for row in shard}
    assert values[7] == "tab\there\nnewline \\ 7"


def test_csv_with_header_quotes_and_odd_chunks(proxy: ProxyProcess, empty: Topology) -> None:
    lines = ["v,id"] + [f'"a,""{i}""\nb",{i}' if i % 2 else f"plain {i},\"{i}\"" for i in IDS]
    data = ("\r\n".join(lines) + "\r\n").encode()
    with through(proxy) as conn:
        cursor = conn.cursor()
        with cursor.copy("COPY data (v, id) FROM STDIN WITH (FORMAT csv, HEADER match)") as copy:
            for start in range(0, len(data), 7):
                copy.write(data[start:start + 7])
        assert cursor.rowcount == len(IDS)
    assert_placed(empty, IDS)
    values = {row[0]: row[1] for shard in on_shards(empty) for row in shard}
    assert values[3] == 'a,"3"\nb' and values[4] == "plain 4"


def test_copy_without_a_column_list_reads_the_table_order(proxy: ProxyProcess,
                                                          empty: Topology) -> None:
    with through(proxy) as conn:
        cursor = conn.cursor()
        with cursor.copy("COPY data FROM STDIN") as copy:
            copy.write("".join(f"{i}\tv{i}\t{i % 3}\n" for i in IDS))
        assert cursor.rowcount == len(IDS)
        with (pytest.raises(psycopg.errors.UndefinedTable),
              conn.cursor().copy("COPY nope FROM STDIN") as copy):
            copy.write("1\n")
    assert_placed(empty, IDS)


def test_psql_copy_csv_file(proxy: ProxyProcess, empty: Topology, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,v\n" + "".join(f"{i},\"v {i}\"\n" for i in IDS))
    env = {**os.environ, "PGPASSWORD": "app"}
    command = f"\\copy data (id, v) from '{path}' with (format csv, header)"
    out = subprocess.run(["psql", "-X", "-h", proxy.host, "-p", str(proxy.port), "-U", "app",
                          "-d", "sharded", "-c", command], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"COPY {len(IDS)}"
    assert_placed(empty, IDS)


@pytest.mark.parametrize(("sql", "data", "error"), [
    ("COPY data (id, v) FROM STDIN", "1\ta\nx\tb\n", psycopg.errors.InvalidTextRepresentation),
    ("COPY data (id, v) FROM STDIN", "1\ta\n2\n", psycopg.errors.BadCopyFileFormat),
    ("COPY data (v) FROM STDIN", "a\n", psycopg.errors.FeatureNotSupported),
    ("COPY data (id, v) FROM STDIN (FORMAT binary)", "", psycopg.errors.FeatureNotSupported),
    ("COPY data (id, v) FROM STDIN", "1\ta\n1\tb\n2\tc\n3\td\n", psycopg.errors.UniqueViolation),
])
def test_a_failed_copy_writes_nothing(proxy: ProxyProcess, empty: Topology, sql: str,
                                      data: str, error: type[Exception]) -> None:
    with through(proxy) as conn:
        with pytest.raises(error), conn.cursor().copy(sql) as copy:
            copy.write(data)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert on_shards(empty) == [[], [], []]


def test_the_client_cancels_its_copy(proxy: ProxyProcess, empty: Topology) -> None:
    with through(proxy) as conn:
        with pytest.raises(ZeroDivisionError), conn.cursor().copy(
                "COPY data (id, v) FROM STDIN") as copy:
            copy.write("1\ta\n2\tb\n")
            raise ZeroDivisionError  # psycopg sends CopyFail
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert on_shards(empty) == [[], [], []]


def test_refuse_keeps_copy_on_one_shard(refusing: ProxyProcess, empty: Topology) -> None:
    with (through(refusing) as conn, pytest.raises(psycopg.errors.CheckViolation),
          conn.cursor().copy("COPY data (id, v) FROM STDIN") as copy):
        copy.write("".join(f"{i}\tv\n" for i in IDS))  # all to default_shard


def test_carriage_return_line_ends_are_refused_and_nothing_written(proxy: ProxyProcess,
                                                                   empty: Topology) -> None:
    with through(proxy) as conn:
        with (pytest.raises(psycopg.errors.FeatureNotSupported, match="carriage-return"),
              conn.cursor().copy("COPY data (id, v) FROM STDIN") as copy):
            copy.write("1\ta\r2\tb\r" * 1000)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert on_shards(empty) == [[], [], []]


def test_psql_copy_from_stdin_with_end_marker(proxy: ProxyProcess, empty: Topology) -> None:
    env = {**os.environ, "PGPASSWORD": "app"}
    data = "".join(f"{i}\tv{i}\n" for i in IDS) + "\\.\n"
    out = subprocess.run(["psql", "-X", "-h", proxy.host, "-p", str(proxy.port), "-U", "app",
                          "-d", "sharded", "-c", "\\copy data (id, v) from stdin"],
                         input=data, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"COPY {len(IDS)}"
    assert_placed(empty, IDS)
