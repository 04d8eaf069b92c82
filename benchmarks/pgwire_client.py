"""A minimal asyncio PostgreSQL client for the login and idle-memory benchmarks.

Just enough of the protocol to log in (trust, md5 or SCRAM-SHA-256), send a simple Query and
say Terminate, built on the project's message encoders (pgcat_py.protocol). It exists because
a driver costs the client side too much CPU and memory when thousands of connections share
this 2-core machine with the server being measured.

SCRAM's expensive step is on the client: SaltedPassword = PBKDF2(password, salt, 4096)
(RFC 5802 §3), about 3 ms of CPU. A server presents each user's stored salt at every login
(PostgreSQL and PgBouncer from the role's secret, pgcat-py from the verifier it computes at
config load), so this client computes it once per (password, salt, iterations) and keeps it:
1000 logins would otherwise spend 3 s of the machine's CPU on the client's side of the burst.
The proofs themselves are computed per login, as any client does. (pgcat_py.protocol.auth's
ScramClientExchange, through scramp, has no such cache.)

Also runnable as a login prober (`python benchmarks/pgwire_client.py probe ...`): logs in,
runs SELECT 1, disconnects, every INTERVAL seconds until SIGTERM, and prints one line per
attempt, `<start monotonic> <latency s or -1 on failure>`: CLOCK_MONOTONIC is shared by all
processes, so the caller can place each probe in its own timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import signal
import struct
import sys
import time
from dataclasses import dataclass, field

from pgcat_py.protocol import backend as be
from pgcat_py.protocol.auth import SCRAM_SHA_256, md5_response
from pgcat_py.protocol.frontend import PasswordMessage, Query, Terminate
from pgcat_py.protocol.startup import StartupMessage
from pgcat_py.protocol.wire import cstr, i32

_HEADER = struct.Struct("!cI")
_SELECT_1 = Query("SELECT 1").encode()
_TERMINATE = Terminate().encode()

# SaltedPassword per (password, salt, iterations): see the module docstring.
_salted: dict[tuple[str, bytes, int], bytes] = {}


class LoginFailed(Exception):
    """The server refused the login or spoke out of turn; the message says what it sent."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass
class Client:
    """One logged-in connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parameters: dict[str, str] = field(default_factory=dict)

    async def read_message(self) -> tuple[bytes, bytes]:
        head = await self.reader.readexactly(5)
        msg_type, length = _HEADER.unpack(head)
        return msg_type, await self.reader.readexactly(length - 4)

    async def select_1(self) -> None:
        """SELECT 1, read up to ReadyForQuery; LoginFailed on an ErrorResponse."""
        self.writer.write(_SELECT_1)
        error = None
        while True:
            msg_type, payload = await self.read_message()
            if msg_type == b"E":
                error = payload
            elif msg_type == b"Z":
                break
        if error is not None:
            raise LoginFailed(_error_text(error))

    def close(self) -> None:
        """Terminate, then close the socket (no wait for the peer)."""
        try:
            self.writer.write(_TERMINATE)
        finally:
            self.writer.close()


async def connect(target: Target, application_name: str = "") -> Client:
    """Open a connection and log in; LoginFailed if the server says no."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    client = Client(reader, writer)
    try:
        params = {"user": target.user, "database": target.database}
        if application_name:
            params["application_name"] = application_name
        writer.write(StartupMessage(params).encode())
        await _authenticate(client, target)
        await _read_welcome(client)
    except BaseException:
        writer.close()
        raise
    return client


async def _authenticate(client: Client, target: Target) -> None:
    msg_type, payload = await client.read_message()
    _expect(msg_type, payload, b"R")
    code = struct.unpack_from("!i", payload)[0]
    if code == be.AUTH_OK:
        return
    if code == be.AUTH_MD5_PASSWORD:
        answer = md5_response(target.user, target.password, payload[4:8])
        client.writer.write(PasswordMessage(cstr(answer)).encode())
    elif code == be.AUTH_SASL:
        await _scram(client, target.password)
    else:
        raise LoginFailed(f"authentication request {code} is not supported here")
    msg_type, payload = await client.read_message()
    _expect(msg_type, payload, b"R")
    if struct.unpack_from("!i", payload)[0] != be.AUTH_OK:
        raise LoginFailed("no AuthenticationOk after the password")


async def _scram(client: Client, password: str) -> None:
    """RFC 5802 client side, with no user name in the SCRAM message (PostgreSQL takes the
    startup user's) and no channel binding (gs2 header "n,,")."""
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    client.writer.write(PasswordMessage(cstr(SCRAM_SHA_256) + i32(len(first)) + first).encode())
    msg_type, payload = await client.read_message()
    _expect(msg_type, payload, b"R")
    server_first = payload[4:].decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    if not fields["r"].startswith(nonce):
        raise LoginFailed("the server's SCRAM nonce does not extend ours")
    salted = salted_password(password, base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = _hmac(salted, b"Client Key")
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    client.writer.write(PasswordMessage(final.encode()).encode())
    msg_type, payload = await client.read_message()
    _expect(msg_type, payload, b"R")
    expected = base64.b64encode(_hmac(_hmac(salted, b"Server Key"), auth_message))
    if payload[4:] != b"v=" + expected:
        raise LoginFailed("the server's SCRAM signature does not match")


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) of RFC 5802, once per (password, salt, iterations)."""
    key = (password, salt, iterations)
    salted = _salted.get(key)
    if salted is None:
        salted = _salted[key] = hashlib.pbkdf2_hmac("sha256", password.encode(), salt,
                                                    iterations)
    return salted


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


async def _read_welcome(client: Client) -> None:
    """ParameterStatus*, BackendKeyData, ReadyForQuery."""
    while True:
        msg_type, payload = await client.read_message()
        if msg_type == b"Z":
            return
        if msg_type == b"S":
            name, value, _ = payload.split(b"\0", 2)
            client.parameters[name.decode()] = value.decode()
        elif msg_type not in (b"K", b"N"):
            _expect(msg_type, payload, b"K")


def _expect(msg_type: bytes, payload: bytes, wanted: bytes) -> None:
    if msg_type == wanted:
        return
    if msg_type == b"E":
        raise LoginFailed(_error_text(payload))
    raise LoginFailed(f"expected {wanted!r}, got {msg_type!r}")


def _error_text(payload: bytes) -> str:
    """The M (message) field of an ErrorResponse."""
    for item in payload.split(b"\0"):
        if item[:1] == b"M":
            return item[1:].decode(errors="replace")
    return "error"


# --- the prober -------------------------------------------------------------------------
async def probe(target: Target, interval: float) -> None:
    """Login + SELECT 1 + close every `interval` s until SIGTERM; one line per attempt."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        started = time.monotonic()
        try:
            client = await connect(target, application_name="probe")
            await client.select_1()
            latency = time.monotonic() - started
            client.close()
        except (OSError, LoginFailed, asyncio.IncompleteReadError):
            latency = -1.0
        print(f"{started:.6f} {latency:.6f}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="login prober: see the module docstring")
    p.add_argument("mode", choices=["probe"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("database")
    p.add_argument("--interval", type=float, default=0.01)
    args = p.parse_args(argv)
    target = Target(args.host, args.port, args.user, args.password, args.database)
    asyncio.run(probe(target, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
