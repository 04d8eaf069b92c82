"""examples/permify and examples/ory: both pgcat.toml files load and pass `--check`; the
clients' URIs reach a pool that exists (Permify's guide names its pool `postgres` while its
URIs ask for `permify`); the Ory config is the guide's PgBouncer setup translated; the
Compose file is consistent with it. Then each example's pgcat.toml runs for real: the same
file with only the server addresses and listen ports changed, in front of the test topology,
and a psycopg client using the example's own URI (host and port swapped) writes on the
primary and reads on the replica through it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import psycopg
import pytest
import yaml

from pgcat_py.config import parse_config
from pgcat_py.localpg import Topology, free_port, query_value, run_sql
from tests.e2e.conftest import ProxyRunner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PERMIFY = EXAMPLES / "permify"
ORY = EXAMPLES / "ory"
K8S_SERVICE = ROOT / "k8s" / "service.yaml"
PLACEHOLDER = re.compile(r'"\$\{(\w+)\}"')
# What each example's pgcat.toml reads from the environment, as its deployment sets it.
ENVIRONMENT = {
    "permify": {"PGCAT_WORKERS": "2", "PERMIFY_DB_PASSWORD": "permify-secret",
                "PGCAT_ADMIN_PASSWORD": "admin-secret"},
    "ory": {"POSTGRES_PASSWORD": "olympus-secret", "PGCAT_ADMIN_PASSWORD": "admin-secret"},
}
DIRECTORIES = {"permify": PERMIFY, "ory": ORY}


def raw_config(example: str) -> dict[str, Any]:
    return tomllib.loads((DIRECTORIES[example] / "pgcat.toml").read_text())


def only_pool(example: str) -> tuple[str, dict[str, Any]]:
    pools = raw_config(example)["pools"]
    assert len(pools) == 1
    name, pool = next(iter(pools.items()))
    return name, pool


def permify_uris() -> dict[str, str]:
    database = yaml.safe_load((PERMIFY / "permify.yaml").read_text())["database"]
    return {role: database[role]["uri"] for role in ("writer", "reader")}


def ory_dsns() -> dict[str, str]:
    values = {}
    for line in (ORY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def seconds(duration: str) -> float:
    """Permify's durations as written in its config: 240s, 10m, 1h."""
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


# --- both configs load ------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(DIRECTORIES))
def test_the_example_config_loads_with_its_environment(example: str) -> None:
    path = DIRECTORIES[example] / "pgcat.toml"
    needed = set(PLACEHOLDER.findall(path.read_text()))
    assert needed == set(ENVIRONMENT[example]), "ENVIRONMENT must match the file's ${...}"
    loaded = parse_config(path.read_text(), str(path), environ=ENVIRONMENT[example])
    assert not loaded.unknown_keys
    env = {**os.environ, **ENVIRONMENT[example]}
    done = subprocess.run([sys.executable, "-m", "pgcat_py", "--check", str(path)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("example", sorted(DIRECTORIES))
def test_the_example_splits_reads_and_writes_over_a_primary_and_a_replica(example: str) -> None:
    _, pool = only_pool(example)
    assert pool["pool_mode"] == "transaction"
    assert pool["query_parser_enabled"] and pool["query_parser_read_write_splitting"]
    (shard,) = pool["shards"].values()
    assert sorted(role for _, _, role in shard["servers"]) == ["primary", "replica"]


# --- Permify --------------------------------------------------------------------------


def test_permify_uris_reach_the_pool_through_the_service() -> None:
    pool_name, pool = only_pool("permify")
    assert pool_name == "permify"
    general = raw_config("permify")["general"]
    service = yaml.safe_load(K8S_SERVICE.read_text())
    service_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "postgres")
    users = {u["username"] for u in pool["users"].values()}
    for role, uri in permify_uris().items():
        parts = urlsplit(uri)
        assert parts.scheme == "postgresql", role
        assert parts.hostname == service["metadata"]["name"] == "pgcat-py", role
        assert parts.port == service_port == general["port"], role
        assert parts.path.lstrip("/") == pool_name, f"{role}: database is the pool's name"
        assert parts.username in users, role
        assert parse_qs(parts.query) == {"plan_cache_mode": ["force_custom_plan"],
                                         "default_query_exec_mode": ["cache_describe"]}


def test_permify_sizing_follows_the_guide() -> None:
    database = yaml.safe_load((PERMIFY / "permify.yaml").read_text())["database"]
    assert database["max_connections"] == 1 and database["min_connections"] == 0
    idle_timeout_s = raw_config("permify")["general"]["idle_timeout"] / 1000
    assert seconds(database["max_connection_idle_time"]) < idle_timeout_s


# --- Ory ------------------------------------------------------------------------------


def test_ory_config_is_the_pgbouncer_setup_translated() -> None:
    general = raw_config("ory")["general"]
    pool_name, pool = only_pool("ory")
    (user,) = pool["users"].values()
    assert general["max_client_conn"] == 1000  # MAX_CLIENT_CONN
    assert user["pool_size"] == 25  # DEFAULT_POOL_SIZE
    assert general["reserve_pool_size"] == 5  # RESERVE_POOL_SIZE
    assert general["server_reset_query"] == "DISCARD ALL"  # SERVER_RESET_QUERY
    assert user["auth_type"] == "scram-sha-256"  # AUTH_TYPE
    assert (pool_name, user["username"]) == ("olympus", "olympus")


def test_ory_dsns_point_at_pgcat_py() -> None:
    pool_name, pool = only_pool("ory")
    port = raw_config("ory")["general"]["port"]
    compose = yaml.safe_load((ORY / "compose.yaml").read_text())
    for key in ("KRATOS_DSN", "HYDRA_DSN", "ATHENA_DB_URL"):
        parts = urlsplit(ory_dsns()[key])
        assert (parts.hostname, parts.port) == ("ciam-pgcat-py", port), key
        assert parts.hostname in compose["services"]
        assert parts.path.lstrip("/") == pool_name, key
        assert parts.username == pool["users"]["0"]["username"], key
        assert parse_qs(parts.query) == {"sslmode": ["disable"]}


def test_the_compose_file_runs_pgcat_py_on_the_example_config() -> None:
    compose = yaml.safe_load((ORY / "compose.yaml").read_text())
    services = compose["services"]
    proxy = services["ciam-pgcat-py"]
    assert "./pgcat.toml:/etc/pgcat/pgcat.toml:ro" in proxy["volumes"]
    assert (ORY / proxy["build"] / "Dockerfile").is_file()
    needed = set(PLACEHOLDER.findall((ORY / "pgcat.toml").read_text()))
    assert needed <= set(proxy["environment"])
    general = raw_config("ory")["general"]
    assert proxy["stop_signal"] == "SIGINT"
    assert int(proxy["stop_grace_period"].removesuffix("s")) > general["shutdown_timeout"] / 1000
    _, pool = only_pool("ory")
    for host, port, _ in pool["shards"]["0"]["servers"]:
        assert host in services and port == 5432, host
    for volume in services["ciam-postgres"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ORY / source).exists(), source
    assert os.access(ORY / "initdb" / "10-replication.sh", os.X_OK)


# --- the examples' configs in front of real servers -----------------------------------


def ensure_role_and_database(topology: Topology, name: str, password: str) -> None:
    """The example's role and database on the test primary (the replica follows)."""
    node = topology.primary
    exists = query_value(topology.pg_bin, node,
                         f"SELECT count(*) FROM pg_roles WHERE rolname = '{name}'")
    if exists == "0":
        run_sql(topology.pg_bin, node, f"CREATE ROLE {name} LOGIN PASSWORD '{password}';")
    exists = query_value(topology.pg_bin, node,
                         f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    if exists == "0":
        run_sql(topology.pg_bin, node, f"CREATE DATABASE {name} OWNER {name};")
    topology.wait_for_replicas()


def local_config(example: str, topology: Topology, port: int) -> str:
    """The example's pgcat.toml with the listen ports and server addresses replaced, and
    nothing else: every other line is the shipped file's."""
    text = (DIRECTORIES[example] / "pgcat.toml").read_text()
    _, pool = only_pool(example)
    nodes = {"primary": topology.primary, "replica": topology.replicas[0]}
    changes: Mapping[str, str] = {
        r'\nhost = "0\.0\.0\.0"': '\nhost = "127.0.0.1"',
        r"\nport = 6432": f"\nport = {port}",
        r"\nenable_prometheus_exporter = true": "\nenable_prometheus_exporter = false",
        **{rf'\["{re.escape(host)}", 5432, "{role}"\]':
           f'["127.0.0.1", {nodes[role].port}, "{role}"]'
           for host, _, role in pool["shards"]["0"]["servers"]},
    }
    for pattern, replacement in changes.items():
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, pattern
    return text


def through(uri: str, host: str, port: int, environ: Mapping[str, str]) -> str:
    """A client URI with the Service host swapped for the local proxy. pgx sends unknown
    URI parameters as startup parameters; libpq only knows its own, so psycopg gets
    plan_cache_mode through `options` (the same StartupMessage setting) and pgx's
    default_query_exec_mode, which never reaches the server, is dropped."""
    for name, value in environ.items():
        uri = uri.replace("${" + name + "}", value)
    parts = urlsplit(uri)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params.pop("default_query_exec_mode", None)
    settings = [f"-c {k}={params.pop(k)}" for k in [k for k in params if k == "plan_cache_mode"]]
    if settings:
        params["options"] = " ".join(settings)
    query = urlencode(params, quote_via=quote)
    netloc = f"{parts.username}:{parts.password}@{host}:{port}"
    return parts._replace(netloc=netloc, query=query).geturl()


def client_uri(example: str, host: str, port: int) -> str:
    if example == "permify":
        uri = permify_uris()["writer"].replace("PASSWORD", ENVIRONMENT["permify"]
                                               ["PERMIFY_DB_PASSWORD"])
    else:
        uri = ory_dsns()["KRATOS_DSN"]
    return through(uri, host, port, ENVIRONMENT[example])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(DIRECTORIES))
def test_the_example_config_serves_reads_on_the_replica_and_writes_on_the_primary(
        example: str, pg_topology: Topology, proxy_runner: ProxyRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pool_name, pool = only_pool(example)
    user = pool["users"]["0"]["username"]
    password = next(v for k, v in ENVIRONMENT[example].items()
                    if k.endswith("DB_PASSWORD") or k == "POSTGRES_PASSWORD")
    ensure_role_and_database(pg_topology, user, password)
    for name, value in ENVIRONMENT[example].items():
        monkeypatch.setenv(name, value)
    running = proxy_runner(local_config(example, pg_topology, free_port()))
    uri = client_uri(example, running.host, running.port)
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        assert conn.info.dbname == pool_name
        conn.execute("CREATE TABLE IF NOT EXISTS example_writes (id serial PRIMARY KEY)")
        (written,) = conn.execute("INSERT INTO example_writes DEFAULT VALUES RETURNING id"
                                  ).fetchone() or (None,)
        assert written is not None
        # a plain SELECT outside a transaction: the replica
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with conn.transaction():  # an explicit read-write transaction: the primary
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        if example == "permify":
            assert conn.execute("SHOW plan_cache_mode").fetchone() == ("force_custom_plan",)
