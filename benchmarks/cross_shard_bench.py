"""Cross-shard SELECTs through pgcat-py against the same query on one server.

The same rows go into one table on a primary and, split by pg_bigint_hash, into three
shard primaries (`pgcat_py.localpg`, under a fresh /tmp directory). pgcat-py serves the
shards as one pool with `cross_shard_queries = true`. Each query runs `--runs` times on one
connection through the proxy and directly on the single server, interleaved; the report
gives the median and best milliseconds of each and the ratio (proxy over single server).
Run it on a quiet machine: `.venv/bin/python benchmarks/cross_shard_bench.py`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from pgcat_py.localpg import Topology, create_topology, free_port
from sharding import ShardingFunction, ShardMap

SHARDS = 3
QUERIES = {
    "ORDER BY n DESC, id LIMIT 20": "SELECT id, n FROM data ORDER BY n DESC, id LIMIT 20",
    "ORDER BY id LIMIT 20 OFFSET 1000": "SELECT id, n FROM data ORDER BY id LIMIT 20 OFFSET 1000",
    "GROUP BY grp (50 groups), count/sum/avg": (
        "SELECT grp, count(*), sum(n), avg(n) FROM data GROUP BY grp ORDER BY grp"),
    "count(DISTINCT n)": "SELECT count(DISTINCT n) FROM data",
}


def rows(count: int) -> Iterator[tuple[int, int, int]]:
    for i in range(1, count + 1):
        yield i, i % 50, (i * 7919) % 1000


def load(topology: Topology, count: int) -> None:
    table = "CREATE TABLE data (id bigint PRIMARY KEY, grp int, n int)"
    shard_map = ShardMap(SHARDS, ShardingFunction.parse("pg_bigint_hash"))
    parts: list[list[tuple[int, int, int]]] = [[] for _ in range(SHARDS)]
    for row in rows(count):
        parts[shard_map.shard_for(row[0])].append(row)
    targets = [(topology.primary, list(rows(count)))]
    targets += [(node, parts[i]) for i, node in enumerate(topology.shards)]
    for node, mine in targets:
        with psycopg.connect(node.dsn(), autocommit=True) as conn:
            conn.execute(table)
            with conn.cursor().copy("COPY data FROM STDIN") as copy:
                for row in mine:
                    copy.write_row(row)
            conn.execute("ANALYZE data")


def config(topology: Topology, port: int) -> str:
    shards = "".join(
        f'[pools.app.shards.{i}]\nservers = [["127.0.0.1", {node.port}, "primary"]]\n'
        f'database = "app"\n' for i, node in enumerate(topology.shards))
    return f"""[general]
host = "127.0.0.1"
port = {port}
admin_username = "admin"
admin_password = "admin"
log_level = "warning"
[pools.app]
pool_mode = "transaction"
query_parser_enabled = true
automatic_sharding_key = "data.id"
sharding_function = "pg_bigint_hash"
cross_shard_queries = true
[pools.app.users.0]
username = "app"
password = "app"
pool_size = 4
{shards}"""


def timed(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> float:
    started = time.perf_counter()
    conn.execute(sql).fetchall()
    return (time.perf_counter() - started) * 1000


def measure(proxy_dsn: str, direct_dsn: str, runs: int) -> None:
    print(f"{'query':42} {'single server ms':>18} {'through pgcat-py ms':>20} {'ratio':>6}")
    with psycopg.connect(proxy_dsn, autocommit=True) as proxy, \
            psycopg.connect(direct_dsn, autocommit=True) as direct:
        for name, sql in QUERIES.items():
            assert proxy.execute(sql).fetchall() == direct.execute(sql).fetchall(), name
            ours, theirs = [], []
            for _ in range(runs):
                theirs.append(timed(direct, sql))
                ours.append(timed(proxy, sql))
            a, b = statistics.median(theirs), statistics.median(ours)
            print(f"{name:42} {a:9.2f} ({min(theirs):6.2f}) {b:10.2f} ({min(ours):6.2f}) "
                  f"{b / a:6.2f}", flush=True)


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--rows", type=int, default=200_000)
    cli.add_argument("--runs", type=int, default=50)
    args = cli.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-cross-shard-"))
    base.chmod(0o777)  # the servers run as postgres
    topology = create_topology(base, replicas=0, shards=SHARDS)
    try:
        load(topology, args.rows)
        port = free_port()
        (base / "pgcat.toml").write_text(config(topology, port))
        proxy = subprocess.Popen([sys.executable, "-m", "pgcat_py", str(base / "pgcat.toml")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            proxy_dsn = f"host=127.0.0.1 port={port} user=app password=app dbname=app"
            for _ in range(100):  # until it listens
                try:
                    psycopg.connect(proxy_dsn).close()
                    break
                except psycopg.OperationalError:
                    time.sleep(0.1)
            print(f"{args.rows} rows; {SHARDS} shards against one server; {args.runs} runs")
            measure(proxy_dsn, topology.primary.dsn(), args.runs)
        finally:
            proxy.terminate()
            proxy.wait()
    finally:
        topology.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
