"""Read or write: the allow-list of reads, writes hidden in reads, and texts never to guess.

Covers every case of pgcat's router tests (query_router.rs: test_infer_replica,
test_infer_primary, test_select_for_update, test_split_cte_queries, test_query_parser,
test_infer_parse_prepared, test_parse_multiple_queries) and the traps of pgcat.md §2.3.
"""

from __future__ import annotations

import pytest

from parser import Parser, ParserSettings, StatementKind, classify


def is_write(sql: str, **settings: object) -> bool:
    parser = Parser(ParserSettings.build(**settings)) if settings else Parser()  # type: ignore[arg-type]
    return parser.classify(sql).is_write


# pgcat's test_infer_replica / test_query_parser / test_infer_parse_prepared: reads.
PGCAT_READS = [
    "SELECT * FROM items WHERE id = 5",
    "SELECT id, name, value FROM items INNER JOIN prices ON item.id = prices.item_id",
    "WITH t AS (SELECT * FROM items) SELECT * FROM t",
    "SELECT req_tab_0.*  FROM validation req_tab_0  WHERE  "
    "array['http://www.w3.org/ns/shacl#ValidationResult'] && req_tab_0.type::text[] AND "
    "( (  (req_tab_0.focusnode = 'DataSource_Credilogic_DataSourceAddress_144959227') )  )",
    "WITH EmployeeSalaries AS (SELECT Department, Salary FROM Employees) SELECT Department, "
    "AVG(Salary) AS AverageSalary FROM EmployeeSalaries GROUP BY Department;",
    "WITH t AS (SELECT * FROM items WHERE name = $1) SELECT * FROM t WHERE id = $2",
    "SELECT 1; SELECT 2;",
]

# pgcat's test_infer_primary / test_select_for_update / test_split_cte_queries /
# test_parse_multiple_queries: writes.
PGCAT_WRITES = [
    "UPDATE items SET name = 'pumpkin' WHERE id = 5",
    "INSERT INTO items (id, name) VALUES (5, 'pumpkin')",
    "DELETE FROM items WHERE id = 5",
    "BEGIN",
    "SELECT * FROM items WHERE id = 5 FOR UPDATE",
    "WITH t AS (SELECT id FROM users WHERE name ILIKE '%ja%') UPDATE user_languages "
    "SET settings = '{}' FROM t WHERE t.id = user_id;",
    "BEGIN; SELECT 1; COMMIT;",
    "SELECT 123; INSERT INTO t VALUES (5); SELECT 1;",
    "INSERT INTO test_table VALUES (1)",
]

READS = [
    "SELECT 1",
    "select 1 /* a comment */",
    "VALUES (1), (2)",
    "TABLE items",
    "SELECT 1 UNION SELECT 2",
    "SELECT 1 INTERSECT ALL SELECT 2",
    "(SELECT 1) EXCEPT (SELECT 2)",
    "(SELECT * FROM items)",
    "SHOW search_path",
    "SHOW ALL",
    "SHOW TIME ZONE",
    "SHOW TRANSACTION ISOLATION LEVEL",
    'SHOW "custom.setting"',
    "SHOW search_path; SELECT 1",
    "SELECT * FROM t WHERE a @> '{1}' AND b->>'x' = 'y'",
    "SELECT date '2020-01-01', interval '1 day', now()::date",
    "SELECT DISTINCT ON (a) a FROM t ORDER BY a",
    "SELECT * FROM ONLY t, LATERAL (SELECT 1) s",
    "SELECT 1 FROM lo_data",  # a table named like a write function: no call
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "SELECT E'it\\'s', $$dollar$$, $tag$x$tag$, U&'d\\0061t'",
]

# Each construct that makes a query text a write, named after its trap.
WRITES = {
    "for_update": "SELECT * FROM t FOR UPDATE",
    "for_no_key_update": "SELECT * FROM t WHERE id = 5 FOR NO KEY UPDATE",
    "for_share": "SELECT * FROM t FOR SHARE OF t NOWAIT",
    "for_key_share": "SELECT * FROM t FOR KEY SHARE",
    "for_update_skip_locked": "SELECT * FROM t FOR UPDATE SKIP LOCKED",
    "for_update_in_subquery": "SELECT * FROM (SELECT * FROM t FOR UPDATE) s",
    "for_share_in_cte": "WITH a AS (SELECT * FROM t FOR SHARE) SELECT * FROM a",
    "for_update_without_from": "SELECT 1 FOR UPDATE",
    "writable_cte": "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
    "writable_cte_nested": "WITH a AS (WITH b AS (INSERT INTO t VALUES (1) RETURNING *) "
    "SELECT * FROM b) SELECT * FROM a",
    "writable_cte_in_subquery": "SELECT * FROM t WHERE x IN "
    "(WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM u)",
    "writable_cte_insert": "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
    "select_into": "SELECT * INTO t2 FROM t",
    "select_into_temp": "SELECT * INTO TEMP t2 FROM t",
    "nextval": "SELECT nextval('s')",
    "nextval_qualified": "SELECT pg_catalog.nextval('s')",
    "nextval_quoted": "SELECT \"nextval\"('s')",
    "nextval_upper_case": "select NEXTVAL('s')",
    "setval": "SELECT setval('s', 5)",
    "currval": "SELECT currval('s')",
    "set_config": "SELECT set_config('a', 'b', false)",
    "txid_current": "SELECT txid_current()",
    "pg_current_xact_id": "SELECT pg_current_xact_id()",
    "lo_import": "SELECT lo_import('/tmp/x')",
    "lo_get": "SELECT lo_get(1)",
    "pg_advisory_lock": "SELECT pg_advisory_lock(1)",
    "pg_advisory_xact_lock": "SELECT pg_advisory_xact_lock(1)",
    "pg_try_advisory_lock": "SELECT pg_try_advisory_lock(1)",
    "pg_notify": "SELECT pg_notify('c', 'x')",
    "logical_slot_get_changes": "SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)",
    "advisory_lock_in_from": "SELECT * FROM pg_catalog.pg_advisory_lock(1)",
    "write_function_in_where": "SELECT * FROM t WHERE nextval('s') > 0",
    "unparseable": "SELECT * FRM t",
    "unknown_statement": "FROBNICATE t",
    "explain": "EXPLAIN SELECT 1",
    "explain_analyze_delete": "EXPLAIN ANALYZE DELETE FROM t",
    "call": "CALL p()",
    "do_block": "DO $$BEGIN PERFORM 1; END$$",
    "copy_to": "COPY t TO STDOUT",
    "show_of_not_a_setting": "SHOW x y",
    "empty_query": "",
    "only_a_comment": "-- nothing",
    "only_semicolons": ";;",
    "unterminated_string": "SELECT 'abc",
    "unterminated_comment": "SELECT 1 /* no end",
    "unterminated_quoted_identifier": 'SELECT "abc',
    "unterminated_dollar_quote": "SELECT $a$ abc",
    "comment_nested_too_deep": "/* 1 /* 2 /* 3 /* 4 /* 5 */ */ */ */ */ SELECT 1",
    "read_then_write": "SELECT 1; DELETE FROM t",
    "read_then_listen": "SELECT 1; LISTEN x",
    "for_read_only_is_not_understood": "SELECT * FROM t FOR READ ONLY",
    "merge": "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
    # With standard_conforming_strings off the server sees a DELETE here.
    "backslash_quote_string": "SELECT 'a\\''; DELETE FROM t; --'",
}


@pytest.mark.parametrize("sql", PGCAT_READS)
def test_pgcat_router_reads_are_reads(sql: str) -> None:
    assert not is_write(sql)


@pytest.mark.parametrize("sql", PGCAT_WRITES)
def test_pgcat_router_writes_are_writes(sql: str) -> None:
    assert is_write(sql)


@pytest.mark.parametrize("sql", READS)
def test_allow_listed_reads_are_reads(sql: str) -> None:
    assert not is_write(sql), classify(sql).reason


@pytest.mark.parametrize("sql", WRITES.values(), ids=WRITES.keys())
def test_write_constructs_are_writes(sql: str) -> None:
    assert is_write(sql)


@pytest.mark.parametrize(
    "sql", ["LISTEN chan", "DISCARD ALL", "SAVEPOINT s1", "DEALLOCATE ALL", "DEALLOCATE q"]
)
def test_statements_sqlglot_misparses_as_aliases_are_not_reads(sql: str) -> None:
    classification = classify(sql)
    assert classification.is_write
    assert StatementKind.SELECT not in classification.kinds


def test_configured_write_functions_make_reads_writes() -> None:
    assert is_write("SELECT my_audit()", write_functions=["my_audit"])
    assert is_write("SELECT audit_log(1)", write_functions=["audit_*"])
    assert not is_write("SELECT myaudit()", write_functions=["my_audit", "audit_*"])


def test_text_longer_than_query_parser_max_length_is_a_write() -> None:
    assert not is_write("SELECT 1", query_parser_max_length=8)
    assert is_write("SELECT 1 ", query_parser_max_length=8)
    assert is_write("SELECT 'é'", query_parser_max_length=10)  # 11 UTF-8 bytes


def test_parse_failure_never_keeps_a_previous_read_route() -> None:
    parser = Parser()
    assert not parser.classify("SELECT 1").is_write
    assert parser.classify("SELECT * FRM t").is_write
    assert parser.classify("SELECT 1 FOR READ ONLY").is_write


def test_reason_names_the_write() -> None:
    assert classify("SELECT nextval('s')").reason == "write function nextval()"
    assert "FOR UPDATE" in classify("SELECT 1 FOR UPDATE").reason
    assert classify("SELECT 1").reason == "read"
    assert classify("SELECT * FRM t").reason.startswith("unparseable")


def test_tables_are_named_once_ctes_left_out() -> None:
    sql = (
        'WITH c AS (SELECT * FROM "Orders") SELECT * FROM c JOIN public.Items i '
        "ON i.id = c.item_id JOIN items ON true WHERE EXISTS (SELECT 1 FROM c)"
    )
    tables = classify(sql).tables
    assert sorted(tables) == ["Orders", "items", "public.items"]


def test_kinds_list_every_statement() -> None:
    kinds = classify("BEGIN; SELECT 1; UPDATE t SET a = 1; COMMIT").kinds
    assert kinds == (
        StatementKind.BEGIN,
        StatementKind.SELECT,
        StatementKind.UPDATE,
        StatementKind.COMMIT,
    )


def test_semicolon_inside_quoted_identifier_does_not_split() -> None:
    classification = classify('SELECT 1 AS "a;b"')
    assert classification.kinds == (StatementKind.SELECT,)
    assert not classification.is_write


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'DELETE FROM t; INSERT INTO x' AS note",
        "SELECT $$ FOR UPDATE $$, E'nextval(\\'s\\')'",
        "SELECT 1 /* FOR UPDATE; DELETE FROM t */",
        "SELECT 1 -- ; DROP TABLE t",
        'SELECT "nextval" FROM t',  # a column, not a call
        "SELECT * FROM t WHERE note = 'lo_import(1)'",
    ],
)
def test_write_words_inside_literals_and_comments_stay_reads(sql: str) -> None:
    assert not is_write(sql), classify(sql).reason


@pytest.mark.parametrize("sql", [
    'SELECT "update" FROM t',
    'SELECT 1 AS "delete", 2 AS "insert into"',
    'SELECT "for update" FROM "merge"',
    'SELECT "a""update" FROM t',
])
def test_quoted_identifiers_are_names_not_keywords(sql: str) -> None:
    assert not is_write(sql)


def test_a_keyword_outside_the_quotes_still_writes() -> None:
    assert is_write('SELECT "update" FROM t FOR UPDATE')
