"""The plugins of one pool, and the three calls the idle path makes when a pool has any.

pgcat runs its plugins on every parsed Query and Parse, in the order query_logger,
intercept, table_access (reference/pgcat.md §9.1); ours, `plugin_module`, runs last, once
the route is known. Only pools with `query_parser_enabled` and some plugin switched on get
a PoolPlugins (a pool's `plugins` table replaces the global `[plugins]`); the router of a
pool without one has `plugins = None`, and the fixed-route path never looks.

- `answer_query` / `answer_batch`: before routing, log the statement (query_logger) and
  answer it here if it is intercepted (intercept.py), for a Query or an extended-protocol
  batch up to its Sync.
- `check`: after routing, refuse a statement naming a table of table_access (42501, the
  statement is not sent, the session goes on), then ask the plugin_module hook (hook.py),
  which may refuse the statement or move its transaction to another role or shard.

Like routing, these see what starts a transaction: every statement of an autocommit
client in transaction mode, and the first statement of an explicit transaction. The rest
of a transaction (and of a session-mode session after its first query) is seen on its
way to the server (linked.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from parser import Classification, KeyStatus, ParamRef

from ..activity import table_name
from ..protocol import backend as be
from ..protocol.framing import PARSE, split_messages
from ..router import Route, RouteError
from .hook import Hook, Refuse, RouteTo, Statement, call_hook
from .intercept import Interceptor

if TYPE_CHECKING:
    from ..frontend.session import ClientSession
    from ..router import Router

log = logging.getLogger("pgcat_py.plugins")

INSUFFICIENT_PRIVILEGE = "42501"
# The router's reasons for a statement after a BEGIN in the same batch (router.py).
_TRANSACTION_REASONS = ("explicit transaction", "read-only transaction")


class PluginRefusal(RouteError):
    """A plugin refused the statement (table_access, or the plugin_module hook)."""


class PoolPlugins:
    """See the module docstring."""

    def __init__(self, pool_name: str, *, query_logger: bool = False,
                 interceptor: Interceptor | None = None,
                 denied_tables: frozenset[str] = frozenset(), hook: Hook | None = None) -> None:
        self.pool_name = pool_name
        self.query_logger = query_logger
        self.interceptor = interceptor
        self.denied_tables = frozenset(t.lower() for t in denied_tables)
        self.hook = hook

    # --- before routing -------------------------------------------------------------
    def answer_query(self, session: ClientSession, sql: str | None, end: int) -> bool:
        """Log a Query; answer it (consumed, ReadyForQuery included) if intercepted."""
        if sql is None:
            return False
        if self.query_logger:
            self._log(session, sql)
        if self.interceptor is None or _in_failed_transaction(session):
            return False
        canned = self.interceptor.match(sql)
        if canned is None:
            return False
        session.consume(end)
        session.write(canned.simple_answer(session.user, session.database)
                      + be.ReadyForQuery(_status(session)).encode())
        return True

    def answer_batch(self, session: ClientSession, end: int) -> bool:
        """Log the Parses of the extended-protocol batch ``_rbuf[:end]``; answer the batch
        (consumed) if every statement in it is intercepted."""
        if not self.query_logger and self.interceptor is None:
            return False
        messages, _ = split_messages(memoryview(session._rbuf)[:end])
        if self.query_logger:
            for msg_type, payload in messages:
                if msg_type == PARSE:
                    self._log(session, parse_text(payload))
        if self.interceptor is None or _in_failed_transaction(session):
            return False
        answer = self.interceptor.batch_reply(messages, session.statements, session.user,
                                              session.database, _status(session))
        if answer is None:
            return False
        statements = session.own_statements() if answer.named else session.statements
        for name, sql in answer.named.items():
            if sql is None:
                statements.pop(name, None)
            else:
                statements[name] = sql
        session.consume(end)
        session.write(answer.reply)
        return True

    def _log(self, session: ClientSession, sql: str) -> None:
        log.info("[pool: %s][user: %s] %s", session.database, session.user, sql.strip())

    # --- after routing --------------------------------------------------------------
    def check(self, session: ClientSession, router: Router, sql: str | None,
              more: list[str | None] | None, route: Route) -> Route:
        """The route, maybe moved by the hook; PluginRefusal if a plugin refuses one of
        the statements (``sql`` and those pipelined behind it in ``more``)."""
        for index, text in enumerate([sql, *(more or ())]):
            if text is None:
                continue
            c = router.classify(text)
            if c is None:
                continue
            if self.denied_tables:
                self._check_tables(c)
            if self.hook is not None:
                decision = call_hook(self.hook, self._statement(session, text, c, route))
                if isinstance(decision, Refuse):
                    raise PluginRefusal(decision.message, sqlstate=decision.sqlstate)
                if isinstance(decision, RouteTo) and index == 0:
                    route = self._moved(router, route, decision)
        return route

    def _check_tables(self, c: Classification) -> None:
        for table in c.tables:
            name = table_name(table)
            if name.lower() in self.denied_tables:
                raise PluginRefusal(f'permission for table "{name}" denied',
                                    sqlstate=INSUFFICIENT_PRIVILEGE)

    def _statement(self, session: ClientSession, sql: str, c: Classification,
                   route: Route) -> Statement:
        keys = c.shard_keys
        values = (tuple(k for k in keys.keys if not isinstance(k, ParamRef))
                  if keys.status is KeyStatus.FOUND else ())
        in_transaction = (session.held is not None
                          or route.reason.startswith(_TRANSACTION_REASONS))
        return Statement(sql, session.database, session.user, c.is_write,
                         tuple(kind.value for kind in c.kinds), c.tables, values,
                         route.shard, route.role, route.reason, in_transaction)

    def _moved(self, router: Router, route: Route, decision: RouteTo) -> Route:
        shard = route.shard
        if decision.shard is not None:
            try:
                shard = router.check_shard(decision.shard)
            except RouteError as exc:
                log.error("plugin_module of pool %s: %s; ignored", self.pool_name, exc)
                return route
        role = decision.role or route.role
        if (shard, role) == (route.shard, route.role):
            return route
        return Route(shard, role, decision.reason)


def _in_failed_transaction(session: ClientSession) -> bool:
    held = session.held
    return held is not None and held.failed


def _status(session: ClientSession) -> str:
    """The ReadyForQuery status: in a transaction while a BEGIN the proxy answered waits."""
    held = session.held
    return "I" if held is None else held.status.decode()


def parse_text(payload: bytes) -> str:
    start = payload.index(0) + 1
    return payload[start:payload.index(0, start)].decode(errors="replace")

