"""Backend (server -> client) messages as values: encode to bytes, decode from payloads.

The proxy builds these when it answers a client itself (auth, errors, custom commands, the
admin console) and decodes them on the control plane (server login, health checks). The
relay never builds objects for messages it only forwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .errors import ProtocolViolation
from .wire import Reader, cstr, i16, i32, message, u16, u32

# Authentication request codes (protocol-message-formats.html, "AuthenticationXXX").
AUTH_OK: Final = 0
AUTH_CLEARTEXT_PASSWORD: Final = 3
AUTH_MD5_PASSWORD: Final = 5
AUTH_SASL: Final = 10
AUTH_SASL_CONTINUE: Final = 11
AUTH_SASL_FINAL: Final = 12


@dataclass(frozen=True, slots=True)
class Authentication:
    """An 'R' message: ``code`` says which; ``data`` is the salt, mechanisms or SASL data."""

    code: int
    data: bytes = b""

    def encode(self) -> bytes:
        return message(b"R", i32(self.code) + self.data)

    def sasl_mechanisms(self) -> list[str]:
        # A server's bytes: garbage must not raise, and cannot match a mechanism anyway.
        return [m for m in self.data.decode("utf-8", "replace").split("\0") if m]


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    process_id: int
    secret_key: int

    def encode(self) -> bytes:
        return message(b"K", i32(self.process_id) + i32(self.secret_key))


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    name: str
    value: str

    def encode(self) -> bytes:
        return message(b"S", cstr(self.name) + cstr(self.value))


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    status: str  # "I" idle, "T" in transaction, "E" failed transaction

    def encode(self) -> bytes:
        return message(b"Z", self.status.encode())


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a RowDescription."""

    name: str
    type_oid: int = 25  # text
    table_oid: int = 0
    column_attr: int = 0
    type_size: int = -1
    type_modifier: int = -1
    format_code: int = 0


@dataclass(frozen=True, slots=True)
class RowDescription:
    fields: tuple[Field, ...]

    def encode(self) -> bytes:
        parts = [u16(len(self.fields))]
        for f in self.fields:
            parts.append(cstr(f.name) + u32(f.table_oid) + i16(f.column_attr) + u32(f.type_oid)
                         + i16(f.type_size) + i32(f.type_modifier) + i16(f.format_code))
        return message(b"T", b"".join(parts))


@dataclass(frozen=True, slots=True)
class DataRow:
    values: tuple[bytes | None, ...]

    def encode(self) -> bytes:
        parts = [u16(len(self.values))]
        parts += [i32(-1) if v is None else i32(len(v)) + v for v in self.values]
        return message(b"D", b"".join(parts))


@dataclass(frozen=True, slots=True)
class CommandComplete:
    tag: str

    def encode(self) -> bytes:
        return message(b"C", cstr(self.tag))


@dataclass(frozen=True, slots=True)
class NoticeOrError:
    """ErrorResponse ('E') or NoticeResponse ('N'): field code -> value, in wire order."""

    fields: dict[str, str] = field(default_factory=dict)
    is_error: bool = True

    def encode(self) -> bytes:
        body = b"".join(code.encode() + cstr(value) for code, value in self.fields.items())
        return message(b"E" if self.is_error else b"N", body + b"\0")

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def severity(self) -> str:
        return self.fields.get("V", self.fields.get("S", ""))

    @property
    def text(self) -> str:
        return self.fields.get("M", "")


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    process_id: int
    channel: str
    payload: str

    def encode(self) -> bytes:
        return message(b"A", i32(self.process_id) + cstr(self.channel) + cstr(self.payload))


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    type_oids: tuple[int, ...]

    def encode(self) -> bytes:
        return message(b"t", u16(len(self.type_oids)) + b"".join(u32(o) for o in self.type_oids))


@dataclass(frozen=True, slots=True)
class CopyResponse:
    """CopyInResponse ('G'), CopyOutResponse ('H') or CopyBothResponse ('W')."""

    kind: str
    format_code: int = 0
    column_formats: tuple[int, ...] = ()

    def encode(self) -> bytes:
        body = bytes([self.format_code]) + u16(len(self.column_formats))
        body += b"".join(i16(f) for f in self.column_formats)
        return message(self.kind.encode(), body)


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    value: bytes | None

    def encode(self) -> bytes:
        return message(b"V", i32(-1) if self.value is None else i32(len(self.value)) + self.value)


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    newest_minor: int
    unrecognized: tuple[str, ...] = ()

    def encode(self) -> bytes:
        body = i32(self.newest_minor) + i32(len(self.unrecognized))
        return message(b"v", body + b"".join(cstr(o) for o in self.unrecognized))


@dataclass(frozen=True, slots=True)
class Bare:
    """A message with an empty payload: ParseComplete '1', BindComplete '2', CloseComplete '3',
    NoData 'n', PortalSuspended 's', EmptyQueryResponse 'I', CopyDone 'c'."""

    kind: str

    def encode(self) -> bytes:
        return message(self.kind.encode())


@dataclass(frozen=True, slots=True)
class CopyData:
    data: bytes

    def encode(self) -> bytes:
        return message(b"d", self.data)


BackendMessage = (Authentication | BackendKeyData | ParameterStatus | ReadyForQuery
                  | RowDescription | DataRow | CommandComplete | NoticeOrError
                  | NotificationResponse | ParameterDescription | CopyResponse
                  | FunctionCallResponse | NegotiateProtocolVersion | Bare | CopyData)

BARE_TYPES: Final = "123nsIc"


def _decode_fields(r: Reader) -> dict[str, str]:
    fields: dict[str, str] = {}
    while True:
        code = r.byte()
        if code == 0:
            return fields
        fields[chr(code)] = r.cstring()


def _decode_row_description(r: Reader) -> RowDescription:
    fields = []
    for _ in range(r.uint16()):
        name, table, attr = r.cstring(), r.uint32(), r.int16()
        oid, size, mod, fmt = r.uint32(), r.int16(), r.int32(), r.int16()
        fields.append(Field(name, oid, table, attr, size, mod, fmt))
    return RowDescription(tuple(fields))


def _decode_copy_response(kind: str, r: Reader) -> CopyResponse:
    fmt = r.byte()
    return CopyResponse(kind, fmt, tuple(r.int16() for _ in range(r.uint16())))


def decode_backend(msg_type: int, payload: bytes) -> BackendMessage:
    """Decode one backend message payload; ProtocolViolation on anything malformed."""
    r = Reader(payload)
    t = chr(msg_type)
    msg: BackendMessage
    if t == "R":
        msg = Authentication(r.int32(), r.rest())
    elif t == "K":
        msg = BackendKeyData(r.int32(), r.int32())
    elif t == "S":
        msg = ParameterStatus(r.cstring(), r.cstring())
    elif t == "Z":
        msg = ReadyForQuery(chr(r.byte()))
    elif t == "T":
        msg = _decode_row_description(r)
    elif t == "D":
        msg = DataRow(tuple(r.nullable_bytes() for _ in range(r.uint16())))
    elif t == "C":
        msg = CommandComplete(r.cstring())
    elif t in "EN":
        msg = NoticeOrError(_decode_fields(r), t == "E")
    elif t == "A":
        msg = NotificationResponse(r.int32(), r.cstring(), r.cstring())
    elif t == "t":
        msg = ParameterDescription(tuple(r.uint32() for _ in range(r.uint16())))
    elif t in "GHW":
        msg = _decode_copy_response(t, r)
    elif t == "V":
        msg = FunctionCallResponse(r.nullable_bytes())
    elif t == "v":
        msg = NegotiateProtocolVersion(r.int32(), tuple(r.cstring() for _ in range(r.uint32())))
    elif t in BARE_TYPES:
        msg = Bare(t)
    elif t == "d":
        msg = CopyData(r.rest())
    else:
        raise ProtocolViolation(f"invalid backend message type {msg_type}")
    r.end()
    return msg


def error_response(message_text: str, sqlstate: str, severity: str = "ERROR",
                   detail: str | None = None) -> bytes:
    """An ErrorResponse as PostgreSQL shapes it: S, V, C, M (and D)."""
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message_text}
    if detail:
        fields["D"] = detail
    return NoticeOrError(fields).encode()


def notice_response(message_text: str, sqlstate: str = "00000",
                    detail: str | None = None) -> bytes:
    fields = {"S": "NOTICE", "V": "NOTICE", "C": sqlstate, "M": message_text}
    if detail:
        fields["D"] = detail
    return NoticeOrError(fields, is_error=False).encode()


READY_IDLE: Final = ReadyForQuery("I").encode()
AUTH_OK_MESSAGE: Final = Authentication(AUTH_OK).encode()
