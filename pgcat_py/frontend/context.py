"""What a client session needs from the running proxy, as a Protocol (the App implements it).

Keeping this narrow lets the session be tested against a small fake, and keeps the import
graph one-way: frontend does not import app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..auth_users import Login
    from ..conn import SocketOptions
    from ..pool.cluster import Cluster
    from ..stats import Stats
    from ..workers.layout import Worker
    from .auth import Credentials
    from .parking import ParkingLot
    from .session import ClientSession
    from .tls import ClientTls


class ProxyContext(Protocol):
    shutting_down: bool
    client_login_timeout: float
    client_tls: ClientTls | None  # built once at startup; None: SSLRequest gets 'N'
    socket_options: SocketOptions
    stats: Stats
    worker: Worker  # this process's place among the workers (its cancel keys name it)
    parking: ParkingLot  # idle clients without a transport

    def client_connected(self, session: ClientSession) -> None: ...
    def client_disconnected(self, session: ClientSession) -> None: ...
    def client_logged_in(self, session: ClientSession) -> None: ...
    def too_many_clients(self, headroom: int = 0) -> bool: ...
    def is_admin_database(self, database: str) -> bool: ...
    def admin_credentials(self, user: str) -> Credentials | None: ...
    def auth_query_login(self, database: str, user: str) -> Login | None: ...
    def find_pool(self, database: str, user: str
                  ) -> tuple[Cluster, Credentials, str]: ...
    def cancel(self, process_id: int, secret_key: int) -> None: ...
    async def serve_admin(self, session: ClientSession) -> None: ...
