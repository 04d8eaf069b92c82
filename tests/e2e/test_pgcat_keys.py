"""pgcat keys that used to be accepted and ignored, each doing what pgcat says it does."""

from __future__ import annotations

import psycopg
import pytest

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import proxy_config
from tests.harness.waiting import wait_for

from .conftest import ProxyRunner, dsn

pytestmark = pytest.mark.timeout(60)


def test_log_client_parameter_status_changes(pg_topology: Topology,
                                             proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(proxy_config(
        pg_topology, port=free_port(), pool_size=2,
        extra_pool={"default_role": "primary", "log_client_parameter_status_changes": True}))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        conn.execute("SET application_name = 'renamed'")
    assert wait_for(lambda: "application_name changed from '' to 'renamed'"
                    in proxy.log_text()), proxy.log_tail()
