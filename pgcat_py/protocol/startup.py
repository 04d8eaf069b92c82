"""Startup packets: StartupMessage, SSLRequest, GSSENCRequest and CancelRequest.

These come before any regular message and have no type byte: int32 length, int32 code, body.
Rules follow PostgreSQL's ProcessStartupPacket (src/backend/postmaster/postmaster.c).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import FEATURE_NOT_SUPPORTED, INVALID_AUTHORIZATION, ProtocolViolation
from .wire import cstr, i32

SSL_REQUEST_CODE = 80877103      # (1234 << 16) | 5679
GSSENC_REQUEST_CODE = 80877104   # (1234 << 16) | 5680
CANCEL_REQUEST_CODE = 80877102   # (1234 << 16) | 5678
PROTOCOL_3_0 = 3 << 16           # 196608
MAX_STARTUP_PACKET_LENGTH = 10000  # src/include/libpq/pqcomm.h

_I32x2 = struct.Struct("!ii")


@dataclass(frozen=True, slots=True)
class StartupMessage:
    params: dict[str, str] = field(default_factory=dict)
    minor_version: int = 0

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    @property
    def database(self) -> str:
        # PostgreSQL: the database defaults to the user name.
        return self.params.get("database") or self.user

    def encode(self) -> bytes:
        body = i32(PROTOCOL_3_0 | self.minor_version)
        body += b"".join(cstr(k) + cstr(v) for k, v in self.params.items()) + b"\0"
        return i32(len(body) + 4) + body


@dataclass(frozen=True, slots=True)
class SSLRequest:
    def encode(self) -> bytes:
        return _I32x2.pack(8, SSL_REQUEST_CODE)


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    def encode(self) -> bytes:
        return _I32x2.pack(8, GSSENC_REQUEST_CODE)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    process_id: int
    secret_key: int

    def encode(self) -> bytes:
        return _I32x2.pack(16, CANCEL_REQUEST_CODE) + _I32x2.pack(self.process_id, self.secret_key)


StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


def read_startup_packet(data: bytes | bytearray) -> tuple[StartupPacket | None, int]:
    """Decode the startup packet at the head of ``data``: ``(packet, bytes consumed)``.

    ``(None, 0)`` means more bytes are needed. A bad length, an unknown code or a malformed
    body raises ProtocolViolation as soon as it can be seen.
    """
    if len(data) < 4:
        return None, 0
    length = int.from_bytes(data[:4], "big", signed=True)
    # ProcessStartupPacket discounts the length word before checking: 4..10000 bytes follow.
    if length < 8 or length - 4 > MAX_STARTUP_PACKET_LENGTH:
        raise ProtocolViolation("invalid length of startup packet")
    if len(data) < length:
        return None, 0
    code = int.from_bytes(data[4:8], "big")
    body = bytes(data[8:length])
    return _decode(code, body), length


def _decode(code: int, body: bytes) -> StartupPacket:
    if code == SSL_REQUEST_CODE and not body:
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE and not body:
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE and len(body) == 8:
        return CancelRequest(*_I32x2.unpack(body))
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE):
        raise ProtocolViolation("invalid length of startup packet")
    major, minor = code >> 16, code & 0xFFFF
    if major != 3:
        # Not a malformed packet but a version we do not speak: PostgreSQL says 0A000.
        raise ProtocolViolation(
            f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
            sqlstate=FEATURE_NOT_SUPPORTED)
    return StartupMessage(_decode_params(body), minor)


def _decode_params(body: bytes) -> dict[str, str]:
    # name\0value\0 ... \0 ; PostgreSQL requires the final terminator.
    if not body.endswith(b"\0"):
        raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
    # Drop the final terminator; what is left is "name\0value\0" pairs (or nothing).
    parts = body[:-1].split(b"\0")
    if parts[-1] != b"" and body != b"\0":
        raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
    parts = parts[:-1]
    # An empty name is the terminator to PostgreSQL: one before the last byte ends the list
    # early, and the bytes after it make the layout invalid.
    if len(parts) % 2 or not all(parts[::2]):
        raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
    params: dict[str, str] = {}
    for name, value in zip(parts[::2], parts[1::2], strict=True):
        params[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    if not params.get("user"):
        raise ProtocolViolation("no PostgreSQL user name specified in startup packet",
                                sqlstate=INVALID_AUTHORIZATION)
    return params


def parse_options(options: str) -> dict[str, str]:
    """Settings from the ``options`` startup parameter: ``-c name=value`` and ``--name=value``.

    Backslash escapes a space, as libpq documents for the options keyword. Command-line
    switches other than -c / -- are not settings and are ignored.
    """
    words, current, escaped = [], [], False
    for ch in options:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    settings: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        setting = None
        if word == "-c" and i + 1 < len(words):
            setting, i = words[i + 1], i + 1
        elif word.startswith("-c") or word.startswith("--"):
            setting = word[2:]
        if setting and "=" in setting:
            name, value = setting.split("=", 1)
            settings[name.replace("-", "_")] = value
        i += 1
    return settings
