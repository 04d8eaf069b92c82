"""The [pgbouncer] section: [general] keys, TLS, auth_type, the console user, the auth_file.

Each key is converted, or warned about with the reason (not needed here, or no
equivalent). Where PgBouncer's default differs from pgcat-py's and changes behaviour, its
default is written out (port, max_client_conn, the client's wait for a server, server TLS).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

from .ini import MD5, SCRAM, parsed, read_auth_file, secret_kind, to_bool, to_int, to_ms
from .toml_text import Conversion, Value

FOREVER_MS = 86_400_000  # a day stands for PgBouncer's 0 = "no limit" on waits and idling
# PgBouncer's defaults (doc/config.md) that differ from pgcat-py's and change behaviour.
PGBOUNCER_PORT, PGBOUNCER_MAX_CLIENT_CONN = 6432, 100
PGBOUNCER_QUERY_WAIT_TIMEOUT_MS = 120_000

# [pgbouncer] key -> ([general] key, conversion); 0 means "no limit" for the ZERO_IS_OFF ones.
GENERAL_KEYS: dict[str, tuple[str, Callable[[str], Value]]] = {
    "listen_port": ("port", to_int),
    "max_client_conn": ("max_client_conn", to_int),
    "reserve_pool_size": ("reserve_pool_size", to_int),
    "reserve_pool_timeout": ("reserve_pool_timeout", to_ms),
    "server_reset_query": ("server_reset_query", str),
    "server_lifetime": ("server_lifetime", to_ms),
    "server_idle_timeout": ("idle_timeout", to_ms),
    "query_wait_timeout": ("connect_timeout", to_ms),
    "client_login_timeout": ("client_login_timeout", to_ms),
    "idle_transaction_timeout": ("idle_client_in_transaction_timeout", to_ms),
    "server_check_delay": ("healthcheck_delay", to_ms),
    "tcp_keepidle": ("tcp_keepalives_idle", to_int),
    "tcp_keepcnt": ("tcp_keepalives_count", to_int),
    "tcp_keepintvl": ("tcp_keepalives_interval", to_int),
    "tcp_user_timeout": ("tcp_user_timeout", to_int),  # ms in both
    "log_connections": ("log_client_connections", to_bool),
    "log_disconnections": ("log_client_disconnections", to_bool),
    "server_round_robin": ("server_round_robin", to_bool),
}
ZERO_IS_OFF = {"server_idle_timeout", "query_wait_timeout", "client_login_timeout"}
# tcp_keepalive = 1 is what pgcat-py always does; 0 cannot be had.
KEEPALIVE_OFF = "pgcat-py always turns keepalives on (tcp_keepidle & co. tune them)"
# Keys read elsewhere: by convert_tls, the admin and auth_file readers, or pools.py.
HANDLED_ELSEWHERE = {
    "pool_mode", "default_pool_size", "min_pool_size", "max_prepared_statements",
    "query_timeout", "auth_type", "auth_file", "admin_users", "listen_addr",
    "unix_socket_dir", "dns_max_ttl", "auth_user", "auth_query", "auth_dbname"} | {
    f"{side}_tls_{name}" for side in ("client", "server")
    for name in ("sslmode", "key_file", "cert_file", "ca_file")}
TLS_TUNING = re.compile(r"(client|server)_tls(13)?_(protocols|ciphers|ecdhcurve|dheparams)")
NOT_NEEDED = {
    "ignore_startup_parameters": "pgcat-py sends every startup parameter on to the server",
    "track_extra_parameters": "pgcat-py tracks every parameter a client sets",
    "server_reset_query_always": "pgcat-py runs server_reset_query in every pool mode, "
                                 "after a client changed its session",
    "so_reuseport": "worker_threads starts worker processes sharing the port (SO_REUSEPORT)",
    "server_connect_timeout": "connect_timeout (the client's wait for a server) includes "
                              "opening the connection",
    "logfile": "pgcat-py logs to stderr", "syslog": "pgcat-py logs to stderr",
    "syslog_ident": "pgcat-py logs to stderr", "syslog_facility": "pgcat-py logs to stderr",
    "pidfile": "pgcat-py runs in the foreground: let the service manager track it",
    "user": "pgcat-py runs in the foreground: let the service manager pick the user",
    "verbose": "use pgcat-py -l debug",
    "pkt_buf": "pgcat-py sizes its buffers itself", "sbuf_loopcnt": "no such loop here",
    "listen_backlog": "pgcat-py listens with a backlog of 2048",
    "tcp_defer_accept": "not needed", "tcp_socket_buffer": "the OS default is used",
}
NO_EQUIVALENT = dict.fromkeys((  # PgBouncer keys (doc/config.md) pgcat-py has nothing for
    "unix_socket_mode", "unix_socket_group", "peer_id", "disable_pqexec",
    "application_name_add_host", "conffile", "service_name", "job_name", "stats_period",
    "scram_iterations", "auth_hba_file", "auth_ident_file", "auth_ldap_options",
    "log_pooler_errors", "log_stats", "server_fast_close", "server_login_retry",
    "autodb_idle_timeout", "pool_idle_timeout", "dns_nxdomain_ttl", "dns_zone_check_period",
    "resolv_conf", "query_wait_notify", "login_notify_message", "cancel_wait_timeout",
    "suspend_timeout", "max_packet_size"), "pgcat-py has no such setting") | {
    "stats_users": "pgcat-py's console has one user, admin_username",
    "client_idle_timeout": "pgcat-py does not close idle clients",
    "transaction_timeout": "use idle_transaction_timeout, or PostgreSQL's "
                           "transaction_timeout (17+)",
    "server_check_query": "pgcat-py checks servers with an empty query (;)",
    "max_db_connections": "pool_size limits each (pool, user, server)",
    "max_user_connections": "pool_size limits each (pool, user, server)",
    "max_db_client_connections": "max_client_conn limits all clients together",
    "max_user_client_connections": "max_client_conn limits all clients together",
}


def convert_general(ini: dict[str, str], out: Conversion) -> None:
    general = out.general
    general.set("host", listen_host(ini.get("listen_addr"), out), "listen_addr")
    general.set("port", PGBOUNCER_PORT, "PgBouncer's default listen_port")
    general.set("max_client_conn", PGBOUNCER_MAX_CLIENT_CONN, "PgBouncer's default")
    general.set("connect_timeout", PGBOUNCER_QUERY_WAIT_TIMEOUT_MS,
                "PgBouncer's query_wait_timeout default (120 s)")
    for key, value in ini.items():
        where = f"[pgbouncer] {key}"
        if key in GENERAL_KEYS:
            target, parse = GENERAL_KEYS[key]
            converted = parsed(parse, value, where)
            if key in ZERO_IS_OFF and converted == 0:
                converted = FOREVER_MS
                out.warn(where, f"0 (no limit) has no equivalent: {target} = {FOREVER_MS} "
                                "(a day) written")
            general.set(target, converted, key)
        elif key == "tcp_keepalive":
            if not parsed(to_bool, value, where):
                out.warn(where, f"no equivalent: {KEEPALIVE_OFF}: dropped")
        elif key in NOT_NEEDED:
            out.warn(where, f"not needed: {NOT_NEEDED[key]}")
        elif key in NO_EQUIVALENT:
            out.warn(where, f"no equivalent: {NO_EQUIVALENT[key]}: dropped")
        elif TLS_TUNING.fullmatch(key):
            out.warn(where, "no equivalent: pgcat-py uses TLS 1.2 or later with OpenSSL's "
                            "default ciphers: dropped")
        elif key not in HANDLED_ELSEWHERE:
            out.warn(where, "not a PgBouncer key this converter knows: dropped")
    if ini.get("unix_socket_dir"):
        general.set("unix_socket_dir", ini["unix_socket_dir"], "unix_socket_dir")
    if "dns_max_ttl" in ini:
        general.set("dns_cache_enabled", True, "PgBouncer always caches DNS")
        ttl = parsed(float, ini["dns_max_ttl"], "[pgbouncer] dns_max_ttl")
        general.set("dns_max_ttl", max(1, round(ttl)), "dns_max_ttl (whole seconds)")
    convert_tls(ini, out)


def listen_host(listen_addr: str | None, out: Conversion) -> str:
    if not listen_addr:
        out.warn("[pgbouncer] listen_addr", "unset (PgBouncer listened on its Unix socket "
                                            "only): pgcat-py listens on 127.0.0.1")
        return "127.0.0.1"
    first, *rest = [address.strip() for address in listen_addr.split(",")]
    if rest:
        out.warn("[pgbouncer] listen_addr", f"pgcat-py listens on one address: {first} "
                                            f"written, {', '.join(rest)} dropped")
    return "0.0.0.0" if first == "*" else first


def convert_tls(ini: dict[str, str], out: Conversion) -> None:
    general = out.general
    client_mode = ini.get("client_tls_sslmode", "disable")
    cert, key = ini.get("client_tls_cert_file"), ini.get("client_tls_key_file")
    if client_mode != "disable":
        if cert and key:
            general.set("tls_certificate", cert, "client_tls_cert_file")
            general.set("tls_private_key", key, "client_tls_key_file")
            if client_mode in ("require", "verify-ca", "verify-full"):
                general.set("tls_mode", "require", f"client_tls_sslmode = {client_mode}")
        else:
            out.warn("[pgbouncer] client_tls_sslmode", "needs client_tls_cert_file and "
                                                       "client_tls_key_file: no client TLS")
    elif cert or key:
        out.warn("[pgbouncer] client_tls_*", "client_tls_sslmode is disable: files not used")
    if client_mode in ("verify-ca", "verify-full") or ini.get("client_tls_ca_file"):
        out.warn("[pgbouncer] client_tls_ca_file", "pgcat-py does not check client "
                                                   "certificates: clients log in by password")
    server_mode = ini.get("server_tls_sslmode", "prefer")  # PgBouncer's default since 1.20
    if server_mode != "disable":
        general.set("server_tls", True, f"server_tls_sslmode = {server_mode}")
    if server_mode == "require":
        out.warn("[pgbouncer] server_tls_sslmode", "require: without "
                 "verify_server_certificate pgcat-py goes on in plaintext if a server "
                 "refuses TLS")
    if server_mode in ("verify-ca", "verify-full"):
        general.set("verify_server_certificate", True, f"server_tls_sslmode = {server_mode}")
        if server_mode == "verify-ca":
            out.warn("[pgbouncer] server_tls_sslmode", "verify-ca: pgcat-py also checks the "
                                                       "host name (verify-full)")
    if ini.get("server_tls_ca_file"):
        general.set("server_tls_ca_file", ini["server_tls_ca_file"], "server_tls_ca_file")
    if ini.get("server_tls_cert_file") or ini.get("server_tls_key_file"):
        out.warn("[pgbouncer] server_tls_cert_file", "pgcat-py sends no client certificate "
                                                     "to servers: dropped")


AUTH_TYPES = {"md5": "md5", "scram-sha-256": "scram-sha-256", "trust": "trust"}


def convert_auth_type(auth_type: str, out: Conversion) -> str:
    if auth_type in AUTH_TYPES:
        return AUTH_TYPES[auth_type]
    if auth_type == "any":
        out.warn("[pgbouncer] auth_type", "any: trust written (pgcat-py still needs the "
                                          "user name to exist)")
        return "trust"
    out.warn("[pgbouncer] auth_type", f"{auth_type}: no equivalent (pgcat-py has md5, "
                                      "scram-sha-256 and trust): md5 written")
    return "md5"


def read_users(ini: dict[str, str], ini_path: Path, override: Path | None,
               out: Conversion) -> dict[str, str]:
    """The auth_file's user -> secret; {} (with a warning) when there is none to read."""
    named = ini.get("auth_file")
    if override is None and not named:
        return {}
    path = override or Path(named or "")
    if override is None and not path.is_absolute():
        path = ini_path.parent / path
    try:
        return read_auth_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        out.warn("[pgbouncer] auth_file", f"cannot read {path} ({exc}); pass --auth-file: "
                                          "users come from [databases] only")
        return {}


def usable_passwords(users: dict[str, str], auth_type: str, out: Conversion) -> dict[str, str]:
    """What each user's password line can hold; SCRAM secrets cannot serve (see below)."""
    usable = {}
    for user, secret in users.items():
        kind = secret_kind(secret)
        if kind == SCRAM:
            usable[user] = secrets.token_urlsafe(18)
            out.warn(f"auth_file: user {user}", "a SCRAM secret cannot log in to a server "
                     "nor check clients here: a random password was written, replace it "
                     "with the plain-text one")
            continue
        if kind == MD5:
            out.warn(f"auth_file: user {user}", "md5 hash kept: it serves only md5 logins "
                     "(clients' and the server's)" + ("; clients log in with SCRAM here: "
                     "write the plain-text password" if auth_type == "scram-sha-256" else ""))
        usable[user] = secret
    return usable


def convert_admin(ini: dict[str, str], users: dict[str, str], passwords: dict[str, str],
                  auth_type: str, out: Conversion) -> None:
    admins = [name.strip() for name in ini.get("admin_users", "").split(",") if name.strip()]
    if not admins:
        admin, note = "admin", "PgBouncer had no admin_users"
    else:
        admin, note = admins[0], "admin_users"
        if admins[1:]:
            out.warn("[pgbouncer] admin_users", f"one console user in pgcat-py: {admin} "
                                                f"kept, {', '.join(admins[1:])} dropped")
    out.general.set("admin_username", admin, note)
    if admin in users and secret_kind(users[admin]) != SCRAM:
        out.general.set("admin_password", passwords[admin], "from auth_file")
    else:
        out.general.set("admin_password", secrets.token_urlsafe(18), "placeholder: set it")
        out.warn("general.admin_password", f"no usable password for {admin}: a random one "
                                           "was written, set your own")
    out.general.set("admin_auth_type", auth_type, "auth_type")
