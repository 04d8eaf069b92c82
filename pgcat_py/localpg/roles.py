"""Who may log in to a local topology, and how: roles, databases and pg_hba.conf.

Every primary (main and shards) gets the same roles; replicas inherit them through
pg_basebackup. The auth-test roles each log in over TCP with one method, so tests of the
proxy's server-side authentication can pick a method by picking a user.
"""

from __future__ import annotations

from dataclasses import dataclass

APP_USER = "app"
APP_PASSWORD = "app"
APP_DATABASES = ("app", "bench")  # owned by app, as is their public schema
REPLICATION_USER = "replicator"


@dataclass(frozen=True)
class LoginRole:
    """A role for auth tests: its password (None: trust) and the pg_hba method it gets."""

    name: str
    password: str | None
    method: str


MD5_ROLE = LoginRole("md5_user", "md5_pass", "md5")
TRUST_ROLE = LoginRole("trust_user", None, "trust")
SCRAM_ROLE = LoginRole("scram_user", "scram_pass", "scram-sha-256")
AUTH_TEST_ROLES = (MD5_ROLE, TRUST_ROLE, SCRAM_ROLE)


def hba_conf(host_auth: str) -> str:
    """pg_hba.conf: first match wins, so the per-user lines come before the generic one."""
    lines = [
        "# written by pgcat_py.localpg; the first matching line wins",
        "local all all trust",
        "local replication all trust",
        f"host all {TRUST_ROLE.name} 127.0.0.1/32 trust",
        f"host all {MD5_ROLE.name} 127.0.0.1/32 md5",
        f"host all all 127.0.0.1/32 {host_auth}",
        f"host replication all 127.0.0.1/32 {host_auth}",
    ]
    return "\n".join(lines) + "\n"


def setup_sql(replication_password: str) -> str:
    """The psql script run once on every new primary, as the superuser.

    md5_user's password is stored as md5 (password_encryption = md5 while it is created),
    so its `md5` pg_hba line really does md5; with a scram secret PostgreSQL would answer
    an md5 line with SCRAM instead. The extension is made in template1 first so that the
    databases created afterwards already have it (CREATE DATABASE must not run while
    connected to its template, hence the way back to `postgres`). FILE_COPY copies the small
    template faster than PG15's default WAL_LOG when fsync is off (measured 0.12 s vs 0.35 s).
    """
    auth_roles = ", ".join(role.name for role in AUTH_TEST_ROLES)
    return f"""
CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';
GRANT pg_read_all_stats TO {APP_USER};
CREATE ROLE {REPLICATION_USER} LOGIN REPLICATION PASSWORD '{replication_password}';
CREATE ROLE {SCRAM_ROLE.name} LOGIN PASSWORD '{SCRAM_ROLE.password}';
CREATE ROLE {TRUST_ROLE.name} LOGIN;
SET password_encryption = 'md5';
CREATE ROLE {MD5_ROLE.name} LOGIN PASSWORD '{MD5_ROLE.password}';
RESET password_encryption;
CREATE EXTENSION pg_stat_statements;
\\connect template1
CREATE EXTENSION pg_stat_statements;
\\connect postgres
CREATE DATABASE app OWNER {APP_USER} STRATEGY = FILE_COPY;
CREATE DATABASE bench OWNER {APP_USER} STRATEGY = FILE_COPY;
GRANT CONNECT ON DATABASE app TO {auth_roles};
\\connect app
ALTER SCHEMA public OWNER TO {APP_USER};
GRANT ALL ON SCHEMA public TO {auth_roles};
\\connect bench
ALTER SCHEMA public OWNER TO {APP_USER};
"""
