"""The [databases] and [users] sections: a pool per database, a user table per client user.

PgBouncer lets every auth_file user reach every database, and logs in to the server as the
client (or as the database's forced `user=`); pgcat lists each pool's users, each with its
server credentials. So every auth_file user becomes a user of every pool, with
server_username / server_password when the database forces a user.
"""

from __future__ import annotations

from dataclasses import dataclass

from .auth_query import convert_auth_query
from .general import FOREVER_MS
from .ini import ConvertError, connstring, parsed, to_int, to_ms
from .toml_text import Conversion, Table

PGBOUNCER_POOL_SIZE = 20  # default_pool_size


@dataclass
class Context:
    """What the [pgbouncer] section and the auth_file say for every pool."""

    ini: dict[str, str]
    auth_type: str
    passwords: dict[str, str]  # usable passwords, by user
    user_overrides: dict[str, dict[str, str]]


USER_KEYS = {"pool_mode", "pool_size", "query_timeout", "query_wait_timeout"}


def read_user_overrides(sections: dict[str, dict[str, str]], passwords: dict[str, str],
                        out: Conversion) -> dict[str, dict[str, str]]:
    overrides = {}
    for user, text in sections.get("users", {}).items():
        where = f"[users] {user}"
        if user not in passwords:
            out.warn(where, "not in the auth_file: no password to log in with: skipped")
            continue
        params = connstring(text, where)
        for key in sorted(set(params) - USER_KEYS):
            out.warn(f"{where} {key}", "no per-user equivalent in pgcat-py: dropped")
        overrides[user] = {key: value for key, value in params.items() if key in USER_KEYS}
    return overrides


DATABASE_NO_EQUIVALENT = {  # connection-string keys of [databases] (doc/config.md)
    "connect_query": "pgcat's prewarmer plugin ([pools.NAME.plugins.prewarmer], needs "
                     "query_parser_enabled) runs queries on each new server connection",
    "client_encoding": "clients' own startup parameters reach the server",
    "datestyle": "clients' own startup parameters reach the server",
    "timezone": "clients' own startup parameters reach the server",
    "load_balance_hosts": "one host per pool here (see host)",
    "max_db_connections": "pool_size limits each (pool, user, server)",
    "max_db_client_connections": "max_client_conn limits all clients together",
}
DATABASE_KEYS = {"host", "port", "dbname", "user", "password", "pool_size", "min_pool_size",
                 "reserve_pool", "reserve_pool_size", "pool_mode", "server_lifetime",
                 "query_wait_timeout", "auth_user", "auth_query", "auth_dbname"}
ADMIN_DATABASES = ("pgcat", "pgbouncer")  # pgcat-py's console answers to both names


def convert_pools(databases: dict[str, str], context: Context, out: Conversion) -> None:
    for raw_name, text in databases.items():
        name = raw_name[1:-1].replace('""', '"') if raw_name.startswith('"') else raw_name
        where = f"[databases] {name}"
        if name == "*":
            out.warn(where, "the fallback database cannot be converted: pgcat-py serves "
                            "only the databases it names; add an entry for each")
            continue
        if name in ADMIN_DATABASES:
            out.warn(where, "this name reaches pgcat-py's admin console, not the pool")
        params = connstring(text, where)
        for key in params:
            if key in DATABASE_NO_EQUIVALENT:
                out.warn(f"{where} {key}", f"no equivalent: {DATABASE_NO_EQUIVALENT[key]}: "
                                           "dropped")
            elif key not in DATABASE_KEYS:
                out.warn(f"{where} {key}", "unknown connection parameter: dropped")
        out.pools[name] = (pool_table(params, context, where, out),
                           user_tables(name, params, context, out),
                           shard_table(name, params, where, out))


def pool_mode(value: str, where: str, out: Conversion) -> str:
    value = value.lower()
    if value == "statement":
        out.warn(where, "statement pooling has no equivalent: transaction written (which "
                        "also allows transactions of several statements)")
        return "transaction"
    if value not in ("session", "transaction"):
        raise ConvertError(f"{where}: unknown pool_mode {value!r}")
    return value


def pool_table(params: dict[str, str], context: Context, where: str,
               out: Conversion) -> Table:
    pool, ini = Table(), context.ini
    if "pool_mode" in params:
        pool.set("pool_mode", pool_mode(params["pool_mode"], f"{where} pool_mode", out),
                 "pool_mode of the database")
    elif "pool_mode" in ini:
        pool.set("pool_mode", pool_mode(ini["pool_mode"], "[pgbouncer] pool_mode", out),
                 "pool_mode")
    else:
        pool.set("pool_mode", "session", "PgBouncer's default pool_mode")
    reserve = params.get("reserve_pool_size", params.get("reserve_pool"))
    if reserve is not None:
        pool.set("reserve_pool_size", parsed(to_int, reserve, where), "reserve_pool_size")
    if "server_lifetime" in params:
        pool.set("server_lifetime", parsed(to_ms, params["server_lifetime"], where),
                 "server_lifetime")
    wait = params.get("query_wait_timeout", "-1")  # -1: not set for this database
    if wait != "-1":
        waited = parsed(to_ms, wait, where)
        pool.set("connect_timeout", waited or FOREVER_MS, "query_wait_timeout")
    convert_auth_query(params, context.passwords, pool, where, out, ini.get("auth_user"))
    prepared = parsed(to_int, ini.get("max_prepared_statements", "0"),
                       "[pgbouncer] max_prepared_statements")
    if prepared:
        pool.set("prepared_statements_cache_size", prepared, "max_prepared_statements")
    return pool


def shard_table(name: str, params: dict[str, str], where: str, out: Conversion) -> Table:
    host = params.get("host", "")
    hosts = [h.strip() for h in host.split(",") if h.strip()]
    if not hosts or hosts[0].startswith(("/", "@")):
        out.warn(f"{where} host", "PgBouncer used a Unix socket; pgcat-py reaches servers "
                                  "over TCP: 127.0.0.1 written")
        hosts = ["127.0.0.1"]
    elif hosts[1:]:
        out.warn(f"{where} host", f"pgcat-py has one primary per shard: {hosts[0]} written, "
                 f"{', '.join(hosts[1:])} dropped (add replicas by hand if they are)")
    port = parsed(to_int, params.get("port", "5432").split(",")[0], f"{where} port")
    shard = Table()
    shard.set("database", params.get("dbname", name), "dbname")
    shard.set("servers", [[hosts[0], port, "primary"]], "host, port")
    return shard


def user_tables(name: str, params: dict[str, str], context: Context,
                out: Conversion) -> list[Table]:
    """One table per client user: every auth_file user (PgBouncer lets each reach each
    database), or the database's own user= when there is no auth_file."""
    where = f"[databases] {name}"
    forced = params.get("user")
    if "password" in params and forced is None:
        out.warn(f"{where} password", "without user= PgBouncer does not use it: dropped")
    clients = dict(context.passwords)
    if not clients and forced is not None:
        clients[forced] = params.get("password", "")
    if forced is not None and len(clients) > 1:
        out.warn(f"{where} user", f"PgBouncer shared one pool as {forced}; pgcat-py keeps "
                                  "one per client user, each logging in to the server as "
                                  f"{forced}: up to {len(clients)} x pool_size connections")
    if not clients:
        out.warn(where, "no users (no auth_file, no user=): add [pools.NAME.users.0]")
    server_password = params.get("password", context.passwords.get(forced or "", ""))
    tables = []
    for user, password in clients.items():
        table = user_table(user, password, params, context, out)
        if forced is not None and (forced != user or server_password != password):
            table.set("server_username", forced, "user of the database")
            if server_password:
                table.set("server_password", server_password, "password of the database")
            else:
                out.warn(f"{where} user", f"no password for {forced}: server logins fail "
                                          "unless the server trusts it")
        tables.append(table)
    return tables


def pool_size(user: str, override: dict[str, str], params: dict[str, str],
              ini: dict[str, str], out: Conversion) -> tuple[int, str]:
    """[users] pool_size, else the database's, else default_pool_size, else PgBouncer's 20."""
    for source, table in (("[users] pool_size", override), ("pool_size of the database",
                          params), ("default_pool_size", ini)):
        key = "default_pool_size" if table is ini else "pool_size"
        if key in table:
            size = int(parsed(to_int, table[key], source))
            break
    else:
        return PGBOUNCER_POOL_SIZE, "PgBouncer's default_pool_size"
    if size == 0:
        size = int(str(out.general.entries["max_client_conn"][0]))
        out.warn(f"{source} for {user}", "0 (no limit) has no equivalent: max_client_conn "
                                         f"({size}) written")
    return size, source


def user_table(user: str, password: str, params: dict[str, str], context: Context,
               out: Conversion) -> Table:
    ini, override = context.ini, context.user_overrides.get(user, {})
    table = Table()
    table.set("username", user)
    table.set("password", password, "auth_file" if user in context.passwords else "")
    table.set("auth_type", context.auth_type, "auth_type")
    table.set("pool_size", *pool_size(user, override, params, ini, out))
    minimum = parsed(to_int, params.get("min_pool_size", ini.get("min_pool_size", "0")),
                     "min_pool_size")
    if minimum:
        table.set("min_pool_size", minimum, "min_pool_size")
    if "pool_mode" in override:
        table.set("pool_mode", pool_mode(override["pool_mode"], f"[users] {user}", out),
                  "[users] pool_mode")
    timeout = parsed(to_ms, override.get("query_timeout", ini.get("query_timeout", "0")),
                     "query_timeout")
    if timeout:
        table.set("statement_timeout", timeout, "query_timeout, as PostgreSQL's own")
    wait = override.get("query_wait_timeout", "-1")  # -1: not set for this user
    if wait != "-1":
        table.set("connect_timeout", parsed(to_ms, wait, f"[users] {user}") or FOREVER_MS,
                  "[users] query_wait_timeout")
    return table
