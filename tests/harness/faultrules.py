"""When the fault proxy breaks a link: rules, seeded random fates, and a framer of the
server's byte stream. Pure logic, no sockets (tests/harness/faultproxy.py does the I/O).

Every chunk a link forwards passes through its `LinkFaults` first, which says how much of
the chunk to forward before the link breaks (or nothing, or all of it). A `Rule` breaks a
link when what pgcat-py sends contains some bytes (before they reach the server), or in the
middle of the n-th server message of some types, or after n bytes from the server; a rule
breaks at most `times` links, so one fault can be aimed at one connection of a busy pool.
A `Chaos` gives each new link a seeded fate: some links break after a random number of
bytes in a random direction, the same ones for the same seed and link order.

Offsets count bytes forwarded in one direction since the link opened. The server's stream
is framed by its 5-byte headers (type byte, int32 length that counts itself: PostgreSQL's
protocol after the startup packet; a server asked for TLS answers an untyped byte first,
which the harness never asks for).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["to_server", "to_client"]
How = Literal["fin", "rst"]  # a close (FIN after what was sent) or a reset (SO_LINGER 0)
HEADER_SIZE = 5  # type byte + int32 length


class BackendFramer:
    """Finds message boundaries in a stream of typed PostgreSQL messages fed in any chunks."""

    def __init__(self) -> None:
        self.offset = 0  # stream offset of the next byte fed
        self._next = 0  # stream offset where the next message starts
        self._head = bytearray()  # a header split across chunks

    def feed(self, chunk: bytes) -> list[tuple[int, int, int]]:
        """``(type, start, end)`` stream offsets of every message whose header completes
        in ``chunk``. ValueError when the bytes cannot be PostgreSQL messages."""
        out: list[tuple[int, int, int]] = []
        base = self.offset
        self.offset += len(chunk)
        while (pos := self._next + len(self._head)) < self.offset:
            take = min(HEADER_SIZE - len(self._head), self.offset - pos)
            self._head += chunk[pos - base:pos - base + take]
            if len(self._head) < HEADER_SIZE:
                break
            length = int.from_bytes(self._head[1:5])
            if length < 4:
                raise ValueError(f"not a message stream: length {length} at {self._next}")
            start, self._next = self._next, self._next + 1 + length
            out.append((self._head[0], start, self._next))
            self._head.clear()
        return out


@dataclass(eq=False)  # compared by identity: a link keeps state per rule
class Rule:
    """Break a link: see FaultProxy.break_when for the meaning of each field."""

    sent: bytes | None = None
    reply: bytes | None = None
    nth: int = 1
    after: int | None = None
    how: How = "fin"
    times: int | None = 1
    fired: int = 0  # links broken so far

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    @property
    def breaks_before_sending(self) -> bool:
        return self.sent is not None and self.reply is None and self.after is None

    def __str__(self) -> str:
        parts = [f"sent {self.sent!r}"] if self.sent is not None else []
        if self.reply is not None:
            parts.append(f"mid reply {self.reply.decode()} #{self.nth}")
        if self.after is not None:
            parts.append(f"after {self.after} reply bytes")
        return f"{self.how} on " + ", ".join(parts or ["every link"])


@dataclass(frozen=True)
class Fate:
    """A link's random end: it breaks after ``offset`` bytes going ``direction``."""

    direction: Direction
    offset: int
    how: How


@dataclass(frozen=True)
class Chaos:
    """Seeded random faults: a share ``rate`` of new links break within their first
    ``max_offset`` bytes in one direction. Deterministic per (seed, link number)."""

    seed: int
    rate: float = 0.3
    max_offset: int = 100_000
    directions: tuple[Direction, ...] = ("to_client", "to_server")
    hows: tuple[How, ...] = ("fin", "rst")

    def fate(self, link_number: int) -> Fate | None:
        rng = random.Random(f"{self.seed}:{link_number}")
        if rng.random() >= self.rate:
            return None
        return Fate(rng.choice(self.directions), rng.randrange(1, self.max_offset),
                    rng.choice(self.hows))


@dataclass(frozen=True)
class Cut:
    """Forward ``keep`` bytes of the chunk, then break the link ``how``."""

    keep: int
    how: How
    reason: str


@dataclass
class _Armed:
    """A rule's progress on one link."""

    since: int  # server-stream offset when it was armed
    seen: int = 0  # matching messages since then
    cut_at: int | None = None  # server-stream offset where it breaks the link


@dataclass
class LinkFaults:
    """One link's faults: feed it each chunk before forwarding it."""

    number: int
    fate: Fate | None = None
    offsets: dict[Direction, int] = field(
        default_factory=lambda: {"to_server": 0, "to_client": 0})
    framer: BackendFramer | None = field(default_factory=BackendFramer)
    _armed: dict[Rule, _Armed] = field(default_factory=dict)
    _tail: bytes = b""

    def to_server(self, data: bytes, rules: tuple[Rule, ...]) -> Cut | None:
        """What pgcat-py sends: rules waiting for these bytes fire or arm."""
        start = self.offsets["to_server"]
        window = self._tail + data
        for rule in rules:
            if rule.sent is None or rule.spent or rule in self._armed or rule.sent not in window:
                continue
            if rule.breaks_before_sending:
                rule.fired += 1
                return Cut(0, rule.how, str(rule))
            self._armed[rule] = _Armed(self.offsets["to_client"])
        longest = max((len(r.sent) for r in rules if r.sent is not None), default=1)
        self._tail = window[len(window) - longest + 1:] if longest > 1 else b""
        self.offsets["to_server"] = start + len(data)
        return self._fate_cut("to_server", start, len(data))

    def to_client(self, data: bytes, rules: tuple[Rule, ...]) -> Cut | None:
        """What the server answers: the earliest break point inside ``data``, if any."""
        start = self.offsets["to_client"]
        end = start + len(data)
        messages = self._frame(data)
        best = self._fate_cut("to_client", start, len(data))
        chosen: Rule | None = None
        for rule in rules:
            armed = self._armed.get(rule)
            if armed is None and rule.sent is None and not rule.spent:
                armed = self._armed[rule] = _Armed(start)  # armed on every link
            if armed is None or rule.spent:
                continue
            if armed.cut_at is None:
                armed.cut_at = self._cut_point(rule, armed, messages)
            if armed.cut_at is not None and armed.cut_at < end and (
                    best is None or armed.cut_at - start < best.keep):
                best = Cut(max(armed.cut_at - start, 0), rule.how, str(rule))
                chosen = rule
        if chosen is not None:
            chosen.fired += 1
        self.offsets["to_client"] = end
        return best

    def _frame(self, data: bytes) -> list[tuple[int, int, int]]:
        if self.framer is None:
            return []
        try:
            return self.framer.feed(data)
        except ValueError:
            self.framer = None  # not PostgreSQL (a unit test's echo server): offsets only
            return []

    @staticmethod
    def _cut_point(rule: Rule, armed: _Armed, messages: list[tuple[int, int, int]]
                   ) -> int | None:
        if rule.after is not None:
            return armed.since + rule.after
        for msg_type, msg_start, msg_end in messages:
            if rule.reply is not None and msg_type in rule.reply and msg_start >= armed.since:
                armed.seen += 1
                if armed.seen == rule.nth:
                    return msg_start + (msg_end - msg_start) // 2  # inside, past the type
        return None

    def _fate_cut(self, direction: Direction, start: int, size: int) -> Cut | None:
        fate = self.fate
        if fate is None or fate.direction != direction or fate.offset >= start + size:
            return None
        return Cut(max(fate.offset - start, 0), fate.how, "chaos")
