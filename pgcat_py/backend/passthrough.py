"""Secrets of auth_query users: what PostgreSQL stores, and what a server login can do with it.

A StoredSecret is one row of auth_query: an md5 hash (``md5`` + 32 hex digits), a SCRAM
verifier, or, from a custom lookup table, a plaintext password. A ServerSecret is the
mutable holder the ServerTargets of one (pool, user) share: every client login through
auth_query refreshes it, and every later server login reads it. With an md5 hash the server
gets pass-the-hash md5 (protocol.auth.md5_response); with a SCRAM verifier it gets the
ClientKey the last client's proof gave up (protocol.scram_passthrough).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.auth import ScramClientExchange, ScramVerifier
from ..protocol.errors import ServerError
from ..protocol.scram_passthrough import ScramKeys, ScramPassthroughClient, parse_scram_secret


@dataclass(frozen=True)
class StoredSecret:
    """A user's secret as auth_query returned it."""

    text: str  # md5 hash, SCRAM verifier or plaintext password
    scram: ScramVerifier | None  # the parsed verifier, when ``text`` is one

    @classmethod
    def parse(cls, text: str) -> StoredSecret:
        return cls(text, parse_scram_secret(text))

    @property
    def kind(self) -> str:
        """"scram-sha-256", "md5" or "plain" (for logs; never the secret itself)."""
        if self.scram is not None:
            return "scram-sha-256"
        return "md5" if self.text.startswith("md5") and len(self.text) == 35 else "plain"

    def __repr__(self) -> str:  # a secret never reaches a log
        return f"StoredSecret({self.kind})"


class ServerSecret:
    """How the proxy logs in to servers as an auth_query user; see the module docstring."""

    __slots__ = ("password", "scram_keys")

    def __init__(self) -> None:
        self.password: str | None = None  # plaintext or md5 hash
        self.scram_keys: ScramKeys | None = None

    def learn(self, secret: StoredSecret, client_key: bytes) -> bool:
        """Take what a client login just proved; True when it differs from before."""
        if secret.scram is not None:
            keys = ScramKeys(secret.scram, client_key) if client_key else None
            changed = keys != self.scram_keys or self.password is not None
            self.password, self.scram_keys = None, keys
        else:
            changed = secret.text != self.password or self.scram_keys is not None
            self.password, self.scram_keys = secret.text, None
        return changed

    @property
    def is_known(self) -> bool:
        return self.password is not None or self.scram_keys is not None

    def __repr__(self) -> str:
        return f"ServerSecret(known={self.is_known})"


def scram_client(user: str, password: str | None, secret: ServerSecret | None,
                 server_name: str) -> ScramClientExchange | ScramPassthroughClient:
    """The client half of a server's SCRAM exchange: with a ClientKey when an auth_query
    login left one (no password needed), else with the password."""
    if secret is not None and secret.scram_keys is not None:
        return ScramPassthroughClient(secret.scram_keys)
    if secret is not None:
        password = secret.password
    if password is None:
        hint = " (no client has logged in through auth_query yet)" if secret is not None else ""
        raise ServerError(f"server {server_name} asks for a password and none is "
                          f"configured{hint}")
    return ScramClientExchange(user, password)
