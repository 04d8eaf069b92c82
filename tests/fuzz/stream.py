"""Client byte streams for the protocol fuzzer: cut into units, grouped into flights, mutated.

Sans-IO. A recorded client->proxy stream (tests/fuzz/corpus) is cut the way the proxy cuts
it: untyped startup packets first (SSLRequest / GSSENCRequest may precede the
StartupMessage or CancelRequest), then typed messages; whatever no longer frames (a bad
length, a partial message) is one raw tail. A *flight* is what a real client sends before it
waits for an answer (up to a Query, Sync, FunctionCall, PasswordMessage, CopyDone/Fail,
Terminate or a startup packet).

Mutations are values (frozen dataclasses, so a failing example prints as a recipe) made by
`draw_mutation` from any integer source: hypothesis' draws in the CI target, a seeded
random.Random in the long-run script. Each one re-cuts the stream it is given, so they
compose: byte flips, inserts, deletions, truncations, lengths and type bytes set to the
values parsers get wrong, integer fields patched inside payloads, messages duplicated,
dropped, swapped, repeated or spliced in from another session or a list of canned ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.startup import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    MAX_STARTUP_PACKET_LENGTH,
    PROTOCOL_3_0,
    SSL_REQUEST_CODE,
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
)

STARTUP, MESSAGE, RAW = "startup", "message", "raw"
ENCRYPTION_CODES = frozenset({SSL_REQUEST_CODE, GSSENC_REQUEST_CODE})
# After these a client waits for the server (protocol-flow.html).
REPLY_TYPES = frozenset(b"QSFpcfX")

Draw = Callable[[int, int], int]  # an integer in [lo, hi], both included


@dataclass(frozen=True, slots=True)
class Unit:
    """A startup packet, a message (type byte included) or a raw tail that does not frame."""

    kind: str
    data: bytes

    @property
    def type(self) -> int:
        """The message type byte; -1 for a raw tail, the request code for a startup packet."""
        if self.kind == MESSAGE:
            return self.data[0]
        if self.kind == STARTUP:
            return int.from_bytes(self.data[4:8], "big")
        return -1

    @property
    def is_encryption_request(self) -> bool:
        return self.kind == STARTUP and len(self.data) == 8 and self.type in ENCRYPTION_CODES


def split_units(stream: bytes) -> list[Unit]:
    """Cut ``stream`` as the proxy frames it; the unframeable rest is one RAW unit."""
    units: list[Unit] = []
    pos, n, in_startup = 0, len(stream), True
    while pos < n:
        if in_startup:
            if n - pos < 8:
                break
            length = int.from_bytes(stream[pos:pos + 4], "big", signed=True)
            if length < 8 or length - 4 > MAX_STARTUP_PACKET_LENGTH or pos + length > n:
                break
            unit = Unit(STARTUP, stream[pos:pos + length])
            in_startup = unit.is_encryption_request
        else:
            if n - pos < 5:
                break
            length = int.from_bytes(stream[pos + 1:pos + 5], "big", signed=True)
            if length < 4 or pos + 1 + length > n:
                break
            unit = Unit(MESSAGE, stream[pos:pos + 1 + length])
        units.append(unit)
        pos += len(unit.data)
    if pos < n:
        units.append(Unit(RAW, stream[pos:]))
    return units


def join_units(units: Sequence[Unit]) -> bytes:
    return b"".join(unit.data for unit in units)


def flights(units: Sequence[Unit]) -> list[list[Unit]]:
    """Units grouped as a real client sends them: each group ends where it would wait."""
    out: list[list[Unit]] = []
    current: list[Unit] = []
    for unit in units:
        current.append(unit)
        if unit.kind != MESSAGE or unit.type in REPLY_TYPES:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def login_units(units: Sequence[Unit]) -> int:
    """How many leading units are the login: startup packets and the password messages
    that follow them."""
    count = 0
    for unit in units:
        if unit.kind == STARTUP or (count and unit.kind == MESSAGE and unit.type == ord("p")):
            count += 1
        else:
            break
    return count


def startup_params(units: Sequence[Unit]) -> dict[str, str]:
    """The parameters of the stream's StartupMessage, if it has a well-formed one."""
    for unit in units:
        if unit.kind == STARTUP and unit.type == PROTOCOL_3_0:
            fields = unit.data[8:].split(b"\0")
            pairs = zip(fields[::2], fields[1::2], strict=False)
            return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs if k}
    return {}


# --- mutations ----------------------------------------------------------------------------
INTERESTING_LENGTHS = (0, 1, 3, 4, 5, 7, 8, 9, 255, 256, 9999, 10000, 10001, 10004, 10005,
                       65535, 65536, 65539, 0x3FFFFFFE, 0x3FFFFFFF, 0x40000000, 0x7FFFFFFF,
                       0x80000000, 0xFFFFFFFF, 0xFFFFFFFE)
INTERESTING_INTS = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF,
                    0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 1 << 30)
TYPE_BYTES = b"QPBDESHCFXdcfpz\0Kv"
STARTUP_CODES = (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE, PROTOCOL_3_0,
                 PROTOCOL_3_0 | 1, PROTOCOL_3_0 | 0xFFFF, 2 << 16, 4 << 16, 0, 0xFFFFFFFF)
FUZZ_TABLE = "fuzz_items"


def _canned() -> tuple[bytes, ...]:
    """Messages worth splicing anywhere: ends of phases, transaction control, the SQL that
    pins a client or that the proxy answers itself, and statement names that exist or not."""
    queries = ["", " ", ";", "BEGIN", "COMMIT", "ROLLBACK", "SELECT 1", "SELEC 1",
               "SET SHARD TO '0'", "SHOW SERVER ROLE", "SET SERVER ROLE TO 'replica'",
               "SET statement_timeout = 1000", "RESET ALL", "DISCARD ALL", "DEALLOCATE ALL",
               "DEALLOCATE fuzz_p", "PREPARE fuzz_p AS SELECT 1", "LISTEN fuzz", "UNLISTEN *",
               "SELECT pg_advisory_lock(7)", "SELECT pg_advisory_unlock_all()",
               "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "CLOSE ALL",
               "CREATE TEMP TABLE IF NOT EXISTS fuzz_tmp (x int)",
               f"COPY {FUZZ_TABLE} (v) FROM STDIN", f"COPY {FUZZ_TABLE} TO STDOUT",
               "BEGIN READ ONLY", "SELECT 1; SELECT 2", "SELECT 1/0",
               f"INSERT INTO {FUZZ_TABLE} (v) VALUES ('canned')"]
    messages: list[fe.FrontendMessage] = [fe.Query(q) for q in queries]
    messages += [fe.Parse("s1", "SELECT $1::int", (23,)), fe.Parse("", "SELECT 1"),
                 fe.Parse("", "BEGIN"), fe.Parse("", "SET application_name = 'x'"),
                 fe.Parse("s1", "SELECT 2"), fe.Bind("", "s1", (0,), (b"1",)),
                 fe.Bind("", "nope"), fe.Bind("", "", (0, 1), (b"1",)), fe.Bind("p1", ""),
                 fe.Describe("S", "s1"), fe.Describe("P", ""), fe.Execute(""),
                 fe.Execute("", 1), fe.Execute("p1"), fe.Close("S", "s1"), fe.Close("P", "p1"),
                 fe.Sync(), fe.Flush(), fe.Terminate(), fe.CopyData(b"copied\n"),
                 fe.CopyDone(), fe.CopyFail("fuzz"), fe.FunctionCall(1598, (), (), 0),
                 fe.PasswordMessage(b"md5" + b"0" * 32 + b"\0"),
                 fe.PasswordMessage(b"SCRAM-SHA-256\0" + b"\xff\xff\xff\xff")]
    out = [m.encode() for m in messages]
    out += [SSLRequest().encode(), GSSENCRequest().encode(), CancelRequest(1, 2).encode(),
            StartupMessage({"user": "trust_user", "database": "app"}).encode()]
    return tuple(out)


CANNED = _canned()


def _index(value: int, size: int) -> int:
    return value % size if size else 0


def _patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


@dataclass(frozen=True, slots=True)
class FlipBit:
    pos: int
    bit: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        if not stream:
            return stream
        i = _index(self.pos, len(stream))
        return _patch(stream, i, bytes([stream[i] ^ (1 << (self.bit % 8))]))


@dataclass(frozen=True, slots=True)
class SetByte:
    pos: int
    value: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        if not stream:
            return stream
        return _patch(stream, _index(self.pos, len(stream)), bytes([self.value & 0xFF]))


@dataclass(frozen=True, slots=True)
class InsertBytes:
    pos: int
    data: bytes

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        i = _index(self.pos, len(stream) + 1)
        return stream[:i] + self.data + stream[i:]


@dataclass(frozen=True, slots=True)
class DeleteRange:
    pos: int
    size: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        i = _index(self.pos, len(stream))
        return stream[:i] + stream[i + self.size:]


@dataclass(frozen=True, slots=True)
class Truncate:
    pos: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        return stream[:_index(self.pos, len(stream) + 1)]


@dataclass(frozen=True, slots=True)
class SetLength:
    """Set a unit's length word: an absolute value, or (``relative``) its own plus a delta."""

    unit: int
    value: int
    relative: bool

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        if not units:
            return stream
        i = _index(self.unit, len(units))
        data = units[i].data
        at = 1 if units[i].kind == MESSAGE else 0
        if len(data) < at + 4:
            return stream
        old = int.from_bytes(data[at:at + 4], "big")
        new = (old + self.value if self.relative else self.value) & 0xFFFFFFFF
        units[i] = Unit(units[i].kind, _patch(data, at, new.to_bytes(4, "big")))
        return join_units(units)


@dataclass(frozen=True, slots=True)
class SetType:
    """Set a message's type byte, or a startup packet's request code."""

    unit: int
    value: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        if not units:
            return stream
        i = _index(self.unit, len(units))
        unit = units[i]
        if unit.kind == STARTUP and len(unit.data) >= 8:
            code = STARTUP_CODES[_index(self.value, len(STARTUP_CODES))]
            units[i] = Unit(STARTUP, _patch(unit.data, 4, code.to_bytes(4, "big")))
        elif unit.data:
            units[i] = Unit(unit.kind, _patch(unit.data, 0, bytes([self.value & 0xFF])))
        return join_units(units)


@dataclass(frozen=True, slots=True)
class PatchInt:
    """Overwrite 2 or 4 bytes inside a unit's body (counts, lengths, format codes)."""

    unit: int
    offset: int
    width: int
    value: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        if not units:
            return stream
        i = _index(self.unit, len(units))
        unit = units[i]
        header = 5 if unit.kind == MESSAGE else 8 if unit.kind == STARTUP else 0
        room = len(unit.data) - header - self.width
        if room < 0:
            return stream
        at = header + _index(self.offset, room + 1)
        value = (self.value & ((1 << (8 * self.width)) - 1)).to_bytes(self.width, "big")
        units[i] = Unit(unit.kind, _patch(unit.data, at, value))
        return join_units(units)


@dataclass(frozen=True, slots=True)
class RepeatUnit:
    unit: int
    times: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        if not units:
            return stream
        i = _index(self.unit, len(units))
        return join_units(units[:i] + [units[i]] * self.times + units[i + 1:])


@dataclass(frozen=True, slots=True)
class DropUnit:
    unit: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        if not units:
            return stream
        i = _index(self.unit, len(units))
        return join_units(units[:i] + units[i + 1:])


@dataclass(frozen=True, slots=True)
class SwapUnits:
    first: int
    second: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        if not units:
            return stream
        i, j = _index(self.first, len(units)), _index(self.second, len(units))
        units[i], units[j] = units[j], units[i]
        return join_units(units)


@dataclass(frozen=True, slots=True)
class InsertCanned:
    """Insert one of CANNED before unit ``at`` (or at the end)."""

    at: int
    canned: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        units = split_units(stream)
        i = _index(self.at, len(units) + 1)
        message = CANNED[_index(self.canned, len(CANNED))]
        return join_units(units[:i]) + message + join_units(units[i:])


@dataclass(frozen=True, slots=True)
class Splice:
    """Insert ``count`` units of another corpus session, from its unit ``start``."""

    other: int
    start: int
    count: int
    at: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        if not corpus:
            return stream
        donor = split_units(corpus[_index(self.other, len(corpus))])
        begin = _index(self.start, len(donor))
        piece = donor[begin:begin + self.count]
        units = split_units(stream)
        i = _index(self.at, len(units) + 1)
        return join_units(units[:i] + piece + units[i:])


@dataclass(frozen=True, slots=True)
class CrossOver:
    """This session's first units, then another's from some unit on."""

    other: int
    keep: int
    take_from: int

    def apply(self, stream: bytes, corpus: Sequence[bytes]) -> bytes:
        if not corpus:
            return stream
        donor = split_units(corpus[_index(self.other, len(corpus))])
        units = split_units(stream)
        keep = _index(self.keep, len(units) + 1)
        return join_units(units[:keep] + donor[_index(self.take_from, len(donor) + 1):])


Mutation = (FlipBit | SetByte | InsertBytes | DeleteRange | Truncate | SetLength | SetType
            | PatchInt | RepeatUnit | DropUnit | SwapUnits | InsertCanned | Splice | CrossOver)

_BIG = 1 << 16  # positions and unit indexes are drawn in [0, _BIG) and wrapped to the size


def draw_mutation(draw: Draw, corpus_size: int) -> Mutation:
    """One mutation, built from integers ``draw`` gives (simple ones shrink to low kinds)."""
    kind = draw(0, 13)
    pos = draw(0, _BIG - 1)
    if kind == 0:
        return FlipBit(pos, draw(0, 7))
    if kind == 1:
        return Truncate(pos)
    if kind == 2:
        return SetLength(pos, *_length_value(draw))
    if kind == 3:
        return SetType(pos, TYPE_BYTES[draw(0, len(TYPE_BYTES) - 1)] if draw(0, 3) else
                       draw(0, 255))
    if kind == 4:
        return DropUnit(pos)
    if kind == 5:
        return InsertCanned(pos, draw(0, len(CANNED) - 1))
    if kind == 6:
        return SetByte(pos, draw(0, 255))
    if kind == 7:
        return DeleteRange(pos, draw(1, 64))
    if kind == 8:
        size = draw(1, 16)
        return InsertBytes(pos, bytes(draw(0, 255) for _ in range(size)))
    if kind == 9:
        width = 2 if draw(0, 1) else 4
        value = INTERESTING_INTS[draw(0, len(INTERESTING_INTS) - 1)]
        return PatchInt(pos, draw(0, _BIG - 1), width, value)
    if kind == 10:
        return RepeatUnit(pos, draw(2, 40))
    if kind == 11:
        return SwapUnits(pos, draw(0, _BIG - 1))
    if kind == 12:
        return Splice(draw(0, max(corpus_size - 1, 0)), draw(0, _BIG - 1), draw(1, 8), pos)
    return CrossOver(draw(0, max(corpus_size - 1, 0)), pos, draw(0, _BIG - 1))


def _length_value(draw: Draw) -> tuple[int, bool]:
    if draw(0, 1):
        return draw(-8, 8), True
    return INTERESTING_LENGTHS[draw(0, len(INTERESTING_LENGTHS) - 1)], False


MAX_STREAM = 256 * 1024  # repeats and splices compose: keep a session small


def mutate(stream: bytes, mutations: Sequence[Mutation], corpus: Sequence[bytes]) -> bytes:
    for mutation in mutations:
        stream = mutation.apply(stream, corpus)[:MAX_STREAM]
    return stream
