"""auth_query without a server: the query text, reading its rows, the cache policy, and
what a server login does with each kind of secret."""

from __future__ import annotations

import pytest

from pgcat_py.backend.auth_query import (
    CACHE_TTL,
    REFETCH_INTERVAL,
    AuthQuery,
    AuthQueryFailed,
    AuthQuerySettings,
    query_for,
    secret_from_rows,
)
from pgcat_py.backend.passthrough import ServerSecret, StoredSecret, scram_client
from pgcat_py.backend.server import ServerTarget
from pgcat_py.protocol.auth import ScramClientExchange, ScramVerifier
from pgcat_py.protocol.errors import ServerError
from pgcat_py.protocol.scram_passthrough import ScramPassthroughClient

MD5 = "md5" + "a" * 32
TEMPLATE = "SELECT usename, passwd FROM pg_shadow WHERE usename='$1'"


def test_user_name_is_a_literal_whether_quoted_or_not() -> None:
    assert query_for(TEMPLATE, "bob") == "SELECT usename, passwd FROM pg_shadow WHERE usename='bob'"
    assert query_for("SELECT * FROM lookup($1)", "bob") == "SELECT * FROM lookup('bob')"


def test_a_quote_in_the_name_cannot_inject_sql() -> None:
    # pgcat pastes the name as is: x' OR '1'='1 would match every row.
    sql = query_for(TEMPLATE, "x' OR '1'='1")
    assert sql.endswith("usename='x'' OR ''1''=''1'")


def test_a_backslash_in_the_name_uses_an_escape_string() -> None:
    assert query_for(TEMPLATE, "a\\'b").endswith("usename=E'a\\\\''b'")


def test_rows_give_the_secret_of_the_user_named_in_the_first_column() -> None:
    assert secret_from_rows([["bob", MD5]], "bob") == StoredSecret(MD5, None)
    assert secret_from_rows([["alice", MD5]], "bob") is None
    assert secret_from_rows([["bob", None]], "bob") is None  # no password: no login
    assert secret_from_rows([], "bob") is None
    assert secret_from_rows([["bob"]], "bob") is None  # one column


def test_secret_kinds_and_no_secret_in_repr() -> None:
    verifier = ScramVerifier.from_password("pw")
    assert StoredSecret.parse(MD5).kind == "md5"
    assert StoredSecret.parse("plain").kind == "plain"
    scram = StoredSecret("SCRAM-SHA-256$...", verifier)
    assert scram.kind == "scram-sha-256"
    assert MD5 not in repr(StoredSecret.parse(MD5))


class FakeLookup(AuthQuery):
    """An AuthQuery whose 'server' is a dict; counts the queries."""

    def __init__(self, secrets: dict[str, str]) -> None:
        target = ServerTarget("127.0.0.1", 1, "db", "lookup", "pw")
        super().__init__(AuthQuerySettings("app", TEMPLATE, target, 1.0))
        self.secrets = secrets
        self.fail = False

    async def _lookup(self, user: str) -> StoredSecret | None:
        self.lookups += 1
        if self.fail:
            raise ServerError("server down")
        text = self.secrets.get(user)
        return StoredSecret.parse(text) if text else None


async def test_secret_is_cached_for_the_ttl() -> None:
    lookup = FakeLookup({"bob": MD5})
    assert (await lookup.secret("bob", 100.0)) == StoredSecret(MD5, None)
    await lookup.secret("bob", 100.0 + CACHE_TTL - 1)
    assert lookup.lookups == 1
    await lookup.secret("bob", 100.0 + CACHE_TTL + 1)
    assert lookup.lookups == 2


async def test_unknown_users_are_cached_too() -> None:
    lookup = FakeLookup({})
    assert await lookup.secret("ghost", 100.0) is None
    assert await lookup.secret("ghost", 101.0) is None
    assert lookup.lookups == 1


async def test_failed_login_refetches_at_most_once_per_interval() -> None:
    lookup = FakeLookup({"bob": MD5})
    await lookup.secret("bob", 100.0)
    await lookup.refetch("bob", 100.0 + REFETCH_INTERVAL / 2)
    assert lookup.lookups == 1  # a guessing loop is not a query per guess
    lookup.secrets["bob"] = "md5" + "b" * 32  # ALTER ROLE ... PASSWORD
    fresh = await lookup.refetch("bob", 100.0 + REFETCH_INTERVAL + 0.1)
    assert fresh is not None and fresh.text == "md5" + "b" * 32


async def test_failing_lookup_uses_the_old_answer_else_is_08006() -> None:
    lookup = FakeLookup({"bob": MD5})
    await lookup.secret("bob", 100.0)
    lookup.fail = True
    assert (await lookup.secret("bob", 100.0 + CACHE_TTL + 1)) == StoredSecret(MD5, None)
    with pytest.raises(AuthQueryFailed) as caught:
        await lookup.secret("alice", 100.0)
    assert caught.value.sqlstate == "08006"
    assert "auth_query" in caught.value.message


def test_server_secret_learns_each_kind() -> None:
    verifier = ScramVerifier.from_password("pw")
    secret = ServerSecret()
    assert not secret.is_known
    assert secret.learn(StoredSecret(MD5, None), b"")
    assert secret.password == MD5 and not secret.learn(StoredSecret(MD5, None), b"")
    assert secret.learn(StoredSecret("SCRAM-SHA-256$...", verifier), b"k" * 32)
    assert secret.password is None and secret.scram_keys is not None
    assert isinstance(scram_client("bob", None, secret, "s"), ScramPassthroughClient)


def test_scram_client_without_keys_uses_the_password_or_says_why_not() -> None:
    assert isinstance(scram_client("bob", "pw", None, "s"), ScramClientExchange)
    with pytest.raises(ServerError, match="no client has logged in through auth_query"):
        scram_client("bob", None, ServerSecret(), "s")
