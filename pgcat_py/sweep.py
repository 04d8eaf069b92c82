"""The client sweep: clients that hold a server and stopped doing their part, ended.

A sweep every fraction of a second rather than a timer per client, so the relay pays
nothing per message:
- idle_client_in_transaction_timeout: a client inside a transaction that sends nothing for
  that long gets PostgreSQL's own FATAL 25P03 (its transaction is rolled back, the server
  goes back to the pool);
- client_stall_timeout (ours): a client that stopped in the middle of a message it was
  sending (the server waits for the rest), or stopped reading a result (the server waits to
  write), with no progress for that long, gets FATAL 08006 and its server is closed: either
  would hold the server forever, and PostgreSQL's own timeouts do not run while it waits on
  the client. PgBouncer's query_timeout plays this role there.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .protocol.errors import CONNECTION_FAILURE, IdleInTransactionTimeout, ProxyError
from .protocol.framing import IDLE

if TYPE_CHECKING:
    from .app import App
    from .frontend.session import ClientSession

log = logging.getLogger(__name__)


class ClientSweep:
    def __init__(self, app: App) -> None:
        self.app = app
        # Linked clients seen stalled: (server bytes sent, received) then, and since when.
        self._stalled: dict[ClientSession, tuple[tuple[int, int], float]] = {}

    def interval(self) -> float:
        g = self.app.config.general
        timeouts = [t for t in (g.idle_client_in_transaction_timeout_s,
                                g.client_stall_timeout_s) if t]
        return min(0.5, *(t / 4 for t in timeouts)) if timeouts else 1.0

    def run_once(self) -> None:
        g = self.app.config.general
        idle_timeout, stall_timeout = (g.idle_client_in_transaction_timeout_s,
                                       g.client_stall_timeout_s)
        now = time.monotonic()
        stalled: dict[ClientSession, tuple[tuple[int, int], float]] = {}
        for session in list(self.app.sessions):
            server = session.server
            if server is None:
                continue
            if (idle_timeout and server.pending <= 0 and server.status != IDLE
                    and server.answered_at and now - server.answered_at > idle_timeout):
                log.info("client %s: idle in transaction for %.1f s, closed",
                         session.process_id, now - server.answered_at)
                session.fatal(IdleInTransactionTimeout())
                continue
            if stall_timeout and self._is_stalled(session, now, stalled, stall_timeout):
                session.fatal(ProxyError(
                    "terminating connection: the client stopped sending or reading in the "
                    f"middle of a message for {stall_timeout:.0f} s (client_stall_timeout)",
                    sqlstate=CONNECTION_FAILURE, severity="FATAL"))
                # A client that reads nothing would keep a closing transport (and so its
                # server) forever waiting to flush: drop what it did not read.
                session.transport.abort()
        self._stalled = stalled

    def _is_stalled(self, session: ClientSession, now: float,
                    stalled: dict[ClientSession, tuple[tuple[int, int], float]],
                    timeout: float) -> bool:
        server = session.server
        assert server is not None
        # (the relay keeps no public flag for a paused client writer: read it here)
        waiting_on_client = not session.scanner.at_boundary or \
            session._write_paused
        if not waiting_on_client:
            return False
        progress = (server.bytes_sent, server.bytes_received)
        seen = self._stalled.get(session)
        since = seen[1] if seen is not None and seen[0] == progress else now
        stalled[session] = (progress, since)
        if now - since > timeout:
            log.warning("client %s: no progress for %.0f s in the middle of a message, "
                        "closed", session.process_id, now - since)
            return True
        return False
