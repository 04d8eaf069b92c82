"""In-process fuzz targets over the sans-IO code a client's bytes reach: one function per
target, taking arbitrary bytes, raising `Finding` (or any exception the code under test is
not allowed to raise) when something is wrong. run_fuzz.py runs them under atheris
(coverage-guided, for hours); test_fuzz_targets.py runs them over the corpus and
hypothesis' bytes in CI.

What each target may raise is what its caller in the proxy catches; anything else would
escape a protocol callback and end the client's connection with a traceback in the log:
- the scanners and the startup decoder: ProtocolViolation (the session sends 08P01);
- decode_frontend: ProtocolViolation; a decoded message must encode back to its bytes;
- the statement rewrite of transaction mode: ValueError / IndexError (relay_rewritten turns
  them into 08P01), and what it sends the server must frame as whole messages;
- custom commands, the parser and the router: RouteError / ProxyError only.
Chunked and whole feeding must agree: a scanner's answer cannot depend on TCP's cuts.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping, Sequence

from parser import ParserSettings, classify
from pgcat_py.backend.prepared import ServerStatements, StatementRegistry
from pgcat_py.frontend.commands import custom_command, run_command
from pgcat_py.frontend.login import client_settings
from pgcat_py.frontend.statements import ClientStatements, rewrite
from pgcat_py.protocol import backend as be
from pgcat_py.protocol.errors import ProtocolViolation, ProxyError
from pgcat_py.protocol.framing import (
    BackendScanner,
    FrontendScanner,
    check_frontend_header,
    first_message,
    split_messages,
    unpack_header,
)
from pgcat_py.protocol.frontend import Bind, decode_frontend
from pgcat_py.protocol.startup import StartupMessage, parse_options, read_startup_packet
from pgcat_py.protocol.wire import message
from pgcat_py.router import Overrides, Router, RouterSettings

from .stream import MESSAGE, STARTUP, join_units, login_units, split_units


class Finding(AssertionError):
    """An oracle of a target does not hold."""


def _cuts(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at points chosen by ``seed`` (sometimes every byte)."""
    if len(data) < 2:
        return [data]
    rng = random.Random(seed)
    if seed % 7 == 0 and len(data) < 4096:
        return [data[i:i + 1] for i in range(len(data))]
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 16))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _after_login(data: bytes) -> bytes:
    """A corpus session without its startup packets and password messages."""
    units = split_units(data)
    return data[len(join_units(units[:login_units(units)])):]


# --- framing ------------------------------------------------------------------------------
def _frontend_scan(chunks: Sequence[bytes]) -> tuple[str, int, bool, bool]:
    """(outcome, sync points before any Terminate, at_boundary, in_batch)."""
    scanner = FrontendScanner()
    syncs = 0
    for chunk in chunks:
        try:
            count, term = scanner.feed(chunk)
        except ProtocolViolation:
            return "violation", 0, False, False
        syncs += count
        if term >= 0:
            return "terminate", syncs, True, False
    return "open", syncs, scanner.at_boundary, scanner.in_batch


def _frontend_reference(data: bytes) -> tuple[str, int, bool, bool]:
    """The same answer from the plain definition: walk the headers one by one."""
    pos, syncs, in_batch = 0, 0, False
    while pos + 5 <= len(data):
        msg_type, length = unpack_header(data, pos)
        try:
            check_frontend_header(msg_type, length)
        except ProtocolViolation:
            return "violation", 0, False, False
        if msg_type == ord("X"):
            return "terminate", syncs, True, False
        if msg_type in b"QSF":
            syncs, in_batch = syncs + 1, False
        elif msg_type in b"PBDECH":
            in_batch = True
        pos += 1 + length
    rest = data[pos:]
    if 0 < len(rest) < 5:  # a header's start: the smallest length it can still have
        try:
            check_frontend_header(rest[0], max(4, int.from_bytes(rest[1:].ljust(4, b"\0"))))
        except ProtocolViolation:
            return "violation", 0, False, False
    return "open", syncs, pos == len(data), in_batch


def frontend_scanner(data: bytes) -> None:
    """FrontendScanner fed whole, fed in pieces and the reference walk agree; first_message
    agrees with split_messages."""
    if not data:
        return
    stream = _after_login(data[1:])
    whole = _frontend_scan([stream])
    chunked = _frontend_scan(_cuts(stream, data[0]))
    reference = _frontend_reference(stream)
    if not whole == chunked == reference:
        raise Finding(f"scanner whole {whole}, chunked {chunked}, reference {reference}")
    try:
        first = first_message(bytearray(stream))
    except ProtocolViolation:
        return
    if first is not None:
        msg_type, end = first
        messages, used = split_messages(stream[:end])
        if used != end or [t for t, _ in messages] != [msg_type]:
            raise Finding(f"first_message {first} but split_messages {messages}")


def backend_scanner(data: bytes) -> None:
    """BackendScanner fed whole and in pieces: the same ReadyForQuery count and state."""
    if not data:
        return
    stream = data[1:]

    def scan(chunks: Sequence[bytes]) -> tuple[object, ...]:
        scanner = BackendScanner()
        ready = 0
        try:
            for chunk in chunks:
                ready += scanner.feed(chunk)
        except ProtocolViolation:
            return ("violation",)
        return ready, scanner.status, scanner.in_copy, scanner.at_boundary, scanner.commands

    whole, chunked = scan([stream]), scan(_cuts(stream, data[0]))
    if whole != chunked:
        raise Finding(f"backend scanner whole {whole}, chunked {chunked}")


# --- startup --------------------------------------------------------------------------------
def startup_packet(data: bytes) -> None:
    """read_startup_packet raises only ProtocolViolation, needs no more than its packet,
    and a StartupMessage survives an encode and decode; its settings are checked."""
    try:
        packet, used = read_startup_packet(data)
    except ProtocolViolation:
        return
    if packet is None:
        return
    for cut in {4, 7, 8, used // 2, used - 1}:
        if 0 <= cut < used:
            try:
                early, _ = read_startup_packet(data[:cut])
            except ProtocolViolation as exc:
                raise Finding(f"prefix of {cut} bytes refused ({exc}) though whole is fine"
                              ) from None
            if early is not None:
                raise Finding(f"a packet out of {cut} of its {used} bytes")
    if isinstance(packet, StartupMessage):
        again, _ = read_startup_packet(packet.encode())
        if again != packet:
            raise Finding(f"{packet} decodes back as {again}")
        parse_options(packet.params.get("options", ""))
        with contextlib.suppress(ProxyError):
            client_settings(packet)


# --- messages -------------------------------------------------------------------------------
def frontend_message(data: bytes) -> None:
    """decode_frontend raises only ProtocolViolation; what it decodes encodes back exactly."""
    if not data:
        return
    msg_type, payload = data[0], data[1:]
    try:
        decoded = decode_frontend(msg_type, payload)
    except ProtocolViolation:
        return
    if decoded.encode() != message(bytes([msg_type]), payload):
        raise Finding(f"{decoded} does not encode back to its bytes")
    if isinstance(decoded, Bind):
        with contextlib.suppress(ProtocolViolation):
            for index in range(len(decoded.params)):
                decoded.param_format(index)


def statement_rewrite(data: bytes) -> None:
    """Transaction mode's statement mapping over whole messages (headers the scanner let
    through), chunk after chunk, with one client and one small server cache: only
    ValueError / IndexError, and the bytes for the server frame as whole messages."""
    if not data:
        return
    stream = _before_terminate(_after_login(data[1:]))
    if _frontend_reference(stream)[0] == "violation":
        return  # the relay's scanner ends such a session before any rewrite
    client, registry = ClientStatements(), StatementRegistry()
    server = ServerStatements(capacity=1 + data[0] % 4)
    ready = False
    for chunk in _message_groups(stream, data[0]):
        try:
            out, _notes, ready = rewrite(chunk, client, registry, server, ready)
        except (ValueError, IndexError):
            continue
        _, used = split_messages(out)
        if used != len(out):
            raise Finding(f"rewrite of {chunk!r} sends a partial message: {out!r}")


def _before_terminate(data: bytes) -> bytes:
    """The messages before a Terminate: the relay rewrites no further."""
    pos = 0
    while pos + 5 <= len(data):
        msg_type, length = unpack_header(data, pos)
        if msg_type == ord("X") or length < 4:
            return data[:pos]
        pos += 1 + length
    return data


def _message_groups(data: bytes, seed: int) -> list[bytes]:
    """The whole messages of ``data``, cut between messages as the relay hands them over."""
    messages, _ = split_messages(data)
    rng = random.Random(seed)
    groups: list[bytes] = []
    current = b""
    for msg_type, payload in messages:
        current += message(bytes([msg_type]), payload)
        if rng.random() < 0.3:
            groups.append(current)
            current = b""
    if current:
        groups.append(current)
    return groups


# --- SQL: custom commands, the parser, the router -----------------------------------------
ROUTER = Router(RouterSettings(
    shards=2, default_role="any", query_parser_enabled=True, read_write_splitting=True,
    parser=ParserSettings.build(automatic_sharding_key="*.id",
                                shard_id_regex=r"/\* shard_id: (\d+) \*/",
                                sharding_key_regex=r"/\* sharding_key: (\d+) \*/")))


def sql_text(data: bytes) -> None:
    """A Query's text through what the idle path does with it: the custom-command check
    (and running it), the classifier and the router. Only ProxyError (RouteError) may
    come out, as an answer to the client."""
    query = message(b"Q", data + b"\0")
    command = custom_command(query, 5, len(query))
    if command is not None:
        run_command(command, Overrides(), ROUTER)
    sql = data.decode("utf-8", "replace")
    classify(sql)
    for overrides in (Overrides(), _overridden()):
        with contextlib.suppress(ProxyError):
            ROUTER.route(sql, overrides)
            ROUTER.route(sql, overrides, read_only_txn=True, bind=((b"1", 0), (data[:8], 1)))


def _overridden() -> Overrides:
    overrides = Overrides(shard=1, role="replica", primary_reads=True)
    overrides.changed()
    return overrides


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frontend_scanner": frontend_scanner,
    "backend_scanner": backend_scanner,
    "startup_packet": startup_packet,
    "frontend_message": frontend_message,
    "statement_rewrite": statement_rewrite,
    "sql_text": sql_text,
}


# --- seeds ----------------------------------------------------------------------------------
def _backend_sample() -> bytes:
    """A server's side of a short session: login, a query, COPY OUT, an error."""
    row = be.RowDescription((be.Field("a"),)).encode() + be.DataRow((b"1",)).encode()
    return b"".join([
        be.AUTH_OK_MESSAGE, be.ParameterStatus("client_encoding", "UTF8").encode(),
        be.BackendKeyData(1, 2).encode(), be.READY_IDLE, row,
        be.CommandComplete("SELECT 1").encode(), be.ReadyForQuery("T").encode(),
        be.CopyResponse("H", 0, (0,)).encode(), be.CopyData(b"x\n").encode(),
        be.Bare("c").encode(), be.CommandComplete("COPY 1").encode(),
        be.error_response("boom", "42601"), be.ReadyForQuery("E").encode(),
        be.CommandComplete("SET").encode(), be.READY_IDLE])


def seeds(target: str, corpus: Mapping[str, bytes]) -> list[bytes]:
    """Starting inputs of ``target`` cut from the recorded sessions."""
    sessions = list(corpus.values())
    units = [u for data in sessions for u in split_units(data)]
    if target == "startup_packet":
        return [u.data for u in units if u.kind == STARTUP]
    if target == "frontend_message":
        return [u.data[:1] + u.data[5:] for u in units if u.kind == MESSAGE]
    if target == "sql_text":
        texts = [u.data[5:].split(b"\0")[0] for u in units if u.kind == MESSAGE
                 and u.type == ord("Q")]
        texts += [u.data[5:].split(b"\0")[1] for u in units if u.kind == MESSAGE
                  and u.type == ord("P") and u.data[5:].count(b"\0") >= 2]
        return sorted(set(texts))
    if target == "backend_scanner":
        return [bytes([seed]) + _backend_sample() for seed in (0, 1, 7)]
    return [bytes([seed]) + data for data in sessions for seed in (0, 3)]
