"""Local PostgreSQL topologies for the test suite and `pgcat-py demo`.

A topology is a main primary with streaming replicas plus shard primaries (each shard its
own cluster), all on 127.0.0.1, made from the local server binaries under one base
directory: `BASE/<node>` data dirs, `BASE/run` sockets, `BASE/log/<node>.log`,
`BASE/topology.json`. Usage:

    topology = create_topology(Path(tempfile.mkdtemp(prefix="pgcat-py-")))
    try:
        psycopg.connect(topology.primary.dsn())   # app/app on database app
    finally:
        topology.stop()
"""

from pgcat_py.localpg.commands import LocalPgError, PgBinariesNotFound, find_pg_bin
from pgcat_py.localpg.create import create_topology, free_port, free_ports, port_is_free
from pgcat_py.localpg.node import Node, query_value, run_sql
from pgcat_py.localpg.roles import (
    APP_DATABASES,
    APP_PASSWORD,
    APP_USER,
    AUTH_TEST_ROLES,
    MD5_ROLE,
    SCRAM_ROLE,
    TRUST_ROLE,
    LoginRole,
)
from pgcat_py.localpg.topology import TOPOLOGY_FILE, Topology, has_topology, load_topology

__all__ = [
    "APP_DATABASES",
    "APP_PASSWORD",
    "APP_USER",
    "AUTH_TEST_ROLES",
    "MD5_ROLE",
    "SCRAM_ROLE",
    "TOPOLOGY_FILE",
    "TRUST_ROLE",
    "LocalPgError",
    "LoginRole",
    "Node",
    "PgBinariesNotFound",
    "Topology",
    "create_topology",
    "find_pg_bin",
    "free_port",
    "free_ports",
    "has_topology",
    "load_topology",
    "port_is_free",
    "query_value",
    "run_sql",
]
