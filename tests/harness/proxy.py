"""Running pgcat-py as a real process for e2e tests, and writing its pgcat.toml.

`start_proxy` runs `python -m pgcat_py CONFIG` with its output in `workdir/proxy.log` and
returns once the configured port accepts TCP. `proxy_config` writes the pgcat.toml of a
topology: admin admin/admin, pool `app` (database `app`, primary + replica), optionally a
pool `sharded` over the shard primaries.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeAlias

from pgcat_py.localpg import Topology

TomlValue: TypeAlias = "str | int | float | bool | Sequence[TomlValue] | Mapping[str, TomlValue]"

START_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
PGCAT_DEFAULT_HOST = "0.0.0.0"  # pgcat's code defaults (reference/pgcat.md §1.1)
PGCAT_DEFAULT_PORT = 5432
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
APP_USERS: tuple[Mapping[str, TomlValue], ...] = ({"username": "app", "password": "app"},)


class ProxyStartError(RuntimeError):
    """The proxy exited or never listened; the message carries its log tail."""


class ProxyProcess:
    """A running proxy; `stop()` (or leaving a `with` block) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], config_path: Path, log_path: Path):
        self.process = process
        self.config_path = config_path
        self.log_path = log_path
        self.host, self.port = listen_address(config_path.read_text())

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired if it is still running."""
        return self.process.wait(timeout)

    def stop(self, grace: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL if it is still alive after `grace` seconds; the exit code."""
        if self.is_running():
            self.process.terminate()
            try:
                return self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_proxy(
    config_text: str,
    workdir: Path,
    *,
    timeout: float = START_TIMEOUT_S,
    command: Sequence[str] | None = None,
) -> ProxyProcess:
    """Write workdir/pgcat.toml, start the proxy on it, wait until its port accepts TCP.

    `command` replaces `python -m pgcat_py CONFIG` (the config path is appended to it).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "pgcat.toml"
    config_path.write_text(config_text)
    log_path = workdir / "proxy.log"
    argv = [*(command or [sys.executable, "-m", "pgcat_py"]), str(config_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
        )
    proxy = ProxyProcess(process, config_path, log_path)
    try:
        _wait_until_listening(proxy, timeout)
    except BaseException:
        proxy.stop()
        raise
    return proxy


def listen_address(config_text: str) -> tuple[str, int]:
    """Where a client reaches the proxy: [general] host/port; 0.0.0.0 means loopback."""
    general = tomllib.loads(config_text).get("general", {})
    host = str(general.get("host", PGCAT_DEFAULT_HOST))
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return connect_host, int(general.get("port", PGCAT_DEFAULT_PORT))


def _wait_until_listening(proxy: ProxyProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proxy.is_running():
            raise ProxyStartError(
                f"proxy exited with {proxy.process.returncode} before listening on "
                f"{proxy.host}:{proxy.port}\n--- {proxy.log_path} ---\n{proxy.log_tail()}"
            )
        try:
            with socket.create_connection((proxy.host, proxy.port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ProxyStartError(
                f"proxy did not listen on {proxy.host}:{proxy.port} within {timeout} s\n"
                f"--- {proxy.log_path} ---\n{proxy.log_tail()}"
            )
        time.sleep(0.05)


def proxy_config(
    topology: Topology,
    *,
    port: int,
    pool_mode: str = "transaction",
    pool_size: int = 5,
    users: Sequence[Mapping[str, TomlValue]] = APP_USERS,
    extra_general: Mapping[str, TomlValue] | None = None,
    extra_pool: Mapping[str, TomlValue] | None = None,
    sharded_pool: bool = False,
) -> str:
    """pgcat.toml for `topology`. Each user is a [pools.X.users.N] table; pool_size is filled in.

    `extra_general` / `extra_pool` add keys to [general] / [pools.app] (and [pools.sharded]).
    """
    general: dict[str, TomlValue] = {"host": "127.0.0.1", "port": port}
    general |= {"admin_username": ADMIN_USER, "admin_password": ADMIN_PASSWORD}
    pool: dict[str, TomlValue] = {"pool_mode": pool_mode, **(extra_pool or {})}
    main_servers: list[TomlValue] = [["127.0.0.1", topology.primary.port, "primary"]]
    main_servers += [["127.0.0.1", node.port, "replica"] for node in topology.replicas]
    parts = [_table("general", {**general, **(extra_general or {})})]
    parts += _pool_tables("app", pool, users, pool_size, [main_servers])
    if sharded_pool:
        shard_servers: list[list[TomlValue]] = [
            [["127.0.0.1", shard.port, "primary"]] for shard in topology.shards
        ]
        parts += _pool_tables("sharded", pool, users, pool_size, shard_servers)
    return "\n".join(parts)


def _pool_tables(
    name: str,
    pool: Mapping[str, TomlValue],
    users: Sequence[Mapping[str, TomlValue]],
    pool_size: int,
    shards: Sequence[Sequence[TomlValue]],
) -> list[str]:
    tables = [_table(f"pools.{name}", pool)]
    for index, user in enumerate(users):
        tables.append(_table(f"pools.{name}.users.{index}", {"pool_size": pool_size, **user}))
    for index, servers in enumerate(shards):
        shard: dict[str, TomlValue] = {"database": "app", "servers": list(servers)}
        tables.append(_table(f"pools.{name}.shards.{index}", shard))
    return tables


def _table(header: str, values: Mapping[str, TomlValue]) -> str:
    lines = [f"[{header}]", *(f"{key} = {toml_value(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def toml_value(value: TomlValue) -> str:
    """A TOML literal; a JSON string is a valid TOML basic string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    return "[" + ", ".join(toml_value(item) for item in value) + "]"
