"""The SSL/GSS negotiation of login (frontend/login.py read_startup, frontend/tls.py), on a
fake transport: what is answered, what is refused, and what gets through under
tls_mode = "require". The handshake itself is tested in tests/unit/test_conn_tls.py and
end to end in tests/e2e/test_tls.py."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import pytest

from pgcat_py.conn import MessageConnection
from pgcat_py.frontend.login import read_startup
from pgcat_py.frontend.tls import ClientTls
from pgcat_py.protocol.errors import ProtocolViolation, ProxyError
from pgcat_py.protocol.startup import (
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
)

STARTUP = StartupMessage({"user": "app", "database": "app"})


@dataclass
class FakeTransport:
    written: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FakeContext:
    client_tls: ClientTls | None


class FakeSession(MessageConnection):
    def __init__(self, tls: ClientTls | None, *packets: bytes) -> None:
        super().__init__()
        self.ctx = FakeContext(tls)
        self.transport = FakeTransport()  # type: ignore[assignment]
        self.data_received(b"".join(packets))

    @property
    def written(self) -> bytes:
        return b"".join(self.transport.written)  # type: ignore[attr-defined]


def offered(required: bool = False) -> ClientTls:
    return ClientTls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), required)


async def test_without_a_certificate_ssl_request_gets_n() -> None:
    session = FakeSession(None, SSLRequest().encode(), STARTUP.encode())
    assert await read_startup(session) == STARTUP  # type: ignore[arg-type]
    assert session.written == b"N"


async def test_gssenc_request_gets_n_even_with_a_certificate() -> None:
    session = FakeSession(offered(), GSSENCRequest().encode(), STARTUP.encode())
    assert await read_startup(session) == STARTUP  # type: ignore[arg-type]
    assert session.written == b"N"


async def test_bytes_behind_an_ssl_request_are_refused_before_any_answer() -> None:
    # CVE-2021-23214: they came before the handshake, so they were not encrypted.
    session = FakeSession(offered(), SSLRequest().encode(), STARTUP.encode())
    with pytest.raises(ProtocolViolation, match="unencrypted data after SSL request"):
        await read_startup(session)  # type: ignore[arg-type]
    assert session.written == b""


async def test_require_refuses_a_plaintext_startup_with_28000() -> None:
    session = FakeSession(offered(required=True), STARTUP.encode())
    with pytest.raises(ProxyError) as caught:
        await read_startup(session)  # type: ignore[arg-type]
    assert (caught.value.sqlstate, caught.value.severity) == ("28000", "FATAL")
    assert "SSL/TLS required" in caught.value.message


async def test_require_refuses_after_gssenc_refusal_too() -> None:
    session = FakeSession(offered(required=True), GSSENCRequest().encode(), STARTUP.encode())
    with pytest.raises(ProxyError) as caught:
        await read_startup(session)  # type: ignore[arg-type]
    assert caught.value.sqlstate == "28000"


async def test_require_takes_a_plaintext_cancel_request() -> None:
    # PostgreSQL processes a CancelRequest before looking at hba; libpq before 17 always
    # sends it in plaintext.
    cancel = CancelRequest(1234, 5678)
    session = FakeSession(offered(required=True), cancel.encode())
    assert await read_startup(session) == cancel  # type: ignore[arg-type]


async def test_prefer_serves_plaintext() -> None:
    session = FakeSession(offered(), STARTUP.encode())
    assert await read_startup(session) == STARTUP  # type: ignore[arg-type]
    assert session.written == b""
