"""An example `plugin_module` for pgcat-py: reads of `reports` always go to a replica, and a
DELETE without WHERE is refused before it reaches PostgreSQL.

Use it with (examples/plugins/pgcat.toml does):

    [pools.app]
    query_parser_enabled = true
    plugin_module = "reports_policy"   # this file, next to pgcat.toml or on PYTHONPATH

pgcat-py imports the module when it loads the config and calls ``route(statement)`` for
each statement it routes (every statement of an autocommit client in transaction mode, the
first statement of an explicit transaction). Return None to keep the proxy's choice,
``RouteTo(role=..., shard=..., reason=...)`` to move the transaction, or
``Refuse(message, sqlstate)`` to answer with an error instead of running the statement.
An exception here is logged and counts as None. Keep it quick: it runs in the event loop.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from pgcat_py.plugins import Refuse, RouteTo, Statement

REPORT_TABLES = frozenset({"reports"})


def route(statement: Statement) -> RouteTo | Refuse | None:
    if (statement.is_read and not statement.in_transaction
            and any(table.rsplit(".", 1)[-1] in REPORT_TABLES for table in statement.tables)):
        # Reports tolerate a little replica lag, and must never load the primary.
        return RouteTo(role="replica", reason="reports on replicas")
    if "DELETE" in statement.kinds and _deletes_every_row(statement.sql):
        return Refuse("DELETE without WHERE is not allowed through this pooler; "
                      "use TRUNCATE or add a WHERE clause", sqlstate="42501")
    return None


def _deletes_every_row(sql: str) -> bool:
    try:
        trees = sqlglot.parse(sql, read="postgres")
    except Exception:
        return False  # not ours to judge: PostgreSQL will
    return any(isinstance(tree, exp.Delete) and tree.args.get("where") is None
               for tree in trees if tree is not None)
