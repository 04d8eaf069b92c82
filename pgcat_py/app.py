"""The running proxy: listener, pools, client registry, cancel forwarding, signals, shutdown.

SIGINT (and admin SHUTDOWN) shut down gracefully as pgcat does: new non-admin logins and idle
clients get 57P01, clients inside a transaction finish it first, and the process exits when
the last one is gone or after shutdown_timeout. SIGTERM exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from .admin.console import serve_admin
from .auth_users import AuthQueries, Login
from .backend.server import open_server
from .catalog import REFRESH as CATALOG_REFRESH
from .catalog import learn_write_functions
from .config import Config, ConfigError, load_config
from .config.diff import ConfigDiff
from .exporter import start_exporter
from .frontend.auth import Credentials
from .frontend.parking import ParkingLot
from .frontend.session import ClientSession
from .frontend.states import State
from .frontend.tls import client_tls
from .pool.cluster import Cluster
from .pool.counters import AVERAGE_PERIOD
from .pool.lag import measure as measure_lag
from .pool.server_pool import ServerPool
from .protocol.errors import (
    INVALID_AUTHORIZATION,
    INVALID_CATALOG_NAME,
    AdminShutdown,
    ProxyError,
)
from .protocol.startup import CancelRequest
from .reload import reload_config
from .scatter import running_servers
from .stats import RouteKey, Stats
from .sweep import ClientSweep
from .topology import PoolEntry, build_pools, credentials_for, socket_options
from .workers.layout import SINGLE, Worker, from_env, worker_count
from .workers.peers import Peers
from .workers.requests import answer_peer
from .workers.supervisor import run_supervisor

log = logging.getLogger("pgcat_py")

ADMIN_DATABASES = frozenset({"pgcat", "pgbouncer"})
MAINTENANCE_INTERVAL = 1.0  # seconds between pool reaper passes


class App:
    """One proxy process; implements frontend.context.ProxyContext."""

    def __init__(self, config: Config, worker: Worker = SINGLE) -> None:
        self.config = config
        self.worker = worker
        self.auth_queries = AuthQueries(config)  # auth_users.py
        self.pools: dict[tuple[str, str], PoolEntry] = build_pools(
            config, worker, self.auth_queries.secret_for)
        self.peers = Peers(worker, self._peer_request) if worker.count > 1 else None
        self.watch_bans()
        g = config.general
        self.admin = credentials_for(g.admin_username, g.admin_password, g.admin_auth_type)
        # A dict as a set: at 10 000 clients its table costs each 29 bytes, a set's 52.
        self.sessions: dict[ClientSession, None] = {}
        self.by_key: dict[int, ClientSession] = {}  # cancel_key(process id, secret key)
        self.parking = ParkingLot()  # idle clients without a transport (frontend/parking.py)
        self.shutting_down = False
        self.client_login_timeout = g.client_login_timeout_s  # config/general.py
        self.client_tls = client_tls(config)  # ConfigError if a TLS file does not load
        self.socket_options = socket_options(g)
        self.started_at = time.time()
        self.stats = Stats()
        self._server: asyncio.Server | None = None
        self._unix_server: asyncio.Server | None = None
        self._stopped = asyncio.Event()
        self._fast_exit = False
        self._tasks: set[asyncio.Task[None]] = set()

    # --- ProxyContext -------------------------------------------------------------------
    def client_connected(self, session: ClientSession) -> None:
        self.sessions[session] = None

    def client_disconnected(self, session: ClientSession) -> None:
        self.sessions.pop(session, None)
        if self.by_key.pop(cancel_key(session.process_id, session.secret_key), None) is not None \
                and self.config.general.log_client_disconnections:
            log.info("client disconnected: database=%s user=%s", session.database,
                     session.user)

    def client_logged_in(self, session: ClientSession) -> None:
        self.by_key[cancel_key(session.process_id, session.secret_key)] = session
        if self.config.general.log_client_connections:
            log.info("client connected: database=%s user=%s", session.database, session.user)

    def too_many_clients(self, headroom: int = 0) -> bool:
        # Every client connection counts, the one logging in included (as in PgBouncer).
        return len(self.sessions) > self.config.general.max_client_conn + headroom

    def is_admin_database(self, database: str) -> bool:
        return database in ADMIN_DATABASES

    def admin_credentials(self, user: str) -> Credentials | None:
        return self.admin if user == self.admin.username else None

    def auth_query_login(self, database: str, user: str) -> Login | None:
        return self.auth_queries.login_for(self, database, user)

    def find_pool(self, database: str, user: str) -> tuple[Cluster, Credentials, str]:
        entry = self.pools.get((database, user)) or self.auth_queries.rejoin(self, database,
                                                                             user)
        if entry is not None and entry.cluster.disabled:
            raise ProxyError(f'database "{database}" does not allow connections (DISABLE)',
                             sqlstate="55000", severity="FATAL")
        if entry is not None:
            return entry.cluster, entry.credentials, entry.pool_mode
        message = f'No pool configured for database: "{database}", user: "{user}"'
        if database in self.config.pools:
            raise ProxyError(message, sqlstate=INVALID_AUTHORIZATION, severity="FATAL")
        names = ", ".join(f'"{name}"' for name in sorted(self.config.pools))
        raise ProxyError(f"{message} (configured databases: {names})",
                         sqlstate=INVALID_CATALOG_NAME, severity="FATAL",
                         detail="A client's database name must be a [pools.NAME] of pgcat.toml.")

    def route_counts(self) -> dict[RouteKey, int]:
        """Routing decisions so far: the stats module's (retired pools'), plus each pool's
        (counted on its cluster, by route, on the hot path)."""
        return Stats.merge([self.stats.snapshot(),
                            *(entry.cluster.route_counts() for entry in self.pools.values())])

    def cancel(self, process_id: int, secret_key: int) -> None:
        owner = self.worker.owns(process_id)
        if owner != self.worker.index and self.peers is not None:
            self.peers.tell(owner, {"op": "cancel", "pid": process_id, "key": secret_key})
            return
        session = self.by_key.get(cancel_key(process_id, secret_key))
        server = session.server if session is not None else None
        # Nothing running for that key is a no-op, as in PostgreSQL; a cross-shard query
        # is cancelled on each of its servers.
        servers = [server] if server is not None else \
            running_servers(session) if session is not None else []
        for server in servers:
            request = CancelRequest(server.process_id, server.secret_key).encode()
            self._spawn(_send_cancel(server.target.host, server.target.port, request))

    async def serve_admin(self, session: ClientSession) -> None:
        await serve_admin(self, session)

    # --- lifecycle --------------------------------------------------------------------
    def _user_clients(self) -> list[ClientSession]:
        return [s for s in self.sessions if s.state is not State.ADMIN]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        g = self.config.general
        loop = asyncio.get_running_loop()
        if self.peers is not None:
            await self.peers.start()
        # SO_REUSEPORT only among our own workers: a second pgcat-py started by mistake on
        # the same port must fail to bind, not silently take half the connections.
        self._server = await loop.create_server(
            lambda: ClientSession(self), g.host, g.port,
            reuse_port=self.peers is not None, backlog=2048)
        first = self.worker.index == 0  # what cannot be shared: the Unix socket, the exporter
        if g.unix_socket_dir and first:
            self._unix_server = await loop.create_unix_server(
                lambda: ClientSession(self), unix_socket_path(g.unix_socket_dir, g.port),
                backlog=2048)
        self._spawn(self._maintain())
        if g.follow_promotions:
            self._spawn(self._follow_promotions())
        self._spawn(self._measure_lag())
        self._spawn(self._learn_write_functions())
        if g.autoreload_s:
            self._spawn(self._autoreload(g.autoreload_s))
        if g.prometheus_enabled and first:  # exporter.py; close() cancels serve_forever
            self._spawn((await start_exporter(self, self._server)).serve_forever())
        self._spawn(self._sweep_clients())
        if g.validate_config and first:
            self._spawn(self._validate_servers())
        log.info("pgcat-py listening on %s:%d%s", g.host, g.port,
                 f" (worker {self.worker.index} of {self.worker.count})" if self.peers else "")

    # --- workers (workers/) ---------------------------------------------------------
    def watch_bans(self) -> None:
        """A ban one worker sees applies in all: every pool tells the others."""
        if self.peers is None:
            return
        for (pool_name, user), entry in self.pools.items():
            for pool in entry.cluster.pools:
                pool.on_banned = partial(self._announce_ban, pool_name, user)

    def _announce_ban(self, pool_name: str, user: str, pool: ServerPool, reason: str,
                      seconds: float) -> None:
        assert self.peers is not None
        self.peers.tell_all({"op": "ban", "pool": pool_name, "user": user,
                             "name": pool.target.name, "reason": reason, "seconds": seconds})

    async def _peer_request(self, request: dict[str, Any]) -> dict[str, Any]:
        return await answer_peer(self, request)

    async def _maintain(self) -> None:
        """Reaper: idle_timeout, server_lifetime, min_pool_size, for every pool; and the
        averages of SHOW STATS every AVERAGE_PERIOD."""
        averaged = time.monotonic()
        while True:
            now = time.monotonic()
            if now - averaged >= AVERAGE_PERIOD:
                for entry in self.pools.values():
                    for pool in entry.cluster.pools:
                        pool.update_averages(now - averaged)
                averaged = now
            for entry in list(self.pools.values()):
                for pool in entry.cluster.pools:
                    try:
                        await pool.maintain(now)
                    except Exception:  # one pool's surprise must not stop the others' upkeep
                        log.exception("maintenance of %s failed", pool.target.name)
            await asyncio.sleep(MAINTENANCE_INTERVAL)

    async def _follow_promotions(self) -> None:
        """Every role_check_interval, let clusters with replicas re-learn their primary."""
        interval = self.config.general.role_check_interval / 1000
        while True:
            await asyncio.sleep(interval)
            for entry in list(self.pools.values()):
                cluster = entry.cluster
                if all(len(shard) == 1 for shard in cluster.shards):
                    continue
                try:
                    await cluster.follow_roles()
                except Exception:  # one cluster's surprise must not stop the others
                    log.exception("role check of %s failed", cluster.settings.pool_name)

    async def _validate_servers(self) -> None:
        """validate_config: log in to every server once at startup and say which cannot be
        reached, and why. pgcat refuses to start then (#823: one server down at deploy time
        keeps the whole pooler down); here the proxy serves what it can, and bans the rest
        when clients need them."""
        targets = {(p.target.host, p.target.port, p.target.database, p.target.user): p
                   for entry in self.pools.values() for p in entry.cluster.pools}
        timeout = self.config.general.connect_timeout / 1000

        async def check(pool: ServerPool) -> None:
            try:
                server = await open_server(pool.target, timeout)
            except ProxyError as exc:
                log.warning("validate_config: %s", exc.message)
                return
            server.terminate()

        await asyncio.gather(*(check(pool) for pool in targets.values()))

    async def _sweep_clients(self) -> None:
        """sweep.py: idle_client_in_transaction_timeout and client_stall_timeout; then
        idle clients are parked (frontend/parking.py)."""
        sweep = ClientSweep(self)
        while True:
            await asyncio.sleep(sweep.interval())
            try:
                sweep.run_once()
                if not self.shutting_down:
                    self.parking.sweep(self.sessions)
            except Exception:  # a bug of ours: the timeouts must still be enforced next time
                log.exception("client sweep failed")

    async def _learn_write_functions(self) -> None:
        """catalog.py: VOLATILE functions go to the primary; looked up again every REFRESH."""
        while True:
            for entry in list(self.pools.values()):
                try:
                    await learn_write_functions(entry.cluster)
                except Exception:  # one pool's surprise must not stop the others
                    log.exception("learning write functions of %s failed",
                                  entry.cluster.settings.pool_name)
            await asyncio.sleep(CATALOG_REFRESH)

    async def _measure_lag(self) -> None:
        """Every lag_check_interval, replicas' lag for the pools that route by it."""
        while True:
            await asyncio.sleep(self.config.general.lag_check_interval / 1000)
            for entry in list(self.pools.values()):
                if entry.cluster.watches_lag:
                    try:
                        await measure_lag(entry.cluster)
                    except Exception:  # one pool's surprise must not stop the others
                        log.exception("lag check of %s failed", entry.cluster.settings.pool_name)

    def reload(self) -> ConfigDiff:
        """Apply pgcat.toml again (reload.py); raises ConfigError, changing nothing, when
        the file is bad."""
        return reload_config(self)

    def reload_or_log(self) -> None:
        """SIGHUP and autoreload: a bad file is logged, and the running config goes on."""
        try:
            self.reload()
        except ConfigError as exc:
            log.error("reload refused, the running config stays: %s", exc)

    async def _autoreload(self, interval: float) -> None:
        """pgcat's autoreload: look at the file every interval, reload when it changed."""
        path = Path(self.config.path)
        seen = _mtime(path)
        while True:
            await asyncio.sleep(interval)
            now = _mtime(path)
            if now != seen:
                seen = now
                self.reload_or_log()

    def begin_shutdown(self) -> None:
        """Graceful: refuse new logins, close idle clients, let transactions finish."""
        if self.shutting_down:
            return  # a second SIGINT is ignored, as in pgcat
        self.shutting_down = True
        log.info("graceful shutdown: %d clients connected", len(self._user_clients()))
        err = AdminShutdown()
        for session in self._user_clients():
            if session.state in (State.IDLE, State.LOGIN):
                session.fatal(err)
        self._stopped.set()

    def stop_now(self) -> None:
        """SIGTERM: exit at once, also in the middle of a graceful shutdown."""
        self._fast_exit = True
        log.info("fast shutdown: %d clients connected", len(self._user_clients()))
        self._stopped.set()

    async def serve_until_stopped(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.begin_shutdown)
        loop.add_signal_handler(signal.SIGTERM, self.stop_now)
        loop.add_signal_handler(signal.SIGHUP, self.reload_or_log)
        await self.start()
        await self._stopped.wait()
        if not self._fast_exit:
            # Clients inside a transaction may finish it (their session closes at its end),
            # for at most shutdown_timeout; SIGTERM cuts this short.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.general.shutdown_timeout_s):
                    while self._user_clients() and not self._fast_exit:
                        await asyncio.sleep(0.05)
            if self._user_clients() and not self._fast_exit:
                log.warning("graceful shutdown timed out with %d clients",
                            len(self._user_clients()))
        await self.close()
        return 0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.peers is not None:
            self.peers.close()
        if self._unix_server is not None:
            self._unix_server.close()
            g = self.config.general
            with contextlib.suppress(OSError):
                Path(unix_socket_path(g.unix_socket_dir or "", g.port)).unlink()
        for session in list(self.sessions):
            session.close()
        self.parking.close()
        for entry in self.pools.values():
            entry.cluster.close()
        self.auth_queries.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)


def cancel_key(process_id: int, secret_key: int) -> int:
    """One int for the pair (both 32-bit): a tuple of two ints costs an idle client 120
    bytes in by_key, this 36."""
    return process_id << 32 | secret_key


def unix_socket_path(directory: str, port: int) -> str:
    """PostgreSQL's and PgBouncer's socket name, so `psql -h DIR -p PORT` finds it."""
    return str(Path(directory) / f".s.PGSQL.{port}")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


async def _send_cancel(host: str, port: int, request: bytes) -> None:
    """Open a fresh connection to the server and send the CancelRequest (protocol 53.2.7)."""
    try:
        async with asyncio.timeout(5):
            _reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        log.warning("could not forward cancel request to %s:%d: %s", host, port, exc)


def raise_fd_limit(config: Config) -> None:
    """Let the process hold max_client_conn clients plus every server connection: raise the
    soft RLIMIT_NOFILE as far as the hard limit allows (often 1024 soft), and say so if the
    hard limit is too low."""
    import resource

    servers = sum(len(shard.servers) * user.pool_size for pool in config.pools.values()
                  for shard in pool.shard_list for user in pool.user_list)
    wanted = config.general.max_client_conn + servers + 64  # listeners, logs, cancels
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files limit %d is below what max_client_conn and the pools need "
                    "(%d); raise it (ulimit -n, LimitNOFILE)", target, wanted)


def refuse_taken_port(host: str, port: int) -> None:
    """OSError when something listens on the port already, another pgcat-py included.

    Workers bind with SO_REUSEPORT, which a second supervisor's workers would share
    silently; a plain bind first fails on any port already taken, with or without it.
    """
    for family, kind, proto, _name, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:  # each address the workers bind
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)


def run(config_path: Path) -> int:
    """Load the config and serve until stopped; the process exit code."""
    import uvloop

    loaded = load_config(config_path)
    worker = from_env()
    if worker.count == 1:  # not started by a supervisor: maybe be one
        for warning in loaded.warnings:
            log.warning("%s", warning)
        count = worker_count(loaded.config)
        if count > 1:
            refuse_taken_port(loaded.config.general.host, loaded.config.general.port)
            return run_supervisor(config_path, count)
    raise_fd_limit(loaded.config)
    return uvloop.run(App(loaded.config, worker).serve_until_stopped())


