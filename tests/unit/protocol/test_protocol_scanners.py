"""The relay's scanners on hand-made chunkings: what each chunk reports, and where."""

from __future__ import annotations

import pytest

from pgcat_py.protocol import backend as be
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import (
    TAG_CURSOR,
    TAG_DISCARD,
    TAG_LISTEN,
    TAG_PREPARE,
    TAG_SET,
    BackendScanner,
    FrontendScanner,
)

QUERY = fe.Query("select 1").encode()
SYNC = fe.Sync().encode()
TERMINATE = fe.Terminate().encode()
NAMED_PARSE = fe.Parse("s1", "select $1").encode()
UNNAMED_PARSE = fe.Parse("", "select $1").encode()
BIND = fe.Bind("", "s1", (), (b"1",)).encode()
EXECUTE = fe.Execute("").encode()


def test_query_sync_and_function_call_are_sync_points() -> None:
    scanner = FrontendScanner()
    call = fe.FunctionCall(1, (), (), 0).encode()
    assert scanner.feed(QUERY + SYNC + call) == (3, -1)
    assert not scanner.in_batch
    assert scanner.at_boundary


def test_extended_messages_open_a_batch_that_sync_closes() -> None:
    scanner = FrontendScanner()
    assert scanner.feed(UNNAMED_PARSE + BIND + EXECUTE) == (0, -1)
    assert scanner.in_batch
    assert scanner.feed(SYNC) == (1, -1)
    assert not scanner.in_batch


@pytest.mark.parametrize("msg", [fe.Describe("S", ""), fe.Close("P", "p"), fe.Flush()], ids=repr)
def test_describe_close_and_flush_open_a_batch_too(msg: fe.FrontendMessage) -> None:
    scanner = FrontendScanner()
    scanner.feed(msg.encode())
    assert scanner.in_batch


def test_copy_messages_neither_sync_nor_batch() -> None:
    scanner = FrontendScanner()
    stream = fe.CopyData(b"1\n").encode() + fe.CopyDone().encode() + fe.CopyFail("x").encode()
    assert scanner.feed(stream) == (0, -1)
    assert not scanner.in_batch


def test_named_parse_is_remembered_and_unnamed_is_not() -> None:
    scanner = FrontendScanner()
    scanner.feed(UNNAMED_PARSE + SYNC)
    assert not scanner.named_parse
    scanner.feed(NAMED_PARSE + SYNC)
    assert scanner.named_parse


def test_parse_cut_after_its_header_counts_as_named() -> None:
    # The name's first byte is in the next chunk: assume the worst.
    scanner = FrontendScanner()
    scanner.feed(UNNAMED_PARSE[:5])
    assert scanner.named_parse


def test_parse_header_split_across_chunks_counts_as_named() -> None:
    # Its first bytes went out before its name could be seen: treated as named (the
    # session then rewrites), never as unnamed when it might not be.
    scanner = FrontendScanner()
    scanner.feed(UNNAMED_PARSE[:3])
    assert not scanner.at_boundary
    scanner.feed(UNNAMED_PARSE[3:])
    assert scanner.named_parse
    assert scanner.at_boundary


def test_a_message_cut_anywhere_is_reported_once_its_header_is_whole() -> None:
    for cut in range(1, len(QUERY)):
        scanner = FrontendScanner()
        first = scanner.feed(QUERY[:cut])
        assert not scanner.at_boundary
        second = scanner.feed(QUERY[cut:])
        assert scanner.at_boundary
        assert first[0] + second[0] == 1
        assert first[0] == (1 if cut >= 5 else 0)


def test_terminate_offset_is_where_it_starts_in_the_chunk() -> None:
    scanner = FrontendScanner()
    assert scanner.feed(QUERY + TERMINATE + b"ignored") == (1, len(QUERY))
    assert scanner.at_boundary


def test_terminate_after_the_rest_of_a_message_is_offset_past_that_rest() -> None:
    scanner = FrontendScanner()
    scanner.feed(QUERY[:7])
    assert scanner.feed(QUERY[7:] + TERMINATE) == (0, len(QUERY) - 7)


def test_terminate_whose_header_began_in_the_last_chunk_is_not_at_a_boundary() -> None:
    scanner = FrontendScanner()
    assert scanner.feed(SYNC + TERMINATE[:2]) == (1, -1)
    assert scanner.feed(TERMINATE[2:]) == (0, 0)
    # Part of the Terminate was already forwarded with the previous chunk.
    assert not scanner.at_boundary


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00\x00\x04", b"Z\x00\x00\x00\x04",
                                     b"p\x00\x00\x00\x08", b"S\x00\x00\x00\x03",
                                     b"S\x00\x00\x27\x11"])
def test_garbage_header_is_a_protocol_violation(garbage: bytes) -> None:
    scanner = FrontendScanner()
    with pytest.raises(ProtocolViolation):
        scanner.feed(SYNC + garbage)


def test_garbage_split_across_chunks_is_caught_when_its_header_completes() -> None:
    scanner = FrontendScanner()
    scanner.feed(b"Q\x00")  # a valid start
    with pytest.raises(ProtocolViolation):
        scanner.feed(b"\x00\x00\x03")  # length 3


@pytest.mark.parametrize("start", [b"\x00", b"\x00\x00", b"Q\x7f", b"Q\x40\x00\x00"])
def test_a_header_start_that_no_message_has_is_refused_before_it_is_relayed(
        start: bytes) -> None:
    # The relay forwards each chunk whole: a bad type byte arriving alone must not reach
    # PostgreSQL (it would answer with a FATAL of its own, then ours would follow).
    with pytest.raises(ProtocolViolation):
        FrontendScanner().feed(start)


def test_a_valid_header_start_is_kept_for_the_next_chunk() -> None:
    scanner = FrontendScanner()
    assert scanner.feed(b"Q\x00\x00") == (0, -1)
    assert scanner.feed(b"\x00\x09SEL\x00") == (1, -1)


ROW = be.DataRow((b"1", None)).encode()
COMPLETE = be.CommandComplete("SELECT 1").encode()
READY = be.ReadyForQuery("I").encode()


def test_backend_scanner_counts_ready_for_query_and_skips_rows() -> None:
    scanner = BackendScanner()
    assert scanner.feed(ROW + ROW + COMPLETE + READY) == 1
    assert scanner.status == ord("I")
    assert scanner.commands == 1
    assert scanner.session_tags == 0
    assert scanner.others == []
    assert scanner.at_boundary


@pytest.mark.parametrize(("tag", "bit"), [("SET", TAG_SET), ("RESET", TAG_SET),
                                          ("PREPARE", TAG_PREPARE),
                                          ("LISTEN", TAG_LISTEN | TAG_DISCARD),
                                          ("DECLARE CURSOR", TAG_CURSOR | TAG_DISCARD),
                                          ("SELECT 1", 0), ("SETX", 0), ("INSERT 0 1", 0),
                                          ("", 0)])
def test_session_dirtying_tags_are_flagged(tag: str, bit: int) -> None:
    scanner = BackendScanner()
    scanner.feed(be.CommandComplete(tag).encode() + READY)
    assert scanner.session_tags == bit


def test_a_command_complete_without_a_tag_flags_nothing() -> None:
    scanner = BackendScanner()
    assert scanner.feed(b"C\x00\x00\x00\x04" + READY) == 1
    assert scanner.session_tags == 0


@pytest.mark.parametrize("kind", list("ESK"))
def test_messages_the_proxy_decodes_are_kept_whole(kind: str) -> None:
    payload = b"x\x00"
    scanner = BackendScanner()
    assert scanner.feed(kind.encode() + (len(payload) + 4).to_bytes(4, "big") + payload) == 0
    assert scanner.others == [(ord(kind), payload)]


@pytest.mark.parametrize(("kind", "in_copy"), [("G", True), ("H", True), ("W", True)])
def test_copy_responses_mark_copy_until_ready_for_query(kind: str, in_copy: bool) -> None:
    scanner = BackendScanner()
    scanner.feed(be.CopyResponse(kind).encode())
    assert scanner.in_copy is in_copy
    scanner.feed(be.CommandComplete("COPY 1").encode() + be.ReadyForQuery("T").encode())
    assert not scanner.in_copy
    assert scanner.status == ord("T")


def test_ready_for_query_split_across_chunks_comes_out_whole() -> None:
    for cut in range(1, len(READY)):
        scanner = BackendScanner()
        assert scanner.feed(ROW + READY[:cut]) == 0
        assert not scanner.at_boundary
        assert scanner.feed(READY[cut:]) == 1
        assert scanner.at_boundary


def test_a_big_row_spread_over_chunks_is_skipped_without_being_held() -> None:
    row = be.DataRow((b"x" * 10000,)).encode()
    scanner = BackendScanner()
    pieces = [row[i:i + 1000] for i in range(0, len(row), 1000)]
    for piece in pieces:
        assert scanner.feed(piece) == 0
        assert len(scanner._carry) < 5  # never more than a partial header is kept
    assert scanner.at_boundary
    assert scanner.feed(READY) == 1


def test_backend_length_below_four_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation):
        BackendScanner().feed(ROW + b"D\x00\x00\x00\x02")


# --- what the relay needs to hold back, pin, or answer itself ------------------------------
@pytest.mark.parametrize("cut", range(1, len(ROW + COMPLETE + READY)))
def test_partial_counts_the_bytes_of_an_incomplete_last_message(cut: int) -> None:
    stream = ROW + COMPLETE + READY
    boundaries = {0, len(ROW), len(ROW + COMPLETE), len(stream)}
    scanner = BackendScanner()
    scanner.feed(stream[:cut])
    start = max(b for b in boundaries if b <= cut)
    assert scanner.partial == cut - start
    scanner.feed(stream[cut:])
    assert scanner.partial == 0


def test_partial_grows_across_chunks_of_one_big_row() -> None:
    row = be.DataRow((b"x" * 100_000,)).encode()
    scanner = BackendScanner()
    for end in range(10_000, len(row), 10_000):
        scanner.feed(row[end - 10_000:end])
        assert scanner.partial == end
    scanner.feed(row[end:])
    assert scanner.partial == 0


@pytest.mark.parametrize(("sql", "locks"), [
    ("select pg_advisory_lock(1)", True),
    ("SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)", True),
    ("select pg_advisory_xact_lock(1)", False),
    ("select pg_advisory_xact_lock(1), pg_Advisory_Lock(2)", True),
    ("select 'advisory'", False),
    ("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;", False),
    ("select pg_advisory_unlock(1)", False),
])
def test_session_advisory_locks_are_noticed_in_any_case(sql: str, locks: bool) -> None:
    scanner = FrontendScanner()
    scanner.feed(fe.Query(sql).encode())
    assert scanner.session_lock is locks


def test_advisory_lock_in_copy_data_is_not_sql() -> None:
    scanner = FrontendScanner()
    scanner.feed(fe.CopyData(b"pg_advisory_lock(1)\n").encode())
    assert not scanner.session_lock


@pytest.mark.parametrize(("sql", "flagged"), [
    ("SET SHARD TO '1'", True), ("show shard", True), ("set statement_timeout = 1", True),
    ("RESET work_mem", True), ("DEALLOCATE s1", True), ("SELECT 1", False),
    ("select 1", False), ("DELETE FROM t", False),
    ("ROLLBACK", False), ("RELEASE s", False),
])
def test_set_and_show_queries_are_flagged_as_maybe_custom_commands(sql: str,
                                                                  flagged: bool) -> None:
    scanner = FrontendScanner()
    scanner.feed(QUERY + fe.Query(sql).encode())
    assert scanner.command == (len(QUERY) if flagged else -1)


def test_a_parse_header_cut_before_its_name_counts_as_named() -> None:
    scanner = FrontendScanner()
    chunk = fe.Parse("S1", "SELECT 1").encode()
    scanner.feed(QUERY + chunk[:3])
    assert scanner.named_parse  # the session switches to rewriting before any of it goes


@pytest.mark.parametrize(("sql", "flagged"), [
    ("SET work_mem = 1", True), ("reset all", True), ("SELECT 1", False), ("SHOW x", False),
])
def test_an_unnamed_parse_of_a_set_is_flagged(sql: str, flagged: bool) -> None:
    scanner = FrontendScanner()
    scanner.feed(QUERY + fe.Parse("", sql).encode() + BIND)
    assert scanner.set_parse == (len(QUERY) if flagged else -1)


def test_queries_behind_an_unsynced_batch_may_go_unanswered() -> None:
    # PostgreSQL skips to Sync after a failed extended message, Queries included.
    describe, query = b"D\x00\x00\x00\x06P\x00", b"Q\x00\x00\x00\x05\x00"
    scanner = FrontendScanner()
    assert scanner.feed(query + describe + query + query) == (3, -1)
    assert scanner.voidable == 2  # the first came before the batch
    assert scanner.feed(b"S\x00\x00\x00\x04" + query) == (2, -1)
    assert scanner.voidable == 2  # the Sync ends the skip


def test_a_temporary_relation_made_in_any_statement_of_the_transaction_is_noted() -> None:
    scanner = FrontendScanner()
    scanner.feed(fe.Query("SELECT 1").encode())
    assert not scanner.creates_temp
    scanner.feed(fe.Query("create TEMPORARY table t (x int)").encode())
    scanner.feed(fe.Query("COMMIT").encode())
    assert scanner.creates_temp  # until the owner clears it


@pytest.mark.parametrize(("sql", "creates"), [
    ("CREATE tEmP TABLE t (x int)", True),
    ("create Temporary table t ()", True),
    ("CREATE GLOBAL TEMPORARY TABLE t (x int)", True),
    ("CREATE LOCAL TEMP TABLE t (x int)", True),
    ("CREATE TEMP TABLE t AS SELECT 1", True),  # completes as "SELECT 1"
    ("SELECT 1 INTO TEMP t", True),  # likewise
    ("SELECT 1 AS x INTO TEMPORARY TABLE t", True),
    ("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", True),  # "CREATE VIEW"
    ("CREATE TEMP SEQUENCE s", True),  # "CREATE SEQUENCE"
    ("DO $$ BEGIN CREATE TEMP TABLE t (x int); END $$", True),
    ("INSERT INTO attempts VALUES (1)", False),
    ("SELECT * FROM templates WHERE temperature > 3", False),
    ("CREATE TABLE temp_data (x int)", False),
    ("SELECT * FROM pg_temp.t", False),
    ("DISCARD TEMP", False),
])
def test_temporary_relations_are_noted_in_any_letter_case(sql: str, creates: bool) -> None:
    scanner = FrontendScanner()
    scanner.feed(fe.Query(sql).encode())
    assert scanner.creates_temp is creates


@pytest.mark.parametrize("pad", range(40))
def test_a_temporary_relation_is_noted_whatever_its_header_length_byte(pad: int) -> None:
    # The header's last length byte sits right before the SQL: "4CREATE" must still count.
    sql = "CREATE TEMP TABLE t (x int)" + " " * pad
    scanner = FrontendScanner()
    scanner.feed(fe.Query(sql).encode())
    assert scanner.creates_temp


# --- at_rest: whether a parked client's scanner may be dropped (frontend/parking.py) -------
def test_a_scanner_is_at_rest_after_whole_queries_only() -> None:
    scanner = FrontendScanner()
    assert scanner.at_rest()
    scanner.feed(QUERY)
    assert scanner.at_rest()
    scanner.feed(QUERY[:3])  # in the middle of a header
    assert not scanner.at_rest()
    scanner.feed(QUERY[3:])  # remembers where this chunk began: not yet
    assert not scanner.at_rest()
    scanner.feed(QUERY)
    assert scanner.at_rest()
    scanner.feed(NAMED_PARSE + BIND + EXECUTE + SYNC)  # a named statement went by
    assert not scanner.at_rest()


def test_every_field_of_a_scanner_counts_for_at_rest() -> None:
    changed = {"_skip": 3, "_head": b"Q", "in_batch": True, "voidable": 1, "voiding": True,
               "named_parse": True, "session_lock": True, "creates_temp": True, "command": 5,
               "unnamed_parse": 5, "set_parse": 5, "entry_head": b"Q", "entry_skip": 2}
    assert set(changed) == set(FrontendScanner.__slots__)  # a new field needs a line here
    for name, value in changed.items():
        scanner = FrontendScanner()
        setattr(scanner, name, value)
        assert not scanner.at_rest(), name
