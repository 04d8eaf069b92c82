"""cross_shard_queries: which statements get a scatter route (pgcat_py/scatter/ merges
them) and which keep pgcat's routing."""

from __future__ import annotations

import pytest

from parser import ParserSettings
from pgcat_py.router import SCATTER, Overrides, RouteError, Router, RouterSettings

KEYED = ParserSettings.build(automatic_sharding_key="data.id")


def router(cross_shard: bool = True, **settings: object) -> Router:
    return Router(RouterSettings(**{  # type: ignore[arg-type]
        "shards": 3, "query_parser_enabled": True, "parser": KEYED,
        "cross_shard_queries": cross_shard, **settings}))


def test_a_keyless_select_on_a_sharded_table_goes_to_every_shard() -> None:
    route = router().route("SELECT count(*) FROM data", Overrides())
    assert route.shard == SCATTER and route.shards == ()


def test_keys_on_several_shards_go_to_those_shards_only() -> None:
    r = router()
    route = r.route("SELECT * FROM data WHERE id IN (1, 2, 3, 4, 5, 6)", Overrides())
    expected = tuple(sorted({r.shard_for_key(k) for k in range(1, 7)}))
    assert route.shard == SCATTER and route.shards == expected and len(expected) > 1


def test_a_key_param_only_the_server_knows_scatters() -> None:
    route = router().route("SELECT * FROM data WHERE id = ANY($1)", Overrides(),
                           bind=[(b"{1,2}", 0)])
    assert route.shard == SCATTER


@pytest.mark.parametrize("sql", [
    "SELECT * FROM data WHERE id = 7",  # one shard
    "SELECT 1",  # no sharded table
    "UPDATE data SET value = 1",  # not a read
    "SELECT * FROM data; SELECT 1",  # not a lone SELECT
])
def test_what_one_shard_answers_or_a_write_is_not_scattered(sql: str) -> None:
    assert router().route(sql, Overrides()).shard != SCATTER


def test_inside_an_explicit_transaction_a_select_over_shards_is_refused() -> None:
    # default_shard would answer with one shard's rows, which pass for the whole answer.
    r = router()
    with pytest.raises(RouteError, match="inside an explicit transaction") as refused:
        r.route("SELECT * FROM data", Overrides(), read_only_txn=True)
    assert refused.value.sqlstate == "0A000"
    assert r.route("SELECT * FROM data WHERE id = 1", Overrides(), read_only_txn=True).shard >= 0


def test_overrides_keep_pgcat_routing() -> None:
    r = router()
    assert r.route("SELECT * FROM data", Overrides(shard=2)).shard == 2
    assert r.route("SELECT * FROM data", Overrides(shard=2), read_only_txn=False).shard == 2


def test_off_by_default_pgcat_behaviour_stays() -> None:
    r = router(cross_shard=False)
    assert not r.varies
    assert r.route("SELECT * FROM data", Overrides()).shard == 0  # default_shard
    with pytest.raises(RouteError, match=r"are on \d shards"):
        r.route("SELECT * FROM data WHERE id IN (1, 2, 3, 4, 5, 6)", Overrides())


def test_session_mode_pools_do_not_scatter() -> None:
    assert router(session_mode=True).route("SELECT * FROM data", Overrides()).shard == 0
