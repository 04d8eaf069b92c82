"""TLS on both sides of the proxy, with certificates made at test time (tests/harness/certs).

Clients: psql and psycopg (libpq) with every sslmode that matters, against a proxy with a
certificate (tls_mode "prefer" and "require") and one without (SSLRequest gets 'N'); raw
sockets for what no driver sends (data behind an SSLRequest, a second SSLRequest, a broken
handshake). Servers: a PostgreSQL node of this module's own with ssl = on (the session
topology is left alone), asked with pg_stat_ssl whether the proxy's server connection is
encrypted, and refused when its certificate does not verify.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgcat_py.localpg import Topology, create_topology, free_port, run_sql
from pgcat_py.localpg.commands import give_to_server_user
from pgcat_py.protocol.startup import SSLRequest, StartupMessage
from tests.harness.certs import CertFiles, make_ca, make_leaf
from tests.harness.proxy import ProxyProcess, ProxyStartError, proxy_config, start_proxy
from tests.harness.rawclient import RawClient, describe, error_of, rows_of

from .conftest import AUTH_USERS, dsn

pytestmark = pytest.mark.timeout(90)

PROTOCOL_VIOLATION = "08P01"
INVALID_AUTHORIZATION = "28000"
SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


# --- certificates and proxies ------------------------------------------------------------
class Certs:
    """The test CA, a CA nobody trusts, the proxy's certificate (localhost and 127.0.0.1)
    and the TLS server's (127.0.0.1 only, so "localhost" does not match it)."""

    def __init__(self, directory: Path) -> None:
        self.ca = make_ca(directory, "ca")
        self.wrong_ca = make_ca(directory, "wrong_ca")
        self.proxy = make_leaf(directory, self.ca, "proxy", "DNS:localhost,IP:127.0.0.1")
        self.server = make_leaf(directory, self.ca, "server", "IP:127.0.0.1")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def _proxy(topology: Topology, tmp: Path, **general: str | bool | int) -> ProxyProcess:
    """A started proxy with ``general`` in [general] and the auth tests' users (one per
    auth method); use it in a ``with`` block."""
    text = proxy_config(topology, port=free_port(), extra_general=general, users=AUTH_USERS,
                        extra_pool={"default_role": "primary"})
    return start_proxy(text, tmp)


def _listener(files: CertFiles) -> dict[str, str | bool | int]:
    return {"tls_certificate": str(files.cert), "tls_private_key": str(files.key)}


@pytest.fixture(scope="module")
def tls_proxy(pg_topology: Topology, certs: Certs,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """A certificate, tls_mode "prefer" (the default)."""
    with _proxy(pg_topology, tmp_path_factory.mktemp("tls_proxy"),
                **_listener(certs.proxy)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def required_proxy(pg_topology: Topology, certs: Certs,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    with _proxy(pg_topology, tmp_path_factory.mktemp("required_proxy"),
                **_listener(certs.proxy), tls_mode="require") as proxy:
        yield proxy


def ssl_dsn(proxy: ProxyProcess, sslmode: str, **params: str) -> str:
    return dsn(proxy, sslmode=sslmode, **params)


def ssl_in_use(conninfo: str) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        return bool(conn.pgconn.ssl_in_use)


def psql(conninfo: str, *commands: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    argv = ["psql", "-X", "-A", "-t", "-d", conninfo]
    for command in commands:
        argv += ["-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


# --- clients: sslmodes -------------------------------------------------------------------
def test_psql_sslmode_require_gets_tls(tls_proxy: ProxyProcess) -> None:
    done = psql(ssl_dsn(tls_proxy, "require"), "\\conninfo", "SELECT 'over tls'")
    assert done.returncode == 0, done.stderr
    assert "SSL connection (protocol: TLSv1." in done.stdout, done.stdout
    assert "over tls" in done.stdout


def test_psycopg_sslmode_require_gets_tls(tls_proxy: ProxyProcess) -> None:
    assert ssl_in_use(ssl_dsn(tls_proxy, "require"))


def test_an_idle_tls_client_is_never_parked(tls_proxy: ProxyProcess) -> None:
    """Its encryption state lives in the transport (frontend/parking.py parks plain ones)."""
    admin = dsn(tls_proxy, user="admin", password="admin", dbname="pgcat")
    with psycopg.connect(ssl_dsn(tls_proxy, "require"), autocommit=True) as conn, \
            psycopg.connect(admin, autocommit=True, prepare_threshold=None) as console:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        time.sleep(2.0)  # four sweeps: a plain client is parked by now
        lists = dict(console.execute("SHOW LISTS").fetchall())
        assert lists["parked_clients"] == 0
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_relay_over_tls_carries_big_results_and_transactions(tls_proxy: ProxyProcess) -> None:
    # Bigger than any TLS record or transport buffer: flow control through the TLS layer.
    with psycopg.connect(ssl_dsn(tls_proxy, "require")) as conn:
        assert conn.pgconn.ssl_in_use
        for _ in range(3):
            row = conn.execute("SELECT length(repeat('x', 4000000))").fetchone()
            assert row == (4000000,)
            rows = conn.execute("SELECT g, repeat('y', 50) FROM generate_series(1, 50000) g"
                                ).fetchall()
            assert len(rows) == 50000 and rows[-1][0] == 50000
            conn.commit()
        with conn.cursor() as cursor, cursor.copy("COPY (SELECT generate_series(1, 20000)) "
                                                  "TO STDOUT") as copy:
            assert sum(1 for _ in copy.rows()) == 20000


@pytest.mark.parametrize(("user", "password"), [
    ("md5_user", "md5_pass"), ("scram_user", "scram_pass"), ("trust_user", None)])
def test_each_auth_method_over_tls(tls_proxy: ProxyProcess, user: str,
                                   password: str | None) -> None:
    # Over TLS libpq sends SCRAM's GS2 header "y,,": it could bind the channel, but the
    # proxy does not offer SCRAM-SHA-256-PLUS. That must still log in.
    conninfo = dsn(tls_proxy, user=user, password=password, sslmode="require")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT current_user").fetchone() == (user,)


def test_channel_binding_require_is_refused_by_libpq(tls_proxy: ProxyProcess) -> None:
    # No SCRAM-SHA-256-PLUS yet: a client that insists on channel binding gives up itself.
    conninfo = dsn(tls_proxy, user="scram_user", password="scram_pass", sslmode="require",
                   channel_binding="require")
    with pytest.raises(psycopg.OperationalError, match="channel binding"):
        psycopg.connect(conninfo)


def test_sslmode_disable_is_served_under_prefer(tls_proxy: ProxyProcess) -> None:
    assert not ssl_in_use(ssl_dsn(tls_proxy, "disable"))


def test_sslmode_prefer_takes_tls_when_offered(tls_proxy: ProxyProcess) -> None:
    assert ssl_in_use(ssl_dsn(tls_proxy, "prefer"))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_full_with_the_test_ca(tls_proxy: ProxyProcess, certs: Certs,
                                      host: str) -> None:
    conninfo = ssl_dsn(tls_proxy, "verify-full", sslrootcert=str(certs.ca.cert)) \
        .replace(f"host={tls_proxy.host}", f"host={host}")
    assert ssl_in_use(conninfo)


def test_verify_full_with_another_ca_fails(tls_proxy: ProxyProcess, certs: Certs) -> None:
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(ssl_dsn(tls_proxy, "verify-full", sslrootcert=str(certs.wrong_ca.cert)))


def test_admin_console_over_tls(tls_proxy: ProxyProcess) -> None:
    with psycopg.connect(ssl_dsn(tls_proxy, "require", user="admin", password="admin",
                                 dbname="pgcat"), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        version = conn.execute("SHOW VERSION").fetchone()
        assert version is not None and "pgcat-py" in version[0]


def test_cancel_request_over_tls_cancels(tls_proxy: ProxyProcess) -> None:
    # libpq 17+ sends the CancelRequest of an encrypted connection encrypted too, as
    # PostgreSQL accepts it; a proxy that refused it would leave the query running.
    with psycopg.connect(ssl_dsn(tls_proxy, "require")) as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(20)")
        finally:
            timer.cancel()
        assert time.monotonic() - started < 10
        conn.rollback()
        assert conn.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)


# --- tls_mode = "require" ----------------------------------------------------------------
def test_require_serves_tls_clients(required_proxy: ProxyProcess) -> None:
    assert ssl_in_use(ssl_dsn(required_proxy, "require"))


def test_require_refuses_plaintext_with_28000(required_proxy: ProxyProcess) -> None:
    with pytest.raises(psycopg.OperationalError, match="SSL/TLS required"):
        psycopg.connect(ssl_dsn(required_proxy, "disable"))
    with RawClient.connect(required_proxy.host, required_proxy.port) as client:
        client.send(StartupMessage({"user": "app", "database": "app"}).encode())
        messages = client.read_until_closed()
    error = error_of(messages)
    assert error is not None, describe(messages)
    assert (error.sqlstate, error.severity) == (INVALID_AUTHORIZATION, "FATAL")


def test_require_still_takes_a_plaintext_cancel(required_proxy: ProxyProcess) -> None:
    # psql 15's libpq (like every libpq before 17) sends a cancel in plaintext, also for an
    # encrypted connection; PostgreSQL takes it whatever its hba says, and so do we.
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    argv = ["psql", "-X", "-d", ssl_dsn(required_proxy, "require"), "-c",
            "SELECT pg_sleep(20)"]
    started = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as running:
        time.sleep(1.5)
        running.send_signal(signal.SIGINT)  # psql's Ctrl-C: a CancelRequest
        _, stderr = running.communicate(timeout=15)
    assert "canceling statement due to user request" in stderr, stderr
    assert time.monotonic() - started < 10


# --- a proxy without a certificate -------------------------------------------------------
def test_no_certificate_prefer_falls_back_to_plaintext(tx_proxy: ProxyProcess) -> None:
    assert not ssl_in_use(ssl_dsn(tx_proxy, "prefer"))


def test_no_certificate_require_fails(tx_proxy: ProxyProcess) -> None:
    with pytest.raises(psycopg.OperationalError, match="does not support SSL"):
        psycopg.connect(ssl_dsn(tx_proxy, "require"))


# --- raw sockets: what no driver sends ---------------------------------------------------
def tls_client(proxy: ProxyProcess, certs: Certs) -> RawClient:
    """A raw client after SSLRequest, 'S' and a verified handshake."""
    client = RawClient.connect(proxy.host, proxy.port)
    client.send(SSLRequest().encode())
    assert client.read_bytes(1) == b"S"
    context = ssl.create_default_context(cafile=str(certs.ca.cert))
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    return client


def test_raw_login_over_tls(tls_proxy: ProxyProcess, certs: Certs) -> None:
    with tls_client(tls_proxy, certs) as client:
        client.login("app", "app", "app")
        assert rows_of(client.query("SELECT 'raw tls'")) == [("raw tls",)]


def test_second_ssl_request_inside_tls_is_a_protocol_violation(
        tls_proxy: ProxyProcess, certs: Certs) -> None:
    with tls_client(tls_proxy, certs) as client:
        client.send(SSLRequest().encode())
        messages = client.read_until_closed()
    error = error_of(messages)
    assert error is not None, describe(messages)
    assert (error.sqlstate, error.severity) == (PROTOCOL_VIOLATION, "FATAL")


def test_plaintext_bytes_behind_ssl_request_are_refused(tls_proxy: ProxyProcess) -> None:
    # CVE-2021-23214: bytes sent before the handshake could be a man in the middle's.
    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        client.send(SSLRequest().encode() + StartupMessage({"user": "app"}).encode())
        messages = client.read_until_closed()  # an ErrorResponse instead of 'S'

    error = error_of(messages)
    assert error is not None and error.sqlstate == PROTOCOL_VIOLATION, describe(messages)
    assert "unencrypted data after SSL request" in error.text


def _broken_handshakes(proxy: ProxyProcess, count: int) -> None:
    for attempt in range(count):
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
            sock.sendall(SSLRequest().encode())
            assert sock.recv(1) == b"S"
            if attempt % 2:
                sock.sendall(b"\x16\x03\x01\x00\x05hello, not a ClientHello")
                sock.recv(1024)  # the alert, or the close
            # else: leave in the middle of the handshake


def test_broken_handshakes_free_their_client_slots(pg_topology: Topology, certs: Certs,
                                                   tmp_path: Path) -> None:
    # A handshake that fails must count as a client gone, or max_client_conn fills up.
    with _proxy(pg_topology, tmp_path, **_listener(certs.proxy), max_client_conn=2) as proxy:
        _broken_handshakes(proxy, 6)
        time.sleep(0.3)
        with psycopg.connect(ssl_dsn(proxy, "require")) as one, \
                psycopg.connect(ssl_dsn(proxy, "disable")) as two:
            assert one.execute("SELECT 1").fetchone() == two.execute("SELECT 1").fetchone()
        assert proxy.is_running()
        assert "Traceback" not in proxy.log_text(), proxy.log_tail()


def test_unloadable_key_stops_the_proxy_naming_the_key(pg_topology: Topology, certs: Certs,
                                                       tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key\n")
    text = proxy_config(pg_topology, port=free_port(), extra_general={
        "tls_certificate": str(certs.proxy.cert), "tls_private_key": str(bad_key)})
    with pytest.raises(ProxyStartError, match=r"general\.tls_private_key"):
        start_proxy(text, tmp_path / "proxy")


# --- servers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(certs: Certs) -> Iterator[Topology]:
    """A PostgreSQL primary of this module's own, with ssl = on and certs.server."""
    base = Path(tempfile.mkdtemp(prefix="pgcat-py-tls-"))
    base.chmod(0o755)
    topology: Topology | None = None
    try:
        topology = create_topology(base, replicas=0, shards=0)
        _enable_ssl(topology, certs.server)
        yield topology
    finally:
        try:
            if topology is not None:
                topology.stop()
        finally:
            if not os.environ.get("PGCAT_PY_KEEP_PG"):
                shutil.rmtree(base, ignore_errors=True)


def _enable_ssl(topology: Topology, files: CertFiles) -> None:
    datadir = topology.primary.datadir
    for source, name in ((files.cert, "server.crt"), (files.key, "server.key")):
        target = datadir / name
        shutil.copyfile(source, target)
        target.chmod(0o600)  # PostgreSQL refuses a key others can read
        give_to_server_user(target)
    run_sql(topology.pg_bin, topology.primary,
            "ALTER SYSTEM SET ssl = on;\nSELECT pg_reload_conf();")
    deadline = time.monotonic() + 10
    while run_sql(topology.pg_bin, topology.primary, "SHOW ssl").strip() != "on":
        assert time.monotonic() < deadline, "the TLS server did not turn ssl on"
        time.sleep(0.1)


def server_side_ssl(proxy: ProxyProcess) -> bool:
    with psycopg.connect(dsn(proxy), autocommit=True) as conn:
        row = conn.execute(SSL_IN_USE).fetchone()
    assert row is not None
    return bool(row[0])


def test_server_tls_encrypts_server_connections(tls_server: Topology,
                                                tmp_path: Path) -> None:
    with _proxy(tls_server, tmp_path, server_tls=True) as proxy:
        assert server_side_ssl(proxy)


def test_without_server_tls_server_connections_are_plaintext(tls_server: Topology,
                                                             tmp_path: Path) -> None:
    with _proxy(tls_server, tmp_path) as proxy:
        assert not server_side_ssl(proxy)


def test_server_tls_is_prefer_against_a_server_without_tls(pg_topology: Topology,
                                                           tmp_path: Path) -> None:
    with _proxy(pg_topology, tmp_path, server_tls=True) as proxy:
        assert not server_side_ssl(proxy)


def test_tls_on_both_sides(tls_server: Topology, certs: Certs, tmp_path: Path) -> None:
    proxy = _proxy(tls_server, tmp_path, **_listener(certs.proxy), server_tls=True,
                   verify_server_certificate=True, server_tls_ca_file=str(certs.ca.cert))
    conninfo = ssl_dsn(proxy, "verify-full", sslrootcert=str(certs.ca.cert))
    with proxy, psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute(SSL_IN_USE).fetchone() == (True,)


def _login_error(proxy: ProxyProcess) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(dsn(proxy))
    return str(caught.value)


def test_verify_server_certificate_with_a_wrong_ca_fails_clearly(
        tls_server: Topology, certs: Certs, tmp_path: Path) -> None:
    with _proxy(tls_server, tmp_path, server_tls=True, verify_server_certificate=True,
                server_tls_ca_file=str(certs.wrong_ca.cert)) as proxy:
        message = _login_error(proxy)
        assert "TLS handshake failed" in message and "certificate verify failed" in message
        assert proxy.is_running()


def test_verify_server_certificate_checks_the_host_name(
        tls_server: Topology, certs: Certs, tmp_path: Path) -> None:
    # The server's certificate names 127.0.0.1 only; the config says localhost.
    text = proxy_config(tls_server, port=free_port(), extra_general={
        "server_tls": True, "verify_server_certificate": True,
        "server_tls_ca_file": str(certs.ca.cert)}, extra_pool={"default_role": "primary"})
    text = text.replace('["127.0.0.1", ', '["localhost", ')
    with start_proxy(text, tmp_path) as proxy:
        message = _login_error(proxy)
    assert "certificate verify failed" in message and "localhost" in message, message


def test_verify_server_certificate_refuses_a_server_without_tls(
        pg_topology: Topology, certs: Certs, tmp_path: Path) -> None:
    # 'N' from a server is a downgrade a man in the middle could make: not taken when
    # certificates are to be verified.
    with _proxy(pg_topology, tmp_path, server_tls=True, verify_server_certificate=True,
                server_tls_ca_file=str(certs.ca.cert)) as proxy:
        assert "does not accept TLS" in _login_error(proxy)
