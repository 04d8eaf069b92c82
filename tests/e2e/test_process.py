"""The proxy as an operating-system process: limits it sets for itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import proxy_config, start_proxy


def open_files_soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


def test_open_files_limit_is_raised_for_max_client_conn(pg_topology: Topology,
                                                        tmp_path: Path) -> None:
    text = proxy_config(pg_topology, port=free_port(),
                        extra_general={"max_client_conn": 3000})
    # Start it the way a default shell would: soft limit 1024. `exec` keeps the pid.
    command = ["bash", "-c", f'ulimit -Sn 1024 && exec {sys.executable} -m pgcat_py "$0"']
    with start_proxy(text, tmp_path, command=command) as proxy:
        assert open_files_soft_limit(proxy.pid) >= 3000


def second_proxy_exit(config_path: Path) -> tuple[int, str]:
    """Start another pgcat-py on `config_path`; its exit code and output (it must not serve)."""
    done = subprocess.run([sys.executable, "-m", "pgcat_py", str(config_path)],
                          capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_proxy_on_a_taken_port_refuses_to_start(
        pg_topology: Topology, tmp_path: Path, workers: int) -> None:
    # With SO_REUSEPORT the second would bind too and take half the new clients unseen.
    text = proxy_config(pg_topology, port=free_port(),
                        extra_general={"worker_threads": workers})
    with start_proxy(text, tmp_path / "first"):
        (tmp_path / "second.toml").write_text(text)
        code, output = second_proxy_exit(tmp_path / "second.toml")
    assert code == 78, output
    assert "cannot start" in output and "in use" in output, output
