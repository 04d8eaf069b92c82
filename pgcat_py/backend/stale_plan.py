"""Recovering "cached plan must not change result type" (0A000) by preparing again.

After DDL changes the columns a prepared statement returns, PostgreSQL refuses the next Bind
of a plan made before it. In transaction mode the pool's statements are shared by server
connections (frontend/statements.py): a client that prepared its statement after the DDL,
and knows the new result shape, still meets a connection that planned it before, and fails
for no fault of its own. No pooler recovers this; here the batch is sent once more, right
after the statement is closed and prepared again on that connection.

Only a batch that can run twice with nothing seen: one Bind of a named statement first, then
only Describe, Execute, Flush and Sync, with a Describe among them (so the client learns the
new result shape with the rows: libpq, psycopg, pgbench send one every time), nothing else in
flight, and the error as the very first reply, leaving the server outside a transaction block
(nothing ran). Inside an explicit transaction the error reaches the client, as from PostgreSQL.
"""

from __future__ import annotations

import struct
from typing import Final

from ..protocol.backend import READY_IDLE
from ..protocol.framing import DESCRIBE
from ..protocol.frontend import SYNC_MESSAGE
from .prepared import DROP_CLOSE, DROP_PARSE, Expectation, StatementRegistry

_LENGTH: Final = struct.Struct("!I")
_RETRYABLE: Final = frozenset(b"BDEHS")  # Bind, Describe, Execute, Flush, Sync
_STALE_PLAN_CODE: Final = b"C0A000\0"
# The routine field names the check in any server language (lc_messages may translate M).
_STALE_PLAN_ROUTINE: Final = b"RRevalidateCachedQuery\0"


def retryable(batch: bytes) -> bool:
    """Whether this rewritten batch could be sent again after a stale-plan error."""
    if batch[:1] != b"B" or not batch.endswith(SYNC_MESSAGE):
        return False
    described = False
    pos, n = 0, len(batch)
    while pos < n:
        msg_type = batch[pos]
        if msg_type not in _RETRYABLE:
            return False
        described = described or msg_type == DESCRIBE
        pos += 1 + int.from_bytes(batch[pos + 1:pos + 5])
    return described


def is_stale_plan_error(data: bytes) -> bool:
    """``data`` is exactly the stale-plan ErrorResponse, its ReadyForQuery still to come."""
    if len(data) < 6 or data[0] != ord("E"):
        return False
    error = data[5:]
    return (len(data) == 1 + int.from_bytes(data[1:5]) and _STALE_PLAN_CODE in error
            and _STALE_PLAN_ROUTINE in error)


def is_stale_plan_reply(data: bytes) -> bool:
    """``data`` is exactly the stale-plan ErrorResponse and a ReadyForQuery 'I'."""
    if len(data) < 11 or data[0] != ord("E"):
        return False
    end = 1 + int.from_bytes(data[1:5])
    error = data[5:end]
    return (len(data) == end + 6 and data.endswith(READY_IDLE)
            and _STALE_PLAN_CODE in error and _STALE_PLAN_ROUTINE in error)


def prepared_again(batch: bytes, registry: StatementRegistry
                   ) -> tuple[bytes, list[Expectation]] | None:
    """The batch after a Close and a Parse of the statement its Bind names, and the replies
    to drop for those two; None when the statement is not one of the pool's."""
    portal_end = batch.index(0, 5) + 1
    statement = registry.named(batch[portal_end:batch.index(0, portal_end) + 1])
    if statement is None:
        return None
    body = b"S" + statement.name
    close = b"C" + _LENGTH.pack(4 + len(body)) + body
    return (close + statement.parse + batch,
            [(DROP_CLOSE, b""), (DROP_PARSE, statement.name)])
