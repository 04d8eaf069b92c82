"""`pgcat-py convert`: a pgbouncer.ini (the Ory guide's setup, written as an ini) becomes a
pgcat.toml that loads, with the same values; what cannot be converted is warned, never
dropped silently."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pgcat_py.config import Config, load_config, parse_config
from pgcat_py.convert import ConvertError, convert, render
from pgcat_py.convert.general import FOREVER_MS
from pgcat_py.convert.ini import parse_connstring, read_auth_file, read_ini
from pgcat_py.convert.toml_text import toml_string

# The Ory guide's PgBouncer (edoburu/pgbouncer environment) as the ini it generates, plus
# the hand-made read-only pool on the replica and what an operator's file usually carries.
ORY_INI = """\
;; PgBouncer in front of Postgres, for Olympus (Kratos, Hydra, Athena)
[databases]
olympus = host=ciam-postgres port=5432 dbname=olympus
olympus_ro = host=ciam-postgres-replica dbname=olympus pool_size=10

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 5432
auth_type = scram-sha-256
auth_file = userlist.txt
admin_users = olympus
stats_users = stats
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 25
reserve_pool_size = 5
reserve_pool_timeout = 5
server_reset_query = DISCARD ALL
server_idle_timeout = 300
ignore_startup_parameters = extra_float_digits
# the image's own settings
logfile = /var/log/pgbouncer/pgbouncer.log
pidfile = /var/run/pgbouncer/pgbouncer.pid
client_idle_timeout = 600
"""
USERLIST = '"olympus" "s3cret"\n"stats" "md545f2603610af569b6155c45067268c6b"\n'


def write(tmp_path: Path, ini: str, userlist: str = USERLIST) -> Path:
    (tmp_path / "userlist.txt").write_text(userlist)
    path = tmp_path / "pgbouncer.ini"
    path.write_text(ini)
    return path


def converted(tmp_path: Path, ini: str, userlist: str = USERLIST) -> tuple[Config, list[str]]:
    conversion = convert(write(tmp_path, ini, userlist))
    loaded = parse_config(render(conversion, "pgbouncer.ini"), environ={})
    assert loaded.unknown_keys == []
    return loaded.config, conversion.warnings


def warned(warnings: list[str], where: str) -> str:
    found = [w for w in warnings if w.startswith(where)]
    assert found, f"no warning for {where}: {warnings}"
    return found[0]


def test_the_ory_setup_keeps_its_values(tmp_path: Path) -> None:
    config, _ = converted(tmp_path, ORY_INI)
    general = config.general
    assert (general.host, general.port, general.max_client_conn) == ("0.0.0.0", 5432, 1000)
    assert (general.reserve_pool_size, general.reserve_pool_timeout) == (5, 5000)
    assert general.server_reset_query == "DISCARD ALL"
    assert general.idle_timeout == 300_000  # server_idle_timeout, seconds to ms
    assert general.connect_timeout == 120_000  # PgBouncer's query_wait_timeout default
    assert general.server_tls is True  # PgBouncer's server_tls_sslmode default, prefer
    assert (general.admin_username, general.admin_password) == ("olympus", "s3cret")
    assert general.admin_auth_type == "scram-sha-256"
    assert sorted(config.pools) == ["olympus", "olympus_ro"]
    for name, host, size in (("olympus", "ciam-postgres", 25),
                             ("olympus_ro", "ciam-postgres-replica", 10)):
        pool = config.pools[name]
        assert pool.pool_mode == "transaction"
        user = pool.find_user("olympus")
        assert user is not None
        assert (user.password, user.auth_type, user.pool_size) == ("s3cret", "scram-sha-256",
                                                                   size)
        assert user.server_username is None  # logs in to the server as itself
        [shard] = pool.shard_list
        assert shard.database == "olympus"
        assert [(s.host, s.port, s.role) for s in shard.servers] == [(host, 5432, "primary")]
    assert config.pools["olympus"].find_user("stats") is not None  # every auth_file user


def test_unconvertible_keys_are_warned_with_a_reason(tmp_path: Path) -> None:
    _, warnings = converted(tmp_path, ORY_INI)
    assert "console has one user" in warned(warnings, "[pgbouncer] stats_users")
    assert "not needed" in warned(warnings, "[pgbouncer] ignore_startup_parameters")
    assert "logs to stderr" in warned(warnings, "[pgbouncer] logfile")
    assert "dropped" in warned(warnings, "[pgbouncer] client_idle_timeout")
    assert "SCRAM" in warned(warnings, "auth_file: user stats")  # md5 hash, SCRAM logins


@pytest.mark.parametrize(("line", "where", "reason"), [
    ("auth_query = SELECT 1", "[pgbouncer] auth_query", "without auth_user"),
    ("auth_dbname = postgres", "[pgbouncer] auth_dbname", "each pool's own database"),
    ("made_up_key = 1", "[pgbouncer] made_up_key", "not a PgBouncer key"),
    ("client_tls_ciphers = fast", "[pgbouncer] client_tls_ciphers", "OpenSSL's default"),
    ("tcp_keepalive = 0", "[pgbouncer] tcp_keepalive", "always turns keepalives on"),
    ("max_db_connections = 50", "[pgbouncer] max_db_connections", "pool_size limits"),
    ("pool_mode = statement", "[pgbouncer] pool_mode", "transaction written"),
    ("query_wait_timeout = 0", "[pgbouncer] query_wait_timeout", "0 (no limit)"),
])
def test_pgbouncer_keys_without_equivalent(tmp_path: Path, line: str, where: str,
                                           reason: str) -> None:
    ini = ORY_INI.replace("pool_mode = transaction", "") + line + "\n"
    _, warnings = converted(tmp_path, ini)
    assert reason in warned(warnings, where)


def test_database_keys_without_equivalent_and_the_fallback(tmp_path: Path) -> None:
    ini = ORY_INI.replace("[databases]\n", "[databases]\n* = host=fallback\n"
                          "app = host=db connect_query='SELECT 1' client_encoding=UTF8\n")
    config, warnings = converted(tmp_path, ini)
    assert "*" not in config.pools and "app" in config.pools
    assert "cannot be converted" in warned(warnings, "[databases] *:")
    assert "prewarmer" in warned(warnings, "[databases] app connect_query")
    assert "startup parameters" in warned(warnings, "[databases] app client_encoding")


def test_include_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "%include /etc/pgbouncer/databases.ini\n" + ORY_INI)
    with pytest.raises(ConvertError, match="%include is not supported"):
        convert(path)


def test_an_ini_without_databases_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="no \\[databases\\] entry"):
        convert(write(tmp_path, "[databases]\n* = host=db\n[pgbouncer]\nlisten_port = 1\n"))


def test_seconds_become_milliseconds(tmp_path: Path) -> None:
    ini = ORY_INI + ("server_lifetime = 1800.5\nquery_wait_timeout = 30\n"
                     "client_login_timeout = 15\nidle_transaction_timeout = 10\n"
                     "server_check_delay = 10\n")
    general = converted(tmp_path, ini)[0].general
    assert general.server_lifetime == 1_800_500
    assert (general.connect_timeout, general.client_login_timeout) == (30_000, 15_000)
    assert general.idle_client_in_transaction_timeout == 10_000
    assert general.healthcheck_delay == 10_000


def test_zero_no_limit_becomes_a_day(tmp_path: Path) -> None:
    config, _ = converted(tmp_path, ORY_INI.replace("server_idle_timeout = 300",
                                                    "server_idle_timeout = 0"))
    assert config.general.idle_timeout == FOREVER_MS


def test_pgbouncer_defaults_are_written_where_ours_differ(tmp_path: Path) -> None:
    config, warnings = converted(tmp_path, "[databases]\napp = host=db\n[pgbouncer]\n"
                                           "auth_file = userlist.txt\n", '"app" "pw"\n')
    general, pool = config.general, config.pools["app"]
    assert (general.port, general.max_client_conn, general.connect_timeout) == (
        6432, 100, 120_000)
    assert general.host == "127.0.0.1"  # PgBouncer without listen_addr: Unix socket only
    assert "Unix socket" in warned(warnings, "[pgbouncer] listen_addr")
    assert pool.pool_mode == "session"
    assert pool.user_list[0].pool_size == 20
    assert general.admin_username == "admin"  # pgcat-py needs a console user
    assert len(general.admin_password) >= 20  # random, not a guessable placeholder
    assert "set your own" in warned(warnings, "general.admin_password")


def test_a_forced_user_logs_in_to_the_server_for_every_client(tmp_path: Path) -> None:
    ini = ORY_INI.replace("olympus_ro = host", "reports = host=10.0.0.9 dbname=dw "
                          "user=reporter password='it''s \\ok' pool_size=5\nolympus_ro = host")
    config, warnings = converted(tmp_path, ini)
    pool = config.pools["reports"]
    for user in pool.user_list:
        assert (user.server_username, user.server_password) == ("reporter", "it's \\ok")
        assert user.pool_size == 5
    assert "one per client user" in warned(warnings, "[databases] reports user")


def test_without_auth_file_the_forced_user_is_the_user(tmp_path: Path) -> None:
    ini = "[databases]\napp = host=db user=app password=pw\n[pgbouncer]\nlisten_addr = *\n"
    config, _ = converted(tmp_path, ini)
    [user] = config.pools["app"].user_list
    assert (user.username, user.password, user.server_username) == ("app", "pw", None)
    assert config.general.host == "0.0.0.0"


def test_a_scram_secret_cannot_be_used_and_is_replaced(tmp_path: Path) -> None:
    userlist = USERLIST + '"svc" "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"\n'
    config, warnings = converted(tmp_path, ORY_INI, userlist)
    user = config.pools["olympus"].find_user("svc")
    assert user is not None and user.password is not None
    assert not user.password.startswith("SCRAM")
    assert "plain-text" in warned(warnings, "auth_file: user svc")


def test_passwords_and_names_survive_quoting(tmp_path: Path) -> None:
    tricky = 'a"b\\c\td é ☃ ${HOME}x'
    userlist = '"we""ird" "' + tricky.replace('"', '""') + '"\n'
    ini = ORY_INI.replace("[databases]\n", '[databases]\n"my.db ""x""" = host=db\n')
    config, _ = converted(tmp_path, ini, userlist)
    user = config.pools['my.db "x"'].find_user('we"ird')
    assert user is not None and user.password == tricky


def test_tls_keys(tmp_path: Path) -> None:
    ini = ORY_INI + ("client_tls_sslmode = require\nclient_tls_cert_file = /etc/tls/c.pem\n"
                     "client_tls_key_file = /etc/tls/k.pem\nserver_tls_sslmode = verify-ca\n"
                     "server_tls_ca_file = /etc/tls/ca.pem\n")
    config, warnings = converted(tmp_path, ini)
    general = config.general
    assert (general.tls_certificate, general.tls_private_key) == ("/etc/tls/c.pem",
                                                                  "/etc/tls/k.pem")
    assert general.tls_mode == "require"
    assert general.server_tls and general.verify_server_certificate
    assert general.server_tls_ca_file == "/etc/tls/ca.pem"
    assert "host name" in warned(warnings, "[pgbouncer] server_tls_sslmode")


def test_users_section_overrides(tmp_path: Path) -> None:
    ini = ORY_INI + "[users]\nolympus = pool_mode=session pool_size=7 max_user_connections=9\n"
    config, warnings = converted(tmp_path, ini)
    user = config.pools["olympus"].find_user("olympus")
    assert user is not None and (user.pool_mode, user.pool_size) == ("session", 7)
    assert "dropped" in warned(warnings, "[users] olympus max_user_connections")


def test_connection_strings() -> None:
    assert parse_connstring("host=a  port = 5432 password='it''s a b' x=y'z") == {
        "host": "a", "port": "5432", "password": "it's a b", "x": "y'z"}
    with pytest.raises(ValueError):
        parse_connstring("host=a port")


def test_the_ini_dialect(tmp_path: Path) -> None:
    path = tmp_path / "p.ini"
    path.write_text("[PgBouncer]\n  Listen_Port = 1\n# c\n; c\n"
                    "server_reset_query = SET a = 'x;y' # not a comment\n[databases]\nApp = x=1\n")
    sections = read_ini(path)
    assert sections["pgbouncer"] == {"listen_port": "1",
                                     "server_reset_query": "SET a = 'x;y' # not a comment"}
    assert sections["databases"] == {"App": "x=1"}  # database names keep their case


def test_auth_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "userlist.txt"
    path.write_text('"a" "x" extra\n;comment\n  "b""c"   "y""z"\nnot a line\n')
    assert read_auth_file(path) == {"a": "x", 'b"c': 'y"z'}


def test_toml_strings_round_trip() -> None:
    for text in ('"', "\\", "\x00\x1f\x7f", "tab\t", "é☃", "${X}"):
        assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgcat_py", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(Path(__file__).parents[2])})


def test_the_command_writes_a_config_that_passes_check(tmp_path: Path) -> None:
    ini = write(tmp_path, ORY_INI)
    done = run("convert", str(ini), "-o", "pgcat.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning: [pgbouncer] stats_users" in done.stderr
    out = tmp_path / "pgcat.toml"
    assert out.stat().st_mode & 0o077 == 0  # passwords inside: owner only
    checked = run("--check", "pgcat.toml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert load_config(out).config.pools["olympus"].user_list[0].password == "s3cret"
    to_stdout = run("convert", str(ini), cwd=tmp_path)
    assert to_stdout.returncode == 0 and "[pools.olympus]" in to_stdout.stdout
    refused = run("convert", str(write(tmp_path, "%include x.ini\n")), cwd=tmp_path)
    assert refused.returncode == 78 and "%include" in refused.stderr


def test_auth_user_and_auth_query_become_pgcat_py_auth_query(tmp_path: Path) -> None:
    # PgBouncer's $1 is a parameter, ours a quoted literal: the same query text works.
    query = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"
    ini = ORY_INI + f"auth_user = olympus\nauth_query = {query}\n"
    config, _ = converted(tmp_path, ini)
    general = config.general
    assert (general.auth_query, general.auth_query_user) == (query, "olympus")
    assert general.auth_query_password == "s3cret"  # auth_user's line in auth_file


def test_auth_user_alone_gets_pgbouncers_default_query_and_a_database_its_own(
        tmp_path: Path) -> None:
    ini = ORY_INI.replace("dbname=olympus pool_size=10",
                          "dbname=olympus pool_size=10 auth_query='SELECT 1, 2'")
    config, warnings = converted(tmp_path, ini + "auth_user = stats\n")
    assert "pg_authid WHERE rolname=$1" in (config.general.auth_query or "")
    assert config.pools["olympus_ro"].auth_query == "SELECT 1, 2"
    assert "md5 hash kept" in warned(warnings, "[pgbouncer] auth_user")


def test_auth_user_without_a_password_gets_a_placeholder(tmp_path: Path) -> None:
    config, warnings = converted(tmp_path, ORY_INI + "auth_user = nobody\n")
    assert config.general.auth_query_password
    assert "set its password" in warned(warnings, "[pgbouncer] auth_user")
