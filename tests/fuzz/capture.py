"""Real client sessions for the fuzzer's corpus, recorded through tests.harness.recorder.

Each scenario drives one real client (psql, psycopg 3, asyncpg) through a `TcpRecorder` in
front of the proxy: startup (with and without an SSLRequest), a trust, md5 or SCRAM login,
simple and extended queries, named statements, pipelining, transactions with savepoints,
errors and rollbacks, COPY in and out, a temporary table (a pin), the admin console, and a
cancel (its CancelRequest arrives on a connection of its own, saved as ``NAME-1.bin``). The
SQL gives the same answers however often it is replayed: rows are added, never expected
absent, and the deliberate unique violation is on a temporary table.

`capture_all(host, port, outdir)` writes one ``NAME.bin`` per recorded connection: the bytes
the client sent, nothing else. tests/fuzz/test_capture.py runs it (and refreshes the
committed corpus when asked to).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import psycopg

from tests.harness.recorder import TcpRecorder

from .stream import FUZZ_TABLE

# The pool's users (tests/e2e/conftest.py AUTH_USERS) and the admin console's.
PASSWORDS = {"app": "app", "md5_user": "md5_pass", "scram_user": "scram_pass",
             "admin": "admin"}
SLEEP = "SELECT pg_sleep(0.4)"  # long enough to be cancelled, short enough to replay
CANCEL_AFTER_S = 0.15

TABLE_SQL = f"""
CREATE TABLE IF NOT EXISTS {FUZZ_TABLE} (
    id serial PRIMARY KEY,
    v text NOT NULL,
    n int NOT NULL DEFAULT 0 CHECK (n >= 0)
);
GRANT ALL ON {FUZZ_TABLE} TO PUBLIC;
GRANT ALL ON SEQUENCE {FUZZ_TABLE}_id_seq TO PUBLIC;
"""

PSQL_SCRIPT = f"""
SELECT 1 AS one, 'two' AS two;
BEGIN;
INSERT INTO {FUZZ_TABLE} (v, n) VALUES ('psql', 1), ('psql', 2);
SAVEPOINT s1;
SELECT 1/0;
ROLLBACK TO SAVEPOINT s1;
SELECT count(*) > 0 FROM {FUZZ_TABLE} WHERE v = 'psql';
COMMIT;
SELEC 'syntax error';
SET application_name = 'fuzz_psql';
SHOW application_name;
SELECT v FROM {FUZZ_TABLE} WHERE v = 'psql' ORDER BY id LIMIT 2;
\\copy {FUZZ_TABLE} (v, n) FROM STDIN
copied	3
copied	4
\\.
\\copy (SELECT v, n FROM {FUZZ_TABLE} WHERE v = 'copied' ORDER BY id LIMIT 2) TO STDOUT
SELECT 1; SELECT 2; SELECT 3;
"""

PSQL_MD5_SCRIPT = f"""
BEGIN;
INSERT INTO {FUZZ_TABLE} (v) VALUES ('md5');
UPDATE {FUZZ_TABLE} SET n = -1 WHERE v = 'md5';
ROLLBACK;
CREATE TEMP TABLE uniq (id int PRIMARY KEY);
INSERT INTO uniq VALUES (1);
INSERT INTO uniq VALUES (1);
SELECT count(*) FROM uniq;
"""

PSQL_ADMIN_SCRIPT = "SHOW POOLS;\nSHOW VERSION;\nSHOW CLIENTS;\nSHOW LISTS;\n"


def _psql(host: str, port: int, user: str, dbname: str, script: str,
          sslmode: str = "disable") -> None:
    env = {**os.environ, "PGPASSWORD": PASSWORDS.get(user, ""), "PGSSLMODE": sslmode,
           "PGCONNECT_TIMEOUT": "10"}
    subprocess.run(["psql", "-X", "-q", "-h", host, "-p", str(port), "-U", user, "-d", dbname,
                    "-v", "ON_ERROR_STOP=0"], input=script.encode(), env=env,
                   capture_output=True, timeout=30, check=False)


def psql_simple(host: str, port: int) -> None:
    """psql as trust_user, sslmode=prefer (an SSLRequest first): simple queries, COPY."""
    _psql(host, port, "trust_user", "app", PSQL_SCRIPT, sslmode="prefer")


def psql_md5(host: str, port: int) -> None:
    """psql as md5_user: a rolled-back transaction, a temp table and a unique violation."""
    _psql(host, port, "md5_user", "app", PSQL_MD5_SCRIPT)


def psql_admin(host: str, port: int) -> None:
    """psql on the admin console (md5 login as admin)."""
    _psql(host, port, "admin", "pgbouncer", PSQL_ADMIN_SCRIPT)


def psql_cancel(host: str, port: int) -> None:
    """psql cancels a sleeping query on SIGINT: its CancelRequest is a second connection."""
    env = {**os.environ, "PGSSLMODE": "disable"}
    with subprocess.Popen(["psql", "-X", "-q", "-h", host, "-p", str(port), "-U", "trust_user",
                           "-d", "app", "-c", SLEEP], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as proc:
        time.sleep(CANCEL_AFTER_S + 0.2)  # psql's own start-up is slower than a driver's
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _dsn(host: str, port: int, user: str, **extra: str) -> str:
    parts = {"host": host, "port": str(port), "user": user, "dbname": "app",
             "sslmode": "disable", "connect_timeout": "10", **extra}
    if user in PASSWORDS:
        parts["password"] = PASSWORDS[user]
    return " ".join(f"{k}={v}" for k, v in parts.items())


def psycopg_extended(host: str, port: int) -> None:
    """psycopg 3: parameters (extended protocol), named statements, binary results,
    executemany, savepoints, an error inside a transaction and its rollback."""
    with psycopg.connect(_dsn(host, port, "trust_user"), prepare_threshold=0) as conn:
        conn.execute("SELECT %s::int + %s::int", [1, 2]).fetchone()
        conn.execute("SELECT %s::text, %s::int", ["a", 1], binary=True).fetchone()
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {FUZZ_TABLE} (v, n) VALUES (%s, %s)",
                            [("psycopg", i) for i in range(3)])
        conn.commit()
        with conn.transaction():
            conn.execute(f"UPDATE {FUZZ_TABLE} SET n = n + 1 WHERE v = %s", ["psycopg"])
            try:
                with conn.transaction():
                    conn.execute("SELECT 1 / %s::int", [0])
            except psycopg.errors.DivisionByZero:
                pass
        try:
            conn.execute(f"UPDATE {FUZZ_TABLE} SET n = -5 WHERE v = %s", ["psycopg"])
        except psycopg.errors.CheckViolation:
            conn.rollback()
        conn.execute(f"SELECT id, v FROM {FUZZ_TABLE} WHERE v = %s ORDER BY id LIMIT 3",
                     ["psycopg"]).fetchall()
        conn.commit()


def psycopg_pipeline(host: str, port: int) -> None:
    """psycopg 3 pipeline mode: many statements before one Sync, autocommit."""
    with psycopg.connect(_dsn(host, port, "trust_user"), autocommit=True) as conn:
        with conn.pipeline():
            for i in range(4):
                conn.execute("SELECT %s::int * 2", [i])
            conn.execute(f"INSERT INTO {FUZZ_TABLE} (v) VALUES (%s)", ["pipeline"])
        with conn.pipeline(), conn.transaction():
            conn.execute("SELECT 1")
            conn.execute("SELECT 2")


def psycopg_copy(host: str, port: int) -> None:
    """psycopg 3 COPY FROM STDIN (rows) and COPY TO STDOUT, as md5_user."""
    with psycopg.connect(_dsn(host, port, "md5_user")) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {FUZZ_TABLE} (v, n) FROM STDIN") as copy:
                for i in range(5):
                    copy.write_row(("copy", i))
            with cur.copy(f"COPY (SELECT v, n FROM {FUZZ_TABLE} WHERE v = 'copy' "
                          "ORDER BY id LIMIT 3) TO STDOUT") as copy:
                for _ in copy:
                    pass
        conn.commit()


def psycopg_scram(host: str, port: int) -> None:
    """A SCRAM login (its replay fails authentication: the server nonce differs)."""
    with psycopg.connect(_dsn(host, port, "scram_user"), autocommit=True) as conn:
        conn.execute("SELECT current_user").fetchone()


def psycopg_cancel(host: str, port: int) -> None:
    """psycopg 3 cancels a running query from another thread. (cancel_safe: the plain
    cancel() blocks holding the GIL, and the recorder in this process could not run.)"""
    with psycopg.connect(_dsn(host, port, "trust_user"), autocommit=True) as conn:
        timer = threading.Timer(CANCEL_AFTER_S, conn.cancel_safe)
        timer.start()
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            conn.execute(SLEEP)
        timer.join()
        conn.execute("SELECT 'after cancel'").fetchone()


async def _asyncpg_session(host: str, port: int) -> None:
    conn = await asyncpg.connect(host=host, port=port, user="trust_user", database="app",
                                 ssl="prefer", timeout=10)
    try:
        await conn.fetch("SELECT $1::int AS x, $2::text AS y", 7, "seven")
        await conn.fetchval("SELECT $1::int + 1", 41)  # the statement cache, named
        await conn.fetchval("SELECT $1::int + 1", 42)
        await conn.executemany(f"INSERT INTO {FUZZ_TABLE} (v, n) VALUES ($1, $2)",
                               [("asyncpg", 1), ("asyncpg", 2)])
        async with conn.transaction():
            await conn.execute(f"UPDATE {FUZZ_TABLE} SET n = n + 1 WHERE v = 'asyncpg'")
            try:
                async with conn.transaction():  # a savepoint
                    await conn.execute("SELECT 1/0")
            except asyncpg.DivisionByZeroError:
                pass
        # Its unsynced Parse/Describe/Flush of a SELECT, then COPY FROM STDIN: the bytes
        # are what matter here, whichever server answers (see test_fuzz_found.py).
        with contextlib.suppress(asyncpg.ReadOnlySQLTransactionError):
            await conn.copy_records_to_table(FUZZ_TABLE, records=[("asyncpg-copy", 1)],
                                             columns=["v", "n"])
        await conn.fetch(f"SELECT v FROM {FUZZ_TABLE} WHERE v = 'asyncpg' ORDER BY id LIMIT 2")
        with contextlib.suppress(TimeoutError):  # asyncpg sends a CancelRequest
            await asyncio.wait_for(conn.execute(SLEEP), CANCEL_AFTER_S)
        await conn.fetchval("SELECT 'after cancel'")
    finally:
        await conn.close()


def asyncpg_session(host: str, port: int) -> None:
    """asyncpg: SSLRequest, named prepared statements, executemany, nested transactions,
    binary COPY, and a cancel by timeout."""
    asyncio.run(_asyncpg_session(host, port))


SCENARIOS: dict[str, Callable[[str, int], None]] = {
    "psql_simple": psql_simple,
    "psql_md5": psql_md5,
    "psql_admin": psql_admin,
    "psql_cancel": psql_cancel,
    "psycopg_extended": psycopg_extended,
    "psycopg_pipeline": psycopg_pipeline,
    "psycopg_copy": psycopg_copy,
    "psycopg_scram": psycopg_scram,
    "psycopg_cancel": psycopg_cancel,
    "asyncpg_session": asyncpg_session,
}
# How many connections each scenario opens (its session, then its CancelRequest).
CONNECTIONS = {"psql_cancel": 2, "psycopg_cancel": 2, "asyncpg_session": 2}


def capture_all(host: str, port: int, outdir: Path) -> dict[str, bytes]:
    """Run every scenario through a recorder in front of ``host:port``; write and return
    ``{file name: client bytes}``."""
    outdir.mkdir(parents=True, exist_ok=True)
    captured: dict[str, bytes] = {}
    for name, scenario in SCENARIOS.items():
        with TcpRecorder(host, port) as recorder:
            scenario(recorder.host, recorder.port)
            count = CONNECTIONS.get(name, 1)
            recordings = recorder.wait_for(count)
        for index, recording in enumerate(recordings):
            file_name = f"{name}.bin" if index == 0 else f"{name}-{index}.bin"
            captured[file_name] = bytes(recording.client_bytes)
            (outdir / file_name).write_bytes(recording.client_bytes)
    return captured
