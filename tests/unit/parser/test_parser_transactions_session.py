"""Transaction control, session-affecting statements and COPY, recognised by keyword."""

from __future__ import annotations

import pytest

from parser import (
    CopyDirection,
    IsolationLevel,
    StatementKind,
    TransactionModes,
    classify,
)


@pytest.mark.parametrize(
    ("sql", "modes"),
    [
        ("BEGIN", None),
        ("BEGIN WORK", None),
        ("BEGIN TRANSACTION", None),
        ("START TRANSACTION", None),
        ("begin read only", TransactionModes(read_only=True)),
        ("BEGIN READ WRITE", TransactionModes(read_only=False)),
        (
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            TransactionModes(isolation_level=IsolationLevel.REPEATABLE_READ),
        ),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            TransactionModes(True, IsolationLevel.SERIALIZABLE, True),
        ),
        (
            "BEGIN ISOLATION LEVEL READ UNCOMMITTED NOT DEFERRABLE",
            TransactionModes(None, IsolationLevel.READ_UNCOMMITTED, False),
        ),
        (
            "START TRANSACTION READ WRITE, ISOLATION LEVEL READ COMMITTED",
            TransactionModes(False, IsolationLevel.READ_COMMITTED),
        ),
    ],
)
def test_begin_and_start_transaction_modes(sql: str, modes: TransactionModes | None) -> None:
    classification = classify(sql)
    assert classification.kinds == (StatementKind.BEGIN,)
    assert classification.is_transaction_start
    assert classification.transaction_modes == modes
    assert classification.is_write  # BEGIN is not on the allow-list; begin_read_only says more


def test_begin_read_only_is_reported_for_the_router() -> None:
    assert classify("BEGIN READ ONLY").begin_read_only
    assert classify("BEGIN; SET TRANSACTION READ ONLY").begin_read_only
    assert not classify("BEGIN").begin_read_only
    assert not classify("BEGIN READ ONLY; SET TRANSACTION READ WRITE").begin_read_only
    assert not classify("SET TRANSACTION READ ONLY").begin_read_only  # no BEGIN here


def test_set_transaction_read_only() -> None:
    classification = classify("SET TRANSACTION READ ONLY")
    assert classification.kinds == (StatementKind.SET_TRANSACTION,)
    assert classification.transaction_modes == TransactionModes(read_only=True)
    assert not classification.sets_session_state  # it lasts for the transaction only


@pytest.mark.parametrize(
    ("sql", "kind", "ends"),
    [
        ("COMMIT", StatementKind.COMMIT, True),
        ("END", StatementKind.COMMIT, True),
        ("COMMIT AND CHAIN", StatementKind.COMMIT, True),
        ("ROLLBACK", StatementKind.ROLLBACK, True),
        ("ABORT", StatementKind.ROLLBACK, True),
        ("ROLLBACK WORK", StatementKind.ROLLBACK, True),
        ("SAVEPOINT s1", StatementKind.SAVEPOINT, False),
        ("RELEASE SAVEPOINT s1", StatementKind.RELEASE_SAVEPOINT, False),
        ("RELEASE s1", StatementKind.RELEASE_SAVEPOINT, False),
        ("ROLLBACK TO SAVEPOINT s1", StatementKind.ROLLBACK_TO_SAVEPOINT, False),
        ("ROLLBACK TO s1", StatementKind.ROLLBACK_TO_SAVEPOINT, False),
        ("PREPARE TRANSACTION 'gid'", StatementKind.PREPARE_TRANSACTION, True),
        ("COMMIT PREPARED 'gid'", StatementKind.COMMIT_PREPARED, False),
        ("ROLLBACK PREPARED 'gid'", StatementKind.ROLLBACK_PREPARED, False),
    ],
)
def test_transaction_control(sql: str, kind: StatementKind, ends: bool) -> None:
    classification = classify(sql)
    assert classification.kinds == (kind,)
    assert classification.is_transaction_end is ends
    assert not classification.is_transaction_start
    assert classification.is_write


def test_whole_transaction_in_one_query() -> None:
    classification = classify("BEGIN; UPDATE t SET a = 1; COMMIT;")
    assert classification.is_transaction_start and classification.is_transaction_end


@pytest.mark.parametrize(
    ("sql", "kind", "session", "pins"),
    [
        ("SET search_path TO a, b", StatementKind.SET, True, False),
        ("SET SESSION statement_timeout = 5000", StatementKind.SET, True, False),
        ("SET ROLE app", StatementKind.SET, True, False),
        ("SET TIME ZONE 'UTC'", StatementKind.SET, True, False),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            StatementKind.SET,
            True,
            False,
        ),
        ("SET LOCAL lock_timeout TO '1s'", StatementKind.SET_LOCAL, False, False),
        ("SET CONSTRAINTS ALL DEFERRED", StatementKind.SET_LOCAL, False, False),
        ("RESET ALL", StatementKind.RESET, True, False),
        ("RESET search_path", StatementKind.RESET, True, False),
        ("DISCARD ALL", StatementKind.DISCARD, True, False),
        ("DISCARD TEMP", StatementKind.DISCARD, True, False),
        ("LISTEN chan", StatementKind.LISTEN, True, True),
        ("UNLISTEN *", StatementKind.UNLISTEN, True, False),
        ("NOTIFY chan, 'payload'", StatementKind.NOTIFY, False, False),
        ("PREPARE q (int) AS SELECT $1", StatementKind.PREPARE, True, False),
        ("EXECUTE q(1)", StatementKind.EXECUTE, False, False),
        ("DEALLOCATE PREPARE q", StatementKind.DEALLOCATE, True, False),
        ("DEALLOCATE ALL", StatementKind.DEALLOCATE, True, False),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", StatementKind.DECLARE, True, True),
        (
            "DECLARE c BINARY INSENSITIVE SCROLL CURSOR WITHOUT HOLD FOR SELECT 1",
            StatementKind.DECLARE,
            False,
            False,
        ),
        ("DECLARE c CURSOR FOR SELECT * FROM t WITH HOLD", StatementKind.DECLARE, False, False),
        ("FETCH 10 FROM c", StatementKind.FETCH, False, False),
        ("CLOSE c", StatementKind.CLOSE, False, False),
        ("CREATE TEMP TABLE x (a int)", StatementKind.CREATE_TEMP, True, True),
        ("CREATE TEMPORARY TABLE x AS SELECT 1", StatementKind.CREATE_TEMP, True, True),
        ("CREATE GLOBAL TEMPORARY TABLE x (a int)", StatementKind.CREATE_TEMP, True, True),
        ("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", StatementKind.CREATE_TEMP, True, True),
        ("CREATE TABLE x (a int)", StatementKind.DDL, False, False),
        ("SELECT * INTO TEMP x FROM t", StatementKind.SELECT, True, True),
        ("SELECT pg_advisory_lock(1)", StatementKind.SELECT, True, True),
        ("SELECT pg_try_advisory_lock_shared(1)", StatementKind.SELECT, True, True),
        ("SELECT pg_advisory_xact_lock(1)", StatementKind.SELECT, False, False),
        ("SELECT set_config('search_path', 'a', false)", StatementKind.SELECT, True, False),
        ("UPDATE t SET a = 1 WHERE pg_try_advisory_lock(id)", StatementKind.UPDATE, True, True),
    ],
)
def test_session_affecting_statements(
    sql: str, kind: StatementKind, session: bool, pins: bool
) -> None:
    classification = classify(sql)
    assert classification.kinds == (kind,)
    assert classification.sets_session_state is session
    assert classification.pins_session is pins
    assert classification.is_write


@pytest.mark.parametrize(
    ("sql", "direction", "tables"),
    [
        ("COPY t FROM STDIN", CopyDirection.FROM, ("t",)),
        ("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", CopyDirection.FROM, ("t",)),
        ("copy public.t to stdout", CopyDirection.TO, ("public.t",)),
        ('COPY "My"."Tab" TO STDOUT', CopyDirection.TO, ("My.Tab",)),
        ("COPY BINARY t TO STDOUT", CopyDirection.TO, ("t",)),
        ("COPY (SELECT * FROM t WHERE a = 'from') TO STDOUT", CopyDirection.TO, ("t",)),
        ("COPY t FROM PROGRAM 'cat x'", CopyDirection.FROM, ("t",)),
    ],
)
def test_copy_direction(sql: str, direction: CopyDirection, tables: tuple[str, ...]) -> None:
    classification = classify(sql)
    assert classification.kinds == (StatementKind.COPY,)
    assert classification.copy_direction is direction
    assert classification.tables == tables
    assert classification.is_write


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("EXPLAIN SELECT 1", StatementKind.EXPLAIN),
        ("CALL p()", StatementKind.CALL),
        ("DO $$ BEGIN NULL; END $$", StatementKind.DO),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", StatementKind.LOCK),
        ("VACUUM ANALYZE t", StatementKind.DDL),
        ("TRUNCATE t", StatementKind.DDL),
        ("ALTER TABLE t ADD COLUMN b int", StatementKind.DDL),
        ("START", StatementKind.UNKNOWN),
        ("FROBNICATE", StatementKind.UNKNOWN),
    ],
)
def test_other_statement_kinds(sql: str, kind: StatementKind) -> None:
    classification = classify(sql)
    assert classification.kinds == (kind,)
    assert classification.is_write


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("EXPLAIN SELECT * FROM t JOIN u ON true", ("t", "u")),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", ("t",)),
        ("EXPLAIN ANALYZE VERBOSE DELETE FROM t", ("t",)),
        ("DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT * FROM t", ("t",)),
        ("EXPLAIN EXECUTE q(1)", ()),
    ],
)
def test_explain_and_declare_name_the_tables_of_their_query(
    sql: str, tables: tuple[str, ...]
) -> None:
    classification = classify(sql)
    assert classification.tables == tables
    assert classification.is_write
