"""The e2e proxy runner itself: it waits for the port, reports a dead proxy with its log,
and always gets rid of the process. A tiny Python listener stands in for the proxy, except
in the last test, which runs the real one on the harness's config."""

from __future__ import annotations

import signal
import socket
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import (
    ProxyProcess,
    ProxyStartError,
    TomlValue,
    listen_address,
    proxy_config,
    start_proxy,
    toml_value,
)

# Listens on the config's port after a short delay, logs signals, exits 0 on SIGTERM
# unless told to ignore it.
STAND_IN = """
import signal, socket, sys, time, tomllib
config = tomllib.loads(open(sys.argv[-1]).read())["general"]
mode = config.get("mode", "serve")
print("stand-in starting", flush=True)
if mode == "crash":
    sys.exit("stand-in: cannot start")
signal.signal(signal.SIGHUP, lambda *_: print("got SIGHUP", flush=True))
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(0.3)
if mode != "mute":
    server = socket.create_server((config["host"], config["port"]))
while True:
    time.sleep(0.05)
"""
COMMAND = [sys.executable, "-c", STAND_IN]


def config(mode: str) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f'[general]\nhost = "127.0.0.1"\nport = {port}\nmode = "{mode}"\n'


def test_start_waits_until_the_port_accepts(tmp_path: Path) -> None:
    with start_proxy(config("serve"), tmp_path, command=COMMAND) as proxy:
        socket.create_connection((proxy.host, proxy.port), timeout=1).close()
        proxy.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "got SIGHUP" not in proxy.log_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "got SIGHUP" in proxy.log_text()
        assert proxy.stop() == 0
    assert (tmp_path / "pgcat.toml").read_text().endswith('mode = "serve"\n')


def test_proxy_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ProxyStartError, match=r"(?s)exited with 1.*cannot start"):
        start_proxy(config("crash"), tmp_path, command=COMMAND)


def test_proxy_that_never_listens_times_out_and_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(ProxyStartError, match=r"(?s)did not listen.*stand-in starting"):
        start_proxy(config("mute"), tmp_path, command=COMMAND, timeout=1)


def test_stop_kills_a_proxy_that_ignores_sigterm(tmp_path: Path) -> None:
    proxy = start_proxy(config("stubborn"), tmp_path, command=COMMAND)
    assert proxy.stop(grace=0.5) == -signal.SIGKILL
    assert not proxy.is_running()


def test_listen_address_uses_pgcat_defaults() -> None:
    assert listen_address("[general]\n") == ("127.0.0.1", 5432)
    assert listen_address('[general]\nhost = "::1"\nport = 7000\n') == ("::1", 7000)


def test_toml_values_round_trip_through_tomllib() -> None:
    value: dict[str, TomlValue] = {
        "s": 'quote " and \\ and é',
        "n": [1, 2.5, True],
        "t": {"k": "v"},
    }
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value


def test_real_proxy_serves_the_harness_config(
    pg_topology: Topology, proxy_runner: Callable[[str], ProxyProcess]
) -> None:
    port = free_port()
    proxy = proxy_runner(proxy_config(pg_topology, port=port, sharded_pool=True))
    server_ports = {node.port for node in pg_topology.nodes()}
    for database in ("app", "sharded"):
        dsn = f"postgresql://app:app@127.0.0.1:{proxy.port}/{database}"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_user, inet_server_port()").fetchone()
        assert row is not None
        assert row[0] == "app"
        assert row[1] in server_ports
    assert proxy.stop() == 0
