"""The plugins on statements that reach a client's server while it holds one: the rest of
an explicit transaction, and a session-mode session after its first query.

pgcat runs its plugins on every Query and Parse (reference/pgcat.md §9.1); the idle path
(pool.py) sees only what starts a transaction, so without this a `table_access` table was
one `BEGIN` away. Only sessions of pools with plugins come here (ClientSession._link sets
the flag), so plain traffic keeps the fast path.

A chunk of whole messages is looked at message by message: query_logger logs each Query
and Parse; table_access and the plugin_module hook may refuse one. A refused statement is
not sent and the session goes on, as on the idle path, when the chunk is that statement
alone (a Query, or one extended-protocol batch up to its Sync): the server raises the
refusal in its place (a DO block), so the client gets the ErrorResponse in order and an
explicit transaction is aborted, as PostgreSQL's own error would. A lone Query that
intercept answers, with nothing in flight, is answered here. Anything else that must be refused (a
refused statement pipelined behind others, or split over several reads) cannot be cut out
of the stream cleanly: the client gets a FATAL and the server is discarded. A statement
split over reads is checked by name only (a denied table named anywhere in the bytes).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol import backend as be
from ..protocol.errors import ProtocolViolation, ProxyError
from ..protocol.framing import PARSE, QUERY, SYNC, split_messages
from ..protocol.frontend import Query
from ..router import Route
from .pool import INSUFFICIENT_PRIVILEGE, PluginRefusal, parse_text

if TYPE_CHECKING:
    from ..backend.server import ServerConnection
    from ..frontend.session import ClientSession
    from .pool import PoolPlugins

log = logging.getLogger("pgcat_py.plugins")


def checked_chunk(session: ClientSession, server: ServerConnection, data: bytes,
                  term: int) -> bool:
    """Run the pool's plugins on a client chunk about to be relayed. True when the chunk
    was answered or refused here (not to be sent); False to relay it as usual."""
    cluster = session.cluster
    plugins = cluster.router.plugins if cluster is not None else None
    if plugins is None:
        return False
    scanner = session.scanner
    chunk = data if term < 0 else data[:term]
    try:  # whole messages only when the chunk starts and ends at a message boundary
        whole = not scanner.entry_skip and not scanner.entry_head and scanner.at_boundary
        messages = split_messages(chunk)[0] if whole else None
    except ProtocolViolation:
        return False  # the server will say what is wrong with it
    refusal, lone_query = (_named_denied(plugins, chunk), None) if messages is None else \
        _check_messages(session, plugins, server, messages)
    if refusal is None:
        return lone_query is not None and _intercepted(session, plugins, server, lone_query)
    if messages is not None and _ends_at_sync([t for t, _ in messages]) and term < 0:
        # The server raises the refusal in the statement's place: the client gets the
        # error in order, and a transaction is aborted, as PostgreSQL's own would be.
        server.forward(raise_query(refusal), 1)
        return True
    session.fatal(ProxyError(refusal.message, sqlstate=refusal.sqlstate, severity="FATAL"))
    return True


def raise_query(refusal: ProxyError) -> bytes:
    """A Query that makes PostgreSQL raise ``refusal`` (its SQLSTATE and message)."""
    message = refusal.message.replace("'", "''").replace("$", "")
    return Query(f"DO $pgcat_py$BEGIN RAISE EXCEPTION USING ERRCODE = '{refusal.sqlstate}', "
                 f"MESSAGE = '{message}'; END$pgcat_py$").encode()


def _check_messages(session: ClientSession, plugins: PoolPlugins, server: ServerConnection,
                    messages: list[tuple[int, bytes]]) -> tuple[PluginRefusal | None, str | None]:
    """The first refusal of the statements in ``messages``, and the text of the chunk when
    it is one lone Query (for intercept)."""
    texts = [parse_text(payload) if msg_type == PARSE else query_text(payload)
             for msg_type, payload in messages if msg_type in (QUERY, PARSE)]
    for text in texts:
        if plugins.query_logger:
            log.info("[pool: %s][user: %s] %s", session.database, session.user, text.strip())
        try:
            _refuse_if_denied(session, plugins, server, text)
        except PluginRefusal as exc:
            return exc, None
    lone = len(messages) == 1 and messages[0][0] == QUERY
    return None, texts[0] if lone and server.pending == 0 else None


def _refuse_if_denied(session: ClientSession, plugins: PoolPlugins, server: ServerConnection,
                      text: str) -> None:
    if not plugins.denied_tables and plugins.hook is None:
        return
    route = Route(_server_shard(session), server.target.role, "inside a transaction")
    plugins.check(session, session.router, text, None, route)


def _server_shard(session: ClientSession) -> int:
    route = session.route
    return route.shard if route is not None else 0


def _named_denied(plugins: PoolPlugins, chunk: bytes) -> PluginRefusal | None:
    """A statement split over reads: refused if a denied table is named anywhere in it."""
    if not plugins.denied_tables:
        return None
    lowered = chunk.lower()
    for table in plugins.denied_tables:
        if table.encode() in lowered:
            return PluginRefusal(f'permission for table "{table}" denied',
                                 sqlstate=INSUFFICIENT_PRIVILEGE)
    return None


def _intercepted(session: ClientSession, plugins: PoolPlugins, server: ServerConnection,
                 sql: str) -> bool:
    canned = plugins.interceptor.match(sql) if plugins.interceptor is not None else None
    if canned is None:
        return False
    session.write(canned.simple_answer(session.user, session.database)
                  + be.ReadyForQuery(chr(server.status)).encode())
    return True


def _ends_at_sync(types: list[int]) -> bool:
    """One Query, or messages up to a Sync that ends the chunk: a unit PostgreSQL answers
    with one ReadyForQuery, and which can be refused whole."""
    if types == [QUERY]:
        return True
    return bool(types) and types[-1] == SYNC and SYNC not in types[:-1] \
        and QUERY not in types


def query_text(payload: bytes) -> str:
    return payload[:payload.index(0)].decode(errors="replace")
