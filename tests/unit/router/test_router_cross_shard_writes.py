"""cross_shard_writes: which writes get a scatter route with ``writes`` set
(pgcat_py/scatter/writes.py runs them) and which keep pgcat's routing."""

from __future__ import annotations

import pytest

from parser import ParserSettings
from pgcat_py.router import SCATTER, Overrides, RouteError, Router, RouterSettings

KEYED = ParserSettings.build(automatic_sharding_key="data.id")
INSERT = "INSERT INTO data (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')"


def router(writes: bool = True, **settings: object) -> Router:
    return Router(RouterSettings(**{  # type: ignore[arg-type]
        "shards": 3, "query_parser_enabled": True, "parser": KEYED,
        "cross_shard_writes": writes, **settings}))


def test_a_multi_row_insert_on_several_shards_is_a_scattered_write() -> None:
    r = router()
    route = r.route(INSERT, Overrides())
    assert route.shard == SCATTER and route.writes
    assert route.shards == tuple(sorted({r.shard_for_key(k) for k in range(1, 5)}))


@pytest.mark.parametrize("sql", ["UPDATE data SET v = 1", "DELETE FROM data WHERE v = 'x'",
                                 "COPY data FROM STDIN"])
def test_keyless_writes_go_to_every_shard(sql: str) -> None:
    route = router().route(sql, Overrides())
    assert route.shard == SCATTER and route.writes and route.shards == ()


def test_a_write_with_one_shard_is_routed_as_before() -> None:
    route = router().route("UPDATE data SET v = 1 WHERE id = 5", Overrides())
    assert route.shard == router().shard_for_key(5) and not route.writes


def test_inside_an_explicit_transaction_it_is_refused() -> None:
    with pytest.raises(RouteError) as caught:
        router().route(INSERT, Overrides(), read_only_txn=False)
    assert caught.value.sqlstate == "0A000"


def test_refuse_keeps_pgcat_routing() -> None:
    r = router(writes=False)
    with pytest.raises(RouteError, match="on 3 shards"):
        r.route(INSERT, Overrides())
    assert r.route("UPDATE data SET v = 1", Overrides()).shard == 0  # default_shard


def test_writes_alone_do_not_scatter_selects() -> None:
    route = router().route("SELECT * FROM data", Overrides())
    assert route.shard == 0 and not route.writes


def test_copy_to_is_not_a_scattered_write() -> None:
    route = router().route("COPY data TO STDOUT", Overrides())
    assert route.shard == 0 and not route.writes


def test_explain_route_says_how_a_write_would_run() -> None:
    from pgcat_py.scatter.writes import explain_write

    r = router()
    note = explain_write(r, INSERT)
    assert note.startswith("split: shard ")
    assert all(f"rows {k}" in note or f", {k}" in note for k in range(1, 5))
    assert explain_write(r, "UPDATE data SET v = 1") == "on every shard concerned, counts summed"
    assert explain_write(r, "UPDATE data SET id = 1").startswith("refused (0A000)")
    assert "COPY" in explain_write(r, "COPY data FROM STDIN")
    assert "Bind" in explain_write(r, "INSERT INTO data (id) VALUES ($1), ($2)")
