"""The validation rules of pgcat.md §1.5 that relate several values, each naming its key.

pgcat stops at the first broken rule and logs it without a key; we list every broken rule
with the dotted path of the key to fix. Beyond pgcat, we refuse what would crash or silently
misroute at run time: shard numbers with gaps, a pool without shards, a mirror pointing past
the server list, two users of one pool with the same username, and tls_mode = "require"
without a certificate.

`check_tls_files` is the file half of rule 4 (certificate and key must load). It is separate
because pgcat's own example configs name certificate files relative to pgcat's repository;
`--check` calls it, and the proxy builds its SSL contexts (config/tls.py) at startup.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pgcat_py.config.errors import Problem, join_key_path
from pgcat_py.config.general import General
from pgcat_py.config.model import Config
from pgcat_py.config.pool import Pool, Shard
from pgcat_py.config.tls import client_ssl_context, server_ssl_context

SHARD_KEY = re.compile(r"[0-9]+")

Path = tuple[str, ...]


def _problem(path: Path, message: str) -> Problem:
    return Problem(join_key_path(path), message)


def problems_of(config: Config) -> list[Problem]:
    """Every broken rule, in pgcat's order (auth, TLS, then pool by pool)."""
    found = list(_general_auth_query(config.general))
    found += _tls_key_pair(config.general)
    for name, pool in config.pools.items():
        found += _pool_auth(config.general, ("pools", name), pool)
        found += _pool_rules(("pools", name), pool)
    return found


def _general_auth_query(general: General) -> Iterator[Problem]:
    if general.auth_query is None:
        return
    for key in ("auth_query_user", "auth_query_password"):
        if getattr(general, key) is None:
            yield Problem(f"general.{key}", "required when general.auth_query is set")


def _tls_key_pair(general: General) -> Iterator[Problem]:
    if general.tls_certificate is not None and general.tls_private_key is None:
        yield Problem("general.tls_private_key", "required when tls_certificate is set")
    if general.tls_required and general.tls_certificate is None:
        yield Problem("general.tls_mode",
                      '"require" needs tls_certificate and tls_private_key')


def _inherit(own: str | None, general: str | None) -> str | None:
    return own if own is not None else general


def _pool_auth(general: General, path: Path, pool: Pool) -> Iterator[Problem]:
    """Rules 2 and 3, after inheriting general's auth_query* as pgcat does."""
    auth_query = _inherit(pool.auth_query, general.auth_query)
    query_user = _inherit(pool.auth_query_user, general.auth_query_user)
    query_password = _inherit(pool.auth_query_password, general.auth_query_password)
    # With auth_query inherited, rule 1 already speaks for general's missing keys.
    if pool.auth_query is not None:
        for key, value in (
            ("auth_query_user", query_user),
            ("auth_query_password", query_password),
        ):
            if value is None:
                yield _problem((*path, key), "required when auth_query is set")
    if None in (auth_query, query_user, query_password):
        for key, user in pool.users.items():
            # pgcat demands one even for trust users; a trust user whose server also trusts
            # needs none (the server login fails clearly if it does ask).
            if user.password is None and user.auth_type != "trust":
                yield _problem(
                    (*path, "users", key, "password"),
                    "required: every user needs a password unless the pool has auth_query, "
                    "auth_query_user and auth_query_password",
                )


def _pool_rules(path: Path, pool: Pool) -> Iterator[Problem]:
    yield from _shard_numbering(path, pool)
    for key, shard in pool.shards.items():
        yield from _shard_servers((*path, "shards", key), shard)
    if pool.query_parser_read_write_splitting and not pool.query_parser_enabled:
        yield _problem(
            (*path, "query_parser_read_write_splitting"), "requires query_parser_enabled = true"
        )
    if pool.plugins is not None and not pool.query_parser_enabled:
        yield _problem((*path, "plugins"), "pool plugins require query_parser_enabled = true")
    if pool.plugin_module is not None and not pool.query_parser_enabled:
        yield _problem((*path, "plugin_module"), "requires query_parser_enabled = true")
    index = pool.default_shard_index
    if index is not None and index >= len(pool.shards):
        yield _problem(
            (*path, "default_shard"), f"invalid shard {index}: the pool has {len(pool.shards)}"
        )
    yield from _users(path, pool)
    if pool.db_activity_based_routing:
        for key in ("db_activity_init_delay", "table_mutation_cache_ms_ttl", "db_activity_ttl"):
            if getattr(pool, key) == 0:
                yield _problem(
                    (*path, key), "must be greater than 0 when db_activity_based_routing is on"
                )


def _shard_numbering(path: Path, pool: Pool) -> Iterator[Problem]:
    if not pool.shards:
        yield _problem((*path, "shards"), "a pool needs at least one shard")
        return
    numbers = []
    for key in pool.shards:
        if SHARD_KEY.fullmatch(key) is None:
            yield _problem((*path, "shards", key), "shard keys must be numbers, starting at 0")
        else:
            numbers.append(int(key))
    if len(numbers) == len(pool.shards) and sorted(numbers) != list(range(len(numbers))):
        yield _problem(
            (*path, "shards"),
            f"shards must be numbered 0 to {len(numbers) - 1} without gaps or repeats, "
            f"got {', '.join(sorted(pool.shards, key=int))}",
        )


def _shard_servers(path: Path, shard: Shard) -> Iterator[Problem]:
    if not shard.servers:
        yield _problem((*path, "servers"), "a shard needs at least one server")
    first_primary: int | None = None
    seen: dict[tuple[str, int, str], int] = {}
    for index, server in enumerate(shard.servers):
        if server.role == "primary":
            if first_primary is not None:
                yield _problem(
                    (*path, "servers", str(index)),
                    f"more than one primary in the shard (servers.{first_primary} is one)",
                )
            else:
                first_primary = index
        identity = (server.host, server.port, server.role)
        if identity in seen:
            yield _problem((*path, "servers", str(index)), f"duplicate of servers.{seen[identity]}")
        seen.setdefault(identity, index)
    for index, mirror in enumerate(shard.mirrors or []):
        if mirror.server_index >= len(shard.servers):
            yield _problem(
                (*path, "mirrors", str(index)),
                f"server_index {mirror.server_index} but the shard has "
                f"{len(shard.servers)} servers (indexes start at 0)",
            )


def _users(path: Path, pool: Pool) -> Iterator[Problem]:
    owners: dict[str, str] = {}
    for key, user in pool.users.items():
        if user.min_pool_size is not None and user.min_pool_size > user.pool_size:
            yield _problem(
                (*path, "users", key, "min_pool_size"),
                f"min_pool_size ({user.min_pool_size}) cannot be larger than "
                f"pool_size ({user.pool_size})",
            )
        if user.username in owners:
            yield _problem(
                (*path, "users", key, "username"),
                f"user {user.username!r} is already defined in users.{owners[user.username]}",
            )
        owners.setdefault(user.username, key)


def check_tls_files(config: Config) -> None:
    """Rule 4's file half, and the same for server_tls_ca_file: every TLS file loads.

    Raises ConfigError naming general.tls_certificate, general.tls_private_key or
    general.server_tls_ca_file (config/tls.py builds the contexts the proxy uses).
    """
    client_ssl_context(config)
    server_ssl_context(config)
