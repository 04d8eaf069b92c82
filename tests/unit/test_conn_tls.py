"""MessageConnection.start_tls on uvloop, over a socketpair (no network, no server).

The traps: a handshake that fails must be reported lost exactly once (uvloop tells the app
protocol for some failures and not for others; a client never reported lost holds its
max_client_conn slot forever), and after a good one the connection must read and write
through the TLS transport as if nothing had changed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from pgcat_py.conn import ConnectionClosed, MessageConnection
from pgcat_py.protocol.frontend import Query
from tests.harness.certs import CertFiles, make_ca, make_leaf

SETTLE_S = 2.0


class Peer(MessageConnection):
    def __init__(self) -> None:
        super().__init__()
        self.lost_calls = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_calls += 1
        super().connection_lost(exc)


class Certs:
    def __init__(self, directory: Path) -> None:
        self.ca = make_ca(directory, "ca")
        self.wrong_ca = make_ca(directory, "wrong_ca")
        self.leaf = make_leaf(directory, self.ca, "leaf", "DNS:localhost")

    def server(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.leaf.cert, self.leaf.key)
        return context

    @staticmethod
    def client(ca: CertFiles) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(ca.cert))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(asyncio.wait_for(scenario(), 10))


async def connected() -> tuple[Peer, Peer]:
    """Two MessageConnections on the ends of a socketpair."""
    left, right = socket.socketpair()
    loop = asyncio.get_running_loop()
    _, server = await loop.connect_accepted_socket(Peer, left)
    _, client = await loop.create_connection(Peer, sock=right)
    return server, client


async def one_side() -> tuple[Peer, socket.socket]:
    """A MessageConnection, and the raw (non-blocking) socket at the other end."""
    left, right = socket.socketpair()
    right.setblocking(False)
    _, conn = await asyncio.get_running_loop().connect_accepted_socket(Peer, left)
    return conn, right


async def settle(peer: Peer) -> None:
    for _ in range(int(SETTLE_S / 0.01)):
        if peer.lost_calls:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a second report would come about now


def test_upgraded_connection_reads_and_writes_messages(certs: Certs) -> None:
    async def scenario() -> None:
        server, client = await connected()
        raw = server.transport
        await asyncio.gather(
            server.start_tls(certs.server(), server_side=True),
            client.start_tls(certs.client(certs.ca), server_side=False,
                             server_hostname="localhost"))
        assert server.transport is not raw
        assert server.transport.get_extra_info("ssl_object") is not None
        big = "x" * 300_000  # many TLS records
        client.write(Query(big).encode())
        msg_type, payload = await server.read_message()
        assert (msg_type, payload[:-1].decode()) == (ord("Q"), big)
        server.write(b"Z\x00\x00\x00\x05I")
        assert await client.read_message() == (ord("Z"), b"I")
        client.close()
        await settle(server)
        assert (server.lost_calls, server.is_closed) == (1, True)

    run(scenario)


def test_garbage_instead_of_a_handshake_is_one_loss(certs: Certs) -> None:
    async def scenario() -> None:
        conn, sock = await one_side()
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"\x16\x03\x01\x00\x05not a ClientHello at all")
        with pytest.raises(ConnectionClosed, match="TLS handshake failed"):
            await conn.start_tls(certs.server(), server_side=True)
        await settle(conn)
        assert (conn.lost_calls, conn.is_closed) == (1, True)
        sock.close()

    run(scenario)


def test_peer_leaving_mid_handshake_is_one_loss(certs: Certs) -> None:
    async def scenario() -> None:
        conn, sock = await one_side()
        handshake = asyncio.ensure_future(conn.start_tls(certs.server(), server_side=True))
        await asyncio.sleep(0.05)
        sock.close()
        with pytest.raises(ConnectionClosed):
            await handshake
        await settle(conn)
        assert conn.lost_calls == 1

    run(scenario)


def test_certificate_from_an_unknown_ca_fails_the_client_once(certs: Certs) -> None:
    async def scenario() -> None:
        server, client = await connected()
        results = await asyncio.gather(
            server.start_tls(certs.server(), server_side=True),
            client.start_tls(certs.client(certs.wrong_ca), server_side=False,
                             server_hostname="localhost"),
            return_exceptions=True)
        assert isinstance(results[1], ConnectionClosed)
        assert "certificate verify failed" in str(results[1])
        await settle(client)
        await settle(server)
        assert client.lost_calls == 1
        assert server.lost_calls == 1  # its handshake broke off, or it got the close

    run(scenario)


def test_wrong_host_name_fails(certs: Certs) -> None:
    async def scenario() -> None:
        server, client = await connected()
        results = await asyncio.gather(
            server.start_tls(certs.server(), server_side=True),
            client.start_tls(certs.client(certs.ca), server_side=False,
                             server_hostname="elsewhere.example"),
            return_exceptions=True)
        assert isinstance(results[1], ConnectionClosed)
        assert "Hostname mismatch" in str(results[1])

    run(scenario)
