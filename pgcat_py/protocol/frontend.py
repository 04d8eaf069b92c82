"""Frontend (client -> server) messages as values: encode to bytes, decode from payloads.

Message formats: PostgreSQL docs, "Message Formats" (protocol-message-formats.html).
PasswordMessage, SASLInitialResponse and SASLResponse share the type byte 'p'; which one a
payload is depends on the authentication exchange, so they are decoded by the auth code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import ProtocolViolation
from .wire import Reader, cstr, i16, i32, message, u16, u32


@dataclass(frozen=True, slots=True)
class Query:
    sql: str

    def encode(self) -> bytes:
        return message(b"Q", cstr(self.sql))


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    query: str
    param_types: tuple[int, ...] = ()

    def encode(self) -> bytes:
        body = cstr(self.name) + cstr(self.query) + u16(len(self.param_types))
        body += b"".join(u32(oid) for oid in self.param_types)
        return message(b"P", body)


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    result_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        parts = [cstr(self.portal), cstr(self.statement), u16(len(self.param_formats))]
        parts += [i16(f) for f in self.param_formats]
        parts.append(u16(len(self.params)))
        for value in self.params:
            parts.append(i32(-1) if value is None else i32(len(value)) + value)
        parts.append(u16(len(self.result_formats)))
        parts += [i16(f) for f in self.result_formats]
        return message(b"B", b"".join(parts))

    def param_format(self, index: int) -> int:
        """The format code (0 text, 1 binary) of parameter ``index``, per Bind's rules."""
        if not self.param_formats:
            return 0
        if len(self.param_formats) == 1:
            return self.param_formats[0]
        if len(self.param_formats) != len(self.params):
            # exec_bind_message refuses this Bind with an ERROR; the session goes on.
            raise ProtocolViolation(f"bind message has {len(self.param_formats)} parameter "
                                    f"formats but {len(self.params)} parameters",
                                    severity="ERROR")
        return self.param_formats[index]


@dataclass(frozen=True, slots=True)
class Describe:
    kind: str  # "S" statement or "P" portal
    name: str

    def encode(self) -> bytes:
        return message(b"D", self.kind.encode() + cstr(self.name))


@dataclass(frozen=True, slots=True)
class Execute:
    portal: str
    max_rows: int = 0

    def encode(self) -> bytes:
        return message(b"E", cstr(self.portal) + i32(self.max_rows))


@dataclass(frozen=True, slots=True)
class Close:
    kind: str  # "S" statement or "P" portal
    name: str

    def encode(self) -> bytes:
        return message(b"C", self.kind.encode() + cstr(self.name))


@dataclass(frozen=True, slots=True)
class Sync:
    def encode(self) -> bytes:
        return message(b"S")


@dataclass(frozen=True, slots=True)
class Flush:
    def encode(self) -> bytes:
        return message(b"H")


@dataclass(frozen=True, slots=True)
class Terminate:
    def encode(self) -> bytes:
        return message(b"X")


@dataclass(frozen=True, slots=True)
class FunctionCall:
    function_oid: int
    arg_formats: tuple[int, ...] = ()
    args: tuple[bytes | None, ...] = ()
    result_format: int = 0

    def encode(self) -> bytes:
        parts = [u32(self.function_oid), u16(len(self.arg_formats))]
        parts += [i16(f) for f in self.arg_formats]
        parts.append(u16(len(self.args)))
        for value in self.args:
            parts.append(i32(-1) if value is None else i32(len(value)) + value)
        parts.append(i16(self.result_format))
        return message(b"F", b"".join(parts))


@dataclass(frozen=True, slots=True)
class CopyData:
    data: bytes

    def encode(self) -> bytes:
        return message(b"d", self.data)


@dataclass(frozen=True, slots=True)
class CopyDone:
    def encode(self) -> bytes:
        return message(b"c")


@dataclass(frozen=True, slots=True)
class CopyFail:
    reason: str

    def encode(self) -> bytes:
        return message(b"f", cstr(self.reason))


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """A 'p' message: password, SASLInitialResponse or SASLResponse, undecoded."""

    data: bytes

    def encode(self) -> bytes:
        return message(b"p", self.data)


FrontendMessage = (Query | Parse | Bind | Describe | Execute | Close | Sync | Flush | Terminate
                   | FunctionCall | CopyData | CopyDone | CopyFail | PasswordMessage)

# The relay sends these of its own (a Sync ending a batch, a Terminate): encoded once.
SYNC_MESSAGE: Final = Sync().encode()
TERMINATE_MESSAGE: Final = Terminate().encode()


def _int16_list(r: Reader) -> tuple[int, ...]:
    return tuple(r.int16() for _ in range(r.uint16()))


def _decode_bind(r: Reader) -> Bind:
    portal, statement = r.cstring(), r.cstring()
    formats = _int16_list(r)
    params = tuple(r.nullable_bytes() for _ in range(r.uint16()))
    return Bind(portal, statement, formats, params, _int16_list(r))


def _decode_function_call(r: Reader) -> FunctionCall:
    oid = r.uint32()
    formats = _int16_list(r)
    args = tuple(r.nullable_bytes() for _ in range(r.uint16()))
    return FunctionCall(oid, formats, args, r.int16())


def _decode_kind_name(r: Reader) -> tuple[str, str]:
    kind = chr(r.byte())
    if kind not in "SP":
        raise ProtocolViolation(f"invalid DESCRIBE/CLOSE message subtype {ord(kind)}")
    return kind, r.cstring()


def decode_frontend(msg_type: int, payload: bytes) -> FrontendMessage:
    """Decode one frontend message payload; ProtocolViolation on anything malformed."""
    r = Reader(payload)
    t = chr(msg_type)
    msg: FrontendMessage
    if t == "Q":
        msg = Query(r.cstring())
    elif t == "P":
        msg = Parse(r.cstring(), r.cstring(), tuple(r.uint32() for _ in range(r.uint16())))
    elif t == "B":
        msg = _decode_bind(r)
    elif t == "D":
        msg = Describe(*_decode_kind_name(r))
    elif t == "E":
        msg = Execute(r.cstring(), r.int32())
    elif t == "C":
        msg = Close(*_decode_kind_name(r))
    elif t == "S":
        msg = Sync()
    elif t == "H":
        msg = Flush()
    elif t == "X":
        msg = Terminate()
    elif t == "c":
        msg = CopyDone()
    elif t == "F":
        msg = _decode_function_call(r)
    elif t == "d":
        msg = CopyData(r.rest())
    elif t == "f":
        msg = CopyFail(r.cstring())
    elif t == "p":
        msg = PasswordMessage(r.rest())
    else:
        raise ProtocolViolation(f"invalid frontend message type {msg_type}")
    r.end()
    return msg
