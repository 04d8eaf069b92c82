"""PgBouncer's auth_user / auth_query / auth_dbname as pgcat-py's auth_query keys.

PgBouncer looks up users its auth_file does not list by running auth_query as auth_user
(whose password is in the auth_file), in [general] or per database. pgcat-py does the same
with auth_query, auth_query_user and auth_query_password (README: auth_query); PgBouncer's
`$1` is a parameter, ours a quoted literal, so the same query text works. auth_dbname has no
equivalent: the query runs in each pool's own database.
"""

from __future__ import annotations

import secrets

from .ini import MD5, SCRAM, secret_kind
from .toml_text import Conversion, Table

# PgBouncer's default auth_query (doc/config.md, 1.21 and later).
PGBOUNCER_AUTH_QUERY = ("SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE "
                        "rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin")
AUTH_DBNAME = ("no equivalent: the query runs in each pool's own database, on its primary "
               "(auth_query_user needs access there): dropped")


def convert_auth_query(settings: dict[str, str], users: dict[str, str], table: Table,
                       where: str, out: Conversion, general_user: str | None = None) -> None:
    """auth_user (+ its auth_file password) and auth_query of ``settings`` (the [pgbouncer]
    section or a database's connection string) into ``table`` ([general] or the pool);
    ``general_user``: [pgbouncer]'s auth_user, which a database's auth_query runs as."""
    if "auth_dbname" in settings:
        out.warn(f"{where} auth_dbname", AUTH_DBNAME)
    auth_user = settings.get("auth_user")
    if not auth_user:
        if "auth_query" in settings and general_user:
            table.set("auth_query", settings["auth_query"], "auth_query of the database")
        elif "auth_query" in settings:
            out.warn(f"{where} auth_query", "without auth_user PgBouncer does not run it "
                                            "either: dropped")
        return
    query = settings.get("auth_query")
    table.set("auth_query", query or PGBOUNCER_AUTH_QUERY,
              "auth_query" if query else "PgBouncer's default auth_query")
    table.set("auth_query_user", auth_user, "auth_user")
    table.set("auth_query_password", *_password(auth_user, users, where, out))


def _password(auth_user: str, users: dict[str, str], where: str,
              out: Conversion) -> tuple[str, str]:
    secret = users.get(auth_user)
    kind = secret_kind(secret) if secret is not None else None
    if secret is not None and kind != SCRAM:
        if kind == MD5:
            out.warn(f"{where} auth_user", f"{auth_user}'s md5 hash kept: it logs in only "
                                           "where the server asks for md5")
        return secret, "auth_user's line in auth_file"
    reason = "has a SCRAM secret" if secret is not None else "is not"
    out.warn(f"{where} auth_user", f"{auth_user} {reason} in auth_file: a random "
                                   "auth_query_password was written, set its password")
    return secrets.token_urlsafe(18), "placeholder: set it"
