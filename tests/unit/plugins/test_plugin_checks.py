"""PoolPlugins without sockets: query_logger, table_access and the plugin_module hook on a
routed statement, the answers written for intercepted input, and build_plugins from a
config (which pools get plugins, and the errors of a hook that cannot load)."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pgcat_py.config import ConfigError, parse_config
from pgcat_py.frontend.idle import HeldTransaction
from pgcat_py.plugins import PluginRefusal, PoolPlugins, Refuse, RouteTo, Statement, build_plugins
from pgcat_py.plugins.hook import load_hook
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.framing import split_messages
from pgcat_py.router import PRIMARY, REPLICA, Route, Router, RouterSettings

SPLIT = RouterSettings(query_parser_enabled=True, read_write_splitting=True, shards=2)


class FakeSession:
    """What the plugins use of a ClientSession."""

    def __init__(self, data: bytes = b"") -> None:
        self.database, self.user = "app", "alice"
        self.held: HeldTransaction | None = None
        self.statements: dict[str, str] = {}
        self._rbuf = bytearray(data)
        self.written = b""

    def consume(self, n: int) -> None:
        del self._rbuf[:n]

    def own_statements(self) -> dict[str, str]:
        return self.statements

    def write(self, data: bytes) -> None:
        self.written += data


def build_toml(pool: str = "", extra: str = "") -> str:
    """One pool `app` (user alice, one primary); ``pool`` adds lines to [pools.app]."""
    return textwrap.dedent("""
        [general]
        admin_username = "admin"
        admin_password = "admin"
        [pools.app.users.0]
        username = "alice"
        password = "x"
        pool_size = 1
        [pools.app.shards.0]
        database = "app"
        servers = [["127.0.0.1", 5432, "primary"]]
        """) + f"[pools.app]\n{pool}\n{extra}\n"


@pytest.fixture
def toml() -> Callable[..., str]:
    return build_toml


def session(data: bytes = b"") -> Any:
    return FakeSession(data)


def routed(router: Router, sql: str) -> Route:
    from pgcat_py.router import Overrides

    return router.route(sql, Overrides())


# --- table_access ----------------------------------------------------------------------------
@pytest.mark.parametrize("sql", ["SELECT * FROM pg_user", "select * from PG_CATALOG.PG_USER",
                                 "SELECT 1 FROM t JOIN (SELECT * FROM pg_user) u ON true",
                                 "DELETE FROM secrets", 'SELECT * FROM "Secrets"'])
def test_table_access_refuses_listed_tables_by_their_last_name(sql: str) -> None:
    plugins = PoolPlugins("app", denied_tables=frozenset({"pg_user", "Secrets"}))
    router = Router(SPLIT)
    with pytest.raises(PluginRefusal) as refused:
        plugins.check(session(), router, sql, None, routed(router, sql))
    assert refused.value.sqlstate == "42501"
    assert refused.value.message.startswith("permission for table ")
    assert refused.value.message.endswith(' denied')


def test_table_access_checks_statements_pipelined_behind_the_first() -> None:
    plugins = PoolPlugins("app", denied_tables=frozenset({"pg_user"}))
    router = Router(SPLIT)
    route = routed(router, "SELECT 1")
    assert plugins.check(session(), router, "SELECT 1", [None, "SELECT 2"], route) is route
    with pytest.raises(PluginRefusal, match='permission for table "pg_user" denied'):
        plugins.check(session(), router, "SELECT 1", ["SELECT * FROM pg_user"], route)


def test_other_tables_pass_unchanged() -> None:
    plugins = PoolPlugins("app", denied_tables=frozenset({"pg_user"}))
    router = Router(SPLIT)
    route = routed(router, "SELECT * FROM users")
    assert plugins.check(session(), router, "SELECT * FROM users", None, route) is route


# --- query_logger ----------------------------------------------------------------------------
def test_query_logger_logs_queries_and_parses(caplog: pytest.LogCaptureFixture) -> None:
    plugins = PoolPlugins("app", query_logger=True)
    caplog.set_level(logging.INFO, logger="pgcat_py.plugins")
    assert not plugins.answer_query(session(), "SELECT 1 ", 10)
    batch = fe.Parse("s", "SELECT $1").encode() + fe.Sync().encode()
    assert not plugins.answer_batch(session(batch), len(batch))
    assert [r.getMessage() for r in caplog.records] == [
        "[pool: app][user: alice] SELECT 1", "[pool: app][user: alice] SELECT $1"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


# --- intercept through PoolPlugins ---------------------------------------------------------
def intercepting() -> PoolPlugins:
    config = parse_config(textwrap.dedent("""
        [general]
        admin_username = "a"
        admin_password = "a"
        [plugins.intercept]
        enabled = true
        [plugins.intercept.queries.0]
        query = "select 1 as one"
        schema = [["one", "int4"]]
        result = [["1"]]
        [pools.app]
        query_parser_enabled = true
        [pools.app.users.0]
        username = "alice"
        password = "x"
        pool_size = 1
        [pools.app.shards.0]
        database = "app"
        servers = [["127.0.0.1", 5432, "primary"]]
        """)).config
    plugins = build_plugins(config, "app")
    assert plugins is not None
    return plugins


def test_an_intercepted_query_is_consumed_and_answered_with_ready_for_query() -> None:
    query = fe.Query("SELECT 1 AS one").encode()
    s = session(query + b"rest")
    assert intercepting().answer_query(s, "SELECT 1 AS one", len(query))
    assert bytes(s._rbuf) == b"rest"
    assert [chr(t) for t, _ in split_messages(s.written)[0]] == ["T", "D", "C", "Z"]
    assert s.written.endswith(b"Z\x00\x00\x00\x05I")


def test_intercepted_inside_a_held_transaction_reports_it_and_not_when_failed() -> None:
    s = session()
    s.held = HeldTransaction(["BEGIN"], None, False)  # type: ignore[arg-type]
    assert intercepting().answer_query(s, "select 1 as one", 0)
    assert s.written.endswith(b"Z\x00\x00\x00\x05T")
    s.held.failed = True
    assert not intercepting().answer_query(s, "select 1 as one", 0)  # 25P02 from the router


def test_an_intercepted_batch_remembers_its_named_statement() -> None:
    batch = fe.Parse("s1", "select 1 as one").encode() + fe.Sync().encode()
    s = session(batch)
    assert intercepting().answer_batch(s, len(batch))
    assert s.statements == {"s1": "select 1 as one"} and not s._rbuf
    batch = (fe.Bind("", "s1").encode() + fe.Execute("").encode() + fe.Close("S", "s1").encode()
             + fe.Sync().encode())
    s._rbuf += batch
    assert intercepting().answer_batch(s, len(batch))
    assert s.statements == {}


# --- the plugin_module hook -----------------------------------------------------------------
def hooked(hook: Callable[[Statement], object]) -> PoolPlugins:
    return PoolPlugins("app", hook=hook)  # type: ignore[arg-type]


def test_the_hook_sees_the_classification_and_the_route() -> None:
    seen: list[Statement] = []

    def hook(statement: Statement) -> None:
        seen.append(statement)

    router = Router(RouterSettings(query_parser_enabled=True, read_write_splitting=True,
                                   shards=2, parser=_keyed()))
    sql = "SELECT * FROM data WHERE id = 5"
    route = routed(router, sql)
    assert hooked(hook).check(session(), router, sql, None, route) is route
    (statement,) = seen
    assert (statement.sql, statement.pool, statement.user) == (sql, "app", "alice")
    assert statement.is_read and statement.kinds == ("SELECT",)
    assert statement.tables == ("data",) and statement.shard_keys == (5,)
    assert (statement.shard, statement.role) == (route.shard, REPLICA)
    assert not statement.in_transaction


def _keyed() -> Any:
    from parser import ParserSettings

    return ParserSettings.build(automatic_sharding_key="data.id")


def test_the_hook_moves_the_route() -> None:
    router = Router(SPLIT)
    route = routed(router, "SELECT 1")
    moved = hooked(lambda s: RouteTo(role="primary", shard=1, reason="mine")).check(
        session(), router, "SELECT 1", None, route)
    assert moved == Route(1, PRIMARY, "mine")
    same = hooked(lambda s: RouteTo(role=REPLICA)).check(session(), router, "SELECT 1", None,
                                                           route)
    assert same is route


def test_the_hook_refuses() -> None:
    router = Router(SPLIT)
    with pytest.raises(PluginRefusal) as refused:
        hooked(lambda s: Refuse("no", sqlstate="0A000")).check(
            session(), router, "DELETE FROM t", None, routed(router, "DELETE FROM t"))
    assert (refused.value.message, refused.value.sqlstate) == ("no", "0A000")


@pytest.mark.parametrize("hook", [
    lambda s: 1 / 0,                      # raises
    lambda s: "replica",                  # not a decision
    lambda s: RouteTo(role="standby"),    # no such role
    lambda s: RouteTo(shard=7),           # no such shard
], ids=["raises", "wrong_type", "bad_role", "bad_shard"])
def test_a_broken_hook_is_logged_and_ignored(hook: Callable[[Statement], object],
                                             caplog: pytest.LogCaptureFixture) -> None:
    router = Router(SPLIT)
    route = routed(router, "SELECT 1")
    assert hooked(hook).check(session(), router, "SELECT 1", None, route) is route
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_only_the_first_statement_moves_the_route_but_any_may_refuse() -> None:
    router = Router(SPLIT)
    route = routed(router, "SELECT 1")

    def hook(statement: Statement) -> RouteTo | Refuse | None:
        if "DELETE" in statement.kinds:
            return Refuse("no deletes")
        return RouteTo(role=PRIMARY) if statement.sql == "SELECT 2" else None

    plugins = hooked(hook)
    assert plugins.check(session(), router, "SELECT 1", ["SELECT 2"], route) is route
    with pytest.raises(PluginRefusal):
        plugins.check(session(), router, "SELECT 1", [None, "DELETE FROM t"], route)


# --- loading ----------------------------------------------------------------------------------
@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("plugin_test_")]:
        del sys.modules[name]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def config_with(toml: Callable[..., str], tmp_path: Path, pool: str, extra: str = "") -> Any:
    path = tmp_path / "pgcat.toml"
    path.write_text(toml(pool=pool, extra=extra))
    from pgcat_py.config import load_config

    return load_config(path).config


def test_a_module_next_to_the_config_is_loaded(module_dir: Path,
                                               toml: Callable[..., str]) -> None:
    (module_dir / "plugin_test_ok.py").write_text("def route(statement):\n    return None\n")
    config = config_with(toml, module_dir,
                         'query_parser_enabled = true\nplugin_module = "plugin_test_ok"')
    plugins = build_plugins(config, "app")
    assert plugins is not None and plugins.hook is not None


@pytest.mark.parametrize(("source", "why"), [
    (None, "cannot import 'plugin_test_bad': ModuleNotFoundError"),
    ("def route(:\n", "cannot import 'plugin_test_bad': SyntaxError"),
    ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ("ROUTE = 1\n", "has no function route(statement)"),
])
def test_a_module_that_cannot_be_used_refuses_the_config_with_its_key(
        module_dir: Path, toml: Callable[..., str], source: str | None, why: str) -> None:
    if source is not None:
        (module_dir / "plugin_test_bad.py").write_text(source)
    config = config_with(toml, module_dir,
                         'query_parser_enabled = true\nplugin_module = "plugin_test_bad"')
    with pytest.raises(ConfigError) as refused:
        build_plugins(config, "app")
    assert refused.value.key_path == "pools.app.plugin_module"
    assert why in str(refused.value)


def test_plugin_module_needs_the_query_parser(toml: Callable[..., str]) -> None:
    with pytest.raises(ConfigError, match="plugin_module: requires query_parser_enabled"):
        parse_config(toml(pool='plugin_module = "x"'))


def test_which_pools_get_plugins(toml: Callable[..., str]) -> None:
    logger = "[plugins.query_logger]\nenabled = true"
    assert build_plugins(parse_config(toml(extra=logger)).config, "app") is None  # no parser
    on = parse_config(toml(pool="query_parser_enabled = true", extra=logger)).config
    plugins = build_plugins(on, "app")
    assert plugins is not None and plugins.query_logger
    off = "[plugins.query_logger]\nenabled = false"
    assert build_plugins(parse_config(toml(pool="query_parser_enabled = true",
                                           extra=off)).config, "app") is None
    own = parse_config(toml(pool="query_parser_enabled = true\n"
                                 "[pools.app.plugins.table_access]\nenabled = true\n"
                                 "tables = ['t']", extra=logger)).config
    replaced = build_plugins(own, "app")  # the pool's table replaces the global one
    assert replaced is not None and not replaced.query_logger
    assert replaced.denied_tables == {"t"}


def test_load_hook_returns_the_function(module_dir: Path) -> None:
    (module_dir / "plugin_test_fn.py").write_text("def route(statement):\n    return 1\n")
    assert load_hook("plugin_test_fn", module_dir)(None) == 1  # type: ignore[arg-type]
