"""The intercept plugin without a server: which texts match, and the bytes of its answers to
a Query and to extended-protocol batches."""

from __future__ import annotations

import struct

from pgcat_py.config.plugins import Intercept
from pgcat_py.plugins.intercept import ANY_OID, TYPE_OIDS, Interceptor, normalise
from pgcat_py.protocol import backend as be
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.framing import split_messages

INTELLIJ = "select current_database() as a, current_schemas(false) as b"


def interceptor(*queries: tuple[str, list[list[str]], list[list[str]]]) -> Interceptor:
    config = Intercept.model_validate({"enabled": True, "queries": {
        str(i): {"query": q, "schema": schema, "result": result}
        for i, (q, schema, result) in enumerate(queries)}})
    return Interceptor(config)


PGCAT_EXAMPLE = interceptor((INTELLIJ, [["a", "text"], ["b", "text"]],
                             [["${DATABASE}", "{public}"]]))


def messages(data: bytes) -> list[tuple[str, bytes]]:
    found, end = split_messages(data)
    assert end == len(data)
    return [(chr(t), payload) for t, payload in found]


def decoded(data: bytes) -> list[object]:
    return [be.decode_backend(ord(t), payload) for t, payload in messages(data)]


# --- which texts match ------------------------------------------------------------------
def test_spelling_case_spacing_comments_and_optional_as_do_not_matter() -> None:
    for text in [INTELLIJ, "SELECT current_database() AS a, current_schemas(FALSE) AS b;",
                 "select\n  current_database() a,\tcurrent_schemas(false) b",
                 "/* IntelliJ */ select current_database() as a, -- probe\n"
                 "current_schemas(false) as b"]:
        assert PGCAT_EXAMPLE.match(text) is not None, text


def test_different_queries_and_literals_do_not_match() -> None:
    probe = interceptor(("select 1 as one", [["one", "int4"]], [["1"]]))
    assert probe.match("SELECT 1 AS one") is not None
    assert probe.match("select 2 as one") is None
    assert probe.match("select 1 as two") is None
    assert PGCAT_EXAMPLE.match("select current_database()") is None


def test_string_literals_compare_lower_cased_as_pgcat_does() -> None:
    probe = interceptor(("select 'Hello' as greeting", [["greeting", "text"]], [["x"]]))
    assert probe.match("SELECT 'hello' AS greeting") is not None
    assert probe.match("SELECT 'bye' AS greeting") is None


def test_a_multi_statement_text_matches_only_a_multi_statement_query() -> None:
    assert PGCAT_EXAMPLE.match(f"{INTELLIJ}; select 1") is None
    both = interceptor((f"{INTELLIJ}; select 1", [["a", "text"]], [["x"]]))
    assert both.match(f"{INTELLIJ};select 1;") is not None


def test_unterminated_or_very_long_texts_never_match() -> None:
    assert normalise("select 'oops") is None
    assert PGCAT_EXAMPLE.match("select 'oops") is None
    assert PGCAT_EXAMPLE.match(INTELLIJ + " " + "x" * 10_000) is None


# --- the answer to a Query ----------------------------------------------------------------
def test_simple_answer_substitutes_and_sends_empty_strings_as_null() -> None:
    probe = interceptor(("select 1", [["who", "text"], ["n", "int4"]],
                         [["${USER}@${DATABASE}", "7"], ["", ""]]))
    canned = probe.match("select 1")
    assert canned is not None
    answer = decoded(canned.simple_answer("alice", "app"))
    assert answer == [
        be.RowDescription((be.Field("who", 25), be.Field("n", 23, type_size=4))),
        be.DataRow((b"alice@app", b"7")),
        be.DataRow((None, None)),
        be.CommandComplete("SELECT 2"),
    ]


def test_pgcats_type_mapping() -> None:
    assert TYPE_OIDS == {"text": 25, "anyarray": 2277, "oid": 26, "bool": 16, "int4": 23}
    probe = interceptor(("select 1", [["a", "anyarray"], ["b", "oid"], ["c", "bool"],
                                      ["d", "numeric"]], [["{}", "1", "t", "2"]]))
    canned = probe.match("select 1")
    assert canned is not None
    head = decoded(canned.simple_answer("u", "d"))[0]
    assert isinstance(head, be.RowDescription)
    assert [f.type_oid for f in head.fields] == [2277, 26, 16, ANY_OID]


# --- extended protocol ----------------------------------------------------------------------
def batch(*msgs: object) -> list[tuple[int, bytes]]:
    data = b"".join(m.encode() for m in msgs)  # type: ignore[attr-defined]
    found, _ = split_messages(data)
    return found


def test_psycopg_unnamed_batch_gets_what_postgresql_would_send() -> None:
    reply = PGCAT_EXAMPLE.batch_reply(batch(
        fe.Parse("", INTELLIJ), fe.Bind("", ""), fe.Describe("P", ""), fe.Execute(""),
        fe.Sync()), {}, "alice", "tools", "I")
    assert reply is not None
    assert [t for t, _ in messages(reply.reply)] == ["1", "2", "T", "D", "C", "Z"]
    assert decoded(reply.reply)[3] == be.DataRow((b"tools", b"{public}"))
    assert decoded(reply.reply)[-1] == be.ReadyForQuery("I")


def test_a_named_statement_is_answered_in_later_batches() -> None:
    first = PGCAT_EXAMPLE.batch_reply(batch(fe.Parse("_pg3_0", INTELLIJ), fe.Sync()),
                                      {}, "u", "d", "T")
    assert first is not None
    assert [t for t, _ in messages(first.reply)] == ["1", "Z"]
    assert first.named == {"_pg3_0": INTELLIJ}
    later = PGCAT_EXAMPLE.batch_reply(batch(
        fe.Describe("S", "_pg3_0"), fe.Bind("", "_pg3_0"), fe.Execute(""),
        fe.Close("S", "_pg3_0"), fe.Sync()), first.named, "u", "d", "I")  # type: ignore[arg-type]
    assert later is not None
    assert [t for t, _ in messages(later.reply)] == ["t", "T", "2", "D", "C", "3", "Z"]
    assert later.named == {"_pg3_0": None}


def test_binary_results_for_the_types_that_have_one() -> None:
    probe = interceptor(("select 1", [["n", "int4"], ["ok", "bool"], ["t", "text"],
                                      ["x", "anyarray"]], [["42", "t", "hi", "{}"]]))
    reply = probe.batch_reply(batch(fe.Parse("", "select 1"),
                                    fe.Bind("", "", result_formats=(1,)),
                                    fe.Describe("P", ""), fe.Execute(""), fe.Sync()),
                              {}, "u", "d", "I")
    assert reply is not None
    head, row = decoded(reply.reply)[2:4]
    assert isinstance(head, be.RowDescription)
    assert [f.format_code for f in head.fields] == [1, 1, 1, 0]  # anyarray: text, said so
    assert row == be.DataRow((struct.pack("!i", 42), b"\x01", b"hi", b"{}"))


def test_batches_with_anything_not_intercepted_go_to_a_server() -> None:
    assert PGCAT_EXAMPLE.batch_reply(batch(
        fe.Parse("", INTELLIJ), fe.Bind("", ""), fe.Execute(""),
        fe.Parse("", "select 1"), fe.Bind("", ""), fe.Execute(""), fe.Sync()),
        {}, "u", "d", "I") is None
    assert PGCAT_EXAMPLE.batch_reply(batch(  # a statement prepared on a server
        fe.Bind("", "s1"), fe.Execute(""), fe.Sync()), {"s1": "select 1"}, "u", "d", "I") is None
    assert PGCAT_EXAMPLE.batch_reply(batch(  # ended by Flush: the client waits for more
        fe.Parse("", INTELLIJ), fe.Bind("", ""), fe.Execute(""), fe.Flush()),
        {}, "u", "d", "I") is None
    assert PGCAT_EXAMPLE.batch_reply(batch(fe.Close("S", "x"), fe.Sync()),
                                      {}, "u", "d", "I") is None
