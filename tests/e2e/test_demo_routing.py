"""The demo's three routing lines, pasted as a newcomer would: each answers from the server
its comment names (the replica, the primary, the key's shard)."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from pgcat_py import demo
from pgcat_py.localpg import Topology, find_pg_bin, free_port
from pgcat_py.localpg.commands import client_binary

from .conftest import ProxyRunner


def test_demo_routing_lines_answer_from_the_servers_they_promise(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    demo._create_demo_tables(pg_topology)
    port = free_port()
    proxy_runner(demo.build_demo_config(pg_topology, port))
    psql = client_binary(find_pg_bin(), "psql")
    lines = demo.routing_help(pg_topology, port).splitlines()[1:]
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    assert len(pairs) == 3
    for comment, command in pairs:
        expected = re.search(r"\((\d+)\):$", comment)
        assert expected is not None, comment
        argv = shlex.split(command)
        assert argv[0] == "psql"
        done = subprocess.run([psql, *argv[1:]], capture_output=True, text=True, timeout=30,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[0] == expected.group(1), (comment, done.stdout)


@pytest.mark.parametrize("key", [demo.DEMO_KEY])
def test_demo_key_is_not_on_the_default_shard(pg_topology: Topology, key: int) -> None:
    from sharding import pg_bigint_hash

    assert pg_bigint_hash(key, len(pg_topology.shards)) != 0
