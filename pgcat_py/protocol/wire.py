"""Primitive readers and writers for message payloads: int16/int32, C strings, byte arrays.

PostgreSQL strings on the wire are NUL-terminated and, for everything the proxy touches,
UTF-8 (client_encoding may differ, but names and SQL we inspect are ASCII-safe; we decode with
surrogateescape so no byte is ever lost in a round trip).
"""

from __future__ import annotations

import struct

from .errors import ProtocolViolation

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")


def cstr(text: str) -> bytes:
    """A NUL-terminated string."""
    return text.encode("utf-8", "surrogateescape") + b"\0"


def i16(value: int) -> bytes:
    return _I16.pack(value)


def u16(value: int) -> bytes:
    """A count of following items: Int16 in the docs, read unsigned by PostgreSQL and libpq
    (pq_getmsgint, pqGetInt), so a Bind may carry up to 65535 parameters."""
    return _U16.pack(value)


def i32(value: int) -> bytes:
    return _I32.pack(value)


def u32(value: int) -> bytes:
    return _U32.pack(value)


def message(msg_type: bytes, payload: bytes = b"") -> bytes:
    """Frame a payload: type byte + int32 length (which counts itself) + payload."""
    return msg_type + _I32.pack(len(payload) + 4) + payload


class Reader:
    """Sequential reader over one message payload; every overrun is a ProtocolViolation."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise ProtocolViolation("message payload is shorter than its fields")
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def int16(self) -> int:
        value: int = _I16.unpack(self._take(2))[0]
        return value

    def uint16(self) -> int:
        value: int = _U16.unpack(self._take(2))[0]
        return value

    def int32(self) -> int:
        value: int = _I32.unpack(self._take(4))[0]
        return value

    def uint32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def byte(self) -> int:
        return self._take(1)[0]

    def cstring(self) -> str:
        end = self._data.find(b"\0", self._pos)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        text = self._data[self._pos:end].decode("utf-8", "surrogateescape")
        self._pos = end + 1
        return text

    def bytes_(self, n: int) -> bytes:
        return self._take(n)

    def nullable_bytes(self) -> bytes | None:
        """An int32 length (-1 means NULL) followed by that many bytes."""
        n = self.int32()
        return None if n == -1 else self._take(n)

    def rest(self) -> bytes:
        chunk = self._data[self._pos:]
        self._pos = len(self._data)
        return chunk

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def end(self) -> None:
        """Assert the payload was consumed exactly."""
        if self._pos != len(self._data):
            raise ProtocolViolation("message payload is longer than its fields")
