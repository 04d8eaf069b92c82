"""The fault proxy itself (tests/harness/faultproxy.py, faultrules.py), with no PostgreSQL:
a tiny threaded server stands in for one (echoing, or answering with PostgreSQL-framed
messages), and each fault is checked from a plain socket on the other side."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.harness.faultproxy import FaultProxy
from tests.harness.faultrules import BackendFramer, Chaos, LinkFaults, Rule
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[socket.socket], None]


def message(msg_type: bytes, payload: bytes) -> bytes:
    return msg_type + struct.pack("!i", len(payload) + 4) + payload


ROWS = b"".join(message(b"D", struct.pack("!hi", 1, 5) + b"row%02d" % i) for i in range(10))
ANSWER = message(b"T", b"\0\0") + ROWS + message(b"C", b"SELECT 10\0") + message(b"Z", b"I")


class Target:
    """A server on 127.0.0.1 running ``handler`` for each connection; keeps what came in."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.handler = handler
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handler(conn)

    def recv_loop(self, conn: socket.socket, reply: Callable[[bytes], bytes]) -> None:
        while data := conn.recv(65536):
            self.received += data
            conn.sendall(reply(data))


@pytest.fixture
def echo() -> Iterator[Target]:
    target = Target(lambda conn: None)
    target.handler = lambda conn: target.recv_loop(conn, lambda data: data)
    yield target
    target.listener.close()


@pytest.fixture
def postgres_like() -> Iterator[Target]:
    """Answers every chunk it receives with a RowDescription, 10 DataRows, CommandComplete
    and ReadyForQuery."""
    target = Target(lambda conn: None)
    target.handler = lambda conn: target.recv_loop(conn, lambda data: ANSWER)
    yield target
    target.listener.close()


def connect(faults: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", faults.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the peer closes."""
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n and (chunk := sock.recv(n - len(out))):
        out += chunk
    return bytes(out)


# --- pure parts -------------------------------------------------------------------------
def test_framer_finds_every_message_whatever_the_chunks() -> None:
    whole = BackendFramer().feed(ANSWER)
    assert [chr(t) for t, _, _ in whole] == list("T" + "D" * 10 + "CZ")
    assert whole[-1][2] == len(ANSWER)
    for size in (1, 2, 3, 5, 7, 64):
        framer = BackendFramer()
        pieces = [framer.feed(ANSWER[i:i + size]) for i in range(0, len(ANSWER), size)]
        assert [m for piece in pieces for m in piece] == whole, size


def test_framer_refuses_a_length_no_message_can_have() -> None:
    with pytest.raises(ValueError, match="not a message stream"):
        BackendFramer().feed(message(b"Z", b"I") + b"E\0\0\0\x02")


def test_rule_on_sent_bytes_breaks_before_they_are_forwarded() -> None:
    rule = Rule(sent=b"RESET ALL", times=1)
    first, second = LinkFaults(1), LinkFaults(2)
    assert first.to_server(b"Q\0\0\0\x0eSELECT 1\0", (rule,)) is None
    # The pattern split across two chunks still counts.
    assert first.to_server(b"Q\0\0\0\x0eRESET", (rule,)) is None
    cut = first.to_server(b" ALL\0", (rule,))
    assert cut is not None and cut.keep == 0 and rule.fired == 1
    assert second.to_server(b"Q\0\0\0\x0eRESET ALL\0", (rule,)) is None  # spent: times=1


def test_rule_on_a_reply_message_cuts_inside_the_nth_one_after_the_trigger() -> None:
    rule = Rule(sent=b"victim", reply=b"D", nth=3)
    faults = LinkFaults(1)
    assert faults.to_client(ANSWER, (rule,)) is None  # not armed yet: nothing sent
    faults.to_server(b"Q...victim...", (rule,))
    offset = len(ANSWER)
    third_row = BackendFramer().feed(ANSWER)[3]  # T, D, D, D: the third DataRow
    cut = None
    for pos in range(0, len(ANSWER), 7):  # in small chunks: the cut lands in one of them
        cut = faults.to_client(ANSWER[pos:pos + 7], (rule,))
        if cut is not None:
            where = offset + pos + cut.keep
            break
    assert cut is not None and rule.fired == 1
    assert offset + third_row[1] < where < offset + third_row[2]


def test_chaos_gives_the_same_fates_for_the_same_seed() -> None:
    fates = [Chaos(seed=7, rate=0.5).fate(n) for n in range(1, 50)]
    assert fates == [Chaos(seed=7, rate=0.5).fate(n) for n in range(1, 50)]
    assert fates != [Chaos(seed=8, rate=0.5).fate(n) for n in range(1, 50)]
    assert 10 < sum(fate is not None for fate in fates) < 40
    assert all(Chaos(seed=1, rate=0.0).fate(n) is None for n in range(50))
    broken = [Chaos(seed=1, rate=1.0, max_offset=10).fate(n) for n in range(50)]
    assert all(fate is not None and 1 <= fate.offset < 10 for fate in broken)


# --- the proxy --------------------------------------------------------------------------
def test_forwards_both_ways_and_counts_links(echo: Target) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as a, connect(faults) as b:
        a.sendall(b"ping")
        assert read_exactly(a, 4) == b"ping"
        b.sendall(b"x" * 300_000)
        assert read_exactly(b, 300_000) == b"x" * 300_000
        assert faults.connections == 2
        assert len(faults.server_side_ports()) == 2
    assert faults.fired == []


def test_delay_is_latency_per_direction_not_a_throughput_cap(echo: Target) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as sock:
        faults.delay(to_server=0.1, to_client=0.1, jitter=0.05)  # jitter never reorders
        started = time.monotonic()
        sock.sendall(b"a")
        assert read_exactly(sock, 1) == b"a"
        assert 0.2 <= time.monotonic() - started < 0.7
        started = time.monotonic()
        for i in range(20):  # pipelined: each is delayed, none waits for the one before
            sock.sendall(b"%02d" % i)
            time.sleep(0.01)
        assert read_exactly(sock, 40) == b"".join(b"%02d" % i for i in range(20))
        assert time.monotonic() - started < 0.2 + 0.2 + 0.1 + 0.4


def test_bandwidth_cap_slows_a_direction_down(echo: Target) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as sock:
        faults.bandwidth(to_client=1_000_000)
        started = time.monotonic()
        sock.sendall(b"y" * 300_000)
        assert read_exactly(sock, 300_000) == b"y" * 300_000
        assert time.monotonic() - started >= 0.25
        faults.bandwidth()
        started = time.monotonic()
        sock.sendall(b"z" * 300_000)
        assert read_exactly(sock, 300_000) == b"z" * 300_000
        assert time.monotonic() - started < 0.25


def test_break_mid_message_forwards_whole_messages_then_part_of_the_nth(
        postgres_like: Target) -> None:
    with FaultProxy(postgres_like.port) as faults:
        rule = faults.break_when(sent=b"victim", reply=b"D", nth=3)
        with connect(faults) as bystander, connect(faults) as victim:
            bystander.sendall(b"Q bystander")
            assert read_exactly(bystander, len(ANSWER)) == ANSWER
            victim.sendall(b"Q victim")
            got = read_all(victim)
            bystander.sendall(b"Q bystander again")
            assert read_exactly(bystander, len(ANSWER)) == ANSWER  # another link: unharmed
    third_row = BackendFramer().feed(ANSWER)[3]
    assert ANSWER.startswith(got) and third_row[1] < len(got) < third_row[2]
    assert rule.fired == 1 and faults.fired == [(2, str(rule))]


def test_break_on_sent_bytes_never_delivers_them(postgres_like: Target) -> None:
    with FaultProxy(postgres_like.port) as faults, connect(faults) as sock:
        faults.break_when(sent=b"RESET ALL", how="rst")
        sock.sendall(b"Q SELECT 1")
        assert read_exactly(sock, len(ANSWER)) == ANSWER
        sock.sendall(b"Q RESET ALL")
        with pytest.raises(ConnectionResetError):
            read_all(sock)
    assert b"RESET" not in postgres_like.received


@pytest.mark.parametrize("how", ["close_all", "drop_all"])
def test_close_all_sends_fin_and_drop_all_sends_rst(echo: Target, how: str) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as sock:
        sock.sendall(b"hi")
        assert read_exactly(sock, 2) == b"hi"
        getattr(faults, how)()
        if how == "close_all":
            assert sock.recv(10) == b""
        else:
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
        assert wait_for(lambda: faults.connections == 0, 2)


def test_half_open_discards_one_direction_and_keeps_the_socket(echo: Target) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as sock:
        faults.half_open("to_client")
        sock.sendall(b"lost")
        assert wait_for(lambda: bytes(echo.received) == b"lost", 2)  # the server got it
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # its answer never comes, and the socket is not closed either
        faults.half_open(None)
        sock.settimeout(5)
        sock.sendall(b"back")
        assert read_exactly(sock, 4) == b"back"
        assert faults.connections == 1


def test_stall_holds_bytes_until_released(echo: Target) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as sock:
        faults.stall(True, "to_server")
        sock.sendall(b"held")
        time.sleep(0.3)
        assert echo.received == b""
        faults.stall(False, "to_server")
        assert read_exactly(sock, 4) == b"held"


def test_refuse_closes_new_connections_at_once(echo: Target) -> None:
    with FaultProxy(echo.port) as faults:
        faults.refuse(True)
        with connect(faults) as sock:
            assert sock.recv(10) == b""
        faults.refuse(True, how="rst")
        # The reset may come before connect() is done (it sets TCP_NODELAY) or at recv.
        with pytest.raises(ConnectionResetError), connect(faults) as sock:
            sock.recv(10)
        faults.refuse(False)
        with connect(faults) as sock:
            sock.sendall(b"ok")
            assert read_exactly(sock, 2) == b"ok"


def test_schedule_runs_actions_at_their_times(echo: Target) -> None:
    with FaultProxy(echo.port) as faults, connect(faults) as sock:
        sock.sendall(b"1")
        assert read_exactly(sock, 1) == b"1"
        started = time.monotonic()
        faults.schedule([(0.3, faults.close_all), (0.1, lambda: faults.refuse(True))]).join()
        assert sock.recv(10) == b""
        assert time.monotonic() - started >= 0.3
        with connect(faults) as late:
            assert late.recv(10) == b""  # refused since 0.1 s


def test_chaos_breaks_the_same_links_at_the_same_offsets(echo: Target) -> None:
    def run(seed: int) -> list[tuple[int, int]]:
        received = []
        with FaultProxy(echo.port) as faults:
            faults.chaos(Chaos(seed, rate=0.5, max_offset=5_000, directions=("to_client",),
                               hows=("fin",)))
            for _ in range(12):
                with connect(faults) as sock:
                    sock.sendall(b"c" * 6_000)
                    got = read_exactly(sock, 6_000)
                    received.append((len(got), len(faults.fired)))
        return received

    first = run(3)
    assert first == run(3)
    assert {size for size, _ in first} - {6_000}  # some broke, mid-stream
    assert first != run(4)
