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


def test_the_prewarmer_plugin_runs_its_queries_on_every_new_server_connection(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    text = proxy_config(pg_topology, port=free_port(), pool_size=2,
                        extra_pool={"default_role": "primary"})
    text += ('\n[plugins.prewarmer]\nenabled = true\n'
             'queries = ["SET application_name = \'prewarmed\'", '
             '"SELECT set_config(\'pgcatpy.warm\', \'yes\', false)"]\n')
    proxy = proxy_runner(text)
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('pgcatpy.warm', true)").fetchone()
        assert row == ("yes",)


def test_a_failing_prewarm_query_fails_the_connection(pg_topology: Topology,
                                                      proxy_runner: ProxyRunner) -> None:
    text = proxy_config(pg_topology, port=free_port(), pool_size=1,
                        extra_pool={"default_role": "primary"})
    text += '\n[plugins.prewarmer]\nenabled = true\nqueries = ["SELECT 1/0"]\n'
    proxy = proxy_runner(text)
    with pytest.raises(psycopg.OperationalError,
                       match="prewarm query on app_shard_0_primary failed: division by zero"):
        psycopg.connect(dsn(proxy))  # the login needs a server: none can be made ready


def _mirrored_config(topology: Topology, mirror_port: int) -> str:
    text = proxy_config(topology, port=free_port(), pool_size=2,
                        extra_pool={"default_role": "primary"})
    return text.replace('[pools.app.shards.0]\n',
                        f'[pools.app.shards.0]\nmirrors = [["127.0.0.1", {mirror_port}, 0]]\n')


def test_mirrors_get_a_copy_of_every_statement(pg_topology: Topology,
                                               proxy_runner: ProxyRunner) -> None:
    mirror = pg_topology.shards[0]
    for node in (pg_topology.primary, mirror):
        with psycopg.connect(node.superuser_dsn("app"), autocommit=True) as su:
            su.execute("DROP TABLE IF EXISTS mirrored; CREATE TABLE mirrored (n int);"
                       "GRANT ALL ON mirrored TO app")
    proxy = proxy_runner(_mirrored_config(pg_topology, mirror.port))
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        for n in range(5):
            conn.execute("INSERT INTO mirrored VALUES (%s)", (n,))
    with psycopg.connect(mirror.superuser_dsn("app"), autocommit=True) as su:
        assert wait_for(lambda: su.execute("SELECT count(*) FROM mirrored").fetchone() == (5,))
        assert su.execute("SELECT sum(n) FROM mirrored").fetchone() == (10,)


def test_a_dead_mirror_never_slows_or_fails_the_client(pg_topology: Topology,
                                                       proxy_runner: ProxyRunner) -> None:
    proxy = proxy_runner(_mirrored_config(pg_topology, free_port()))  # nobody listens there
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        for n in range(300):
            assert conn.execute("SELECT %s::int", (n,)).fetchone() == (n,)
    assert "mirror app_shard_0_primary_mirror_0 unreachable" in proxy.log_text()


def test_validate_config_names_unreachable_servers_and_serves_the_rest(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    dead = free_port()
    text = proxy_config(pg_topology, port=free_port(), pool_size=2,
                        extra_general={"validate_config": True},
                        extra_pool={"default_role": "primary"})
    proxy = proxy_runner(text.replace(f'"127.0.0.1", {pg_topology.replicas[0].port}, "replica"',
                                      f'"127.0.0.1", {dead}, "replica"'))
    assert wait_for(lambda: "validate_config: could not connect to server "
                    "app_shard_0_replica_0" in proxy.log_text()), proxy.log_tail()
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_dns_cache_connects_by_name(pg_topology: Topology,
                                        proxy_runner: ProxyRunner) -> None:
    text = proxy_config(pg_topology, port=free_port(), pool_size=2,
                        extra_general={"dns_cache_enabled": True, "dns_max_ttl": 1},
                        extra_pool={"default_role": "primary"})
    proxy = proxy_runner(text.replace(f'"127.0.0.1", {pg_topology.primary.port}, "primary"',
                                      f'"localhost", {pg_topology.primary.port}, "primary"'))
    for _ in range(3):
        with psycopg.connect(dsn(proxy), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
