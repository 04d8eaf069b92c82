"""The proxy as an operating-system process: limits it sets for itself."""

from __future__ import annotations

import sys
from pathlib import Path

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
