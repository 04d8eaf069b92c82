"""Protocol fuzzing of the frontend, bounded for CI: mutated real sessions against one proxy.

One real proxy process (transaction mode, read/write splitting, the trust / md5 / SCRAM
users, in front of the real primary and replica) gets the corpus of recorded client
sessions (tests/fuzz/corpus), first as recorded, then a few hundred mutations of them
(tests/fuzz/stream.py), each replayed in a drawn way (tests/fuzz/replay.py). After every
session: the proxy runs, the session broke no protocol rule and ended within the timeout,
a bystander client still gets SELECT 1, and SHOW POOLS settles back to no active server and
no active or waiting client. At the end, with every client gone: no client and no active
server in SHOW POOLS, no server backend left inside a transaction, the proxy's memory
bounded, and no traceback or exception in its log.

PGCAT_FUZZ_EXAMPLES (default 250) sets the number of mutated sessions; PGCAT_FUZZ_SEED
makes hypothesis draw a random but reproducible series (default: the fixed, derandomized
series, so CI runs the same inputs every time); PGCAT_FUZZ_SHRINK=1 lets hypothesis shrink
a failing session (slow: each try is a real session). The long-run driver is run_fuzz.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings
from hypothesis import strategies as st

from pgcat_py.localpg import Topology, free_port
from tests.harness.proxy import start_proxy

from .capture import PASSWORDS
from .conftest import fuzz_config, load_corpus
from .observe import Observer, rss
from .replay import ENDS, MODES, Outcome, Replayer
from .stream import MESSAGE, Mutation, draw_mutation, mutate, split_units

pytestmark = pytest.mark.timeout(600)

EXAMPLES = int(os.environ.get("PGCAT_FUZZ_EXAMPLES", "250"))
SEED = os.environ.get("PGCAT_FUZZ_SEED")
# Shrinking replays a failing session hundreds of times (minutes): only when asked.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate,
          *((Phase.shrink,) if os.environ.get("PGCAT_FUZZ_SHRINK") else ()))
CORPUS = load_corpus()
NAMES = sorted(CORPUS)
DONORS = [CORPUS[name] for name in NAMES]


@dataclass(frozen=True)
class FuzzCase:
    """One session: a corpus entry, the mutations applied in order, how it is replayed."""

    name: str
    mutations: tuple[Mutation, ...]
    mode: str
    end: str
    cut_seed: int

    def stream(self) -> bytes:
        return mutate(CORPUS[self.name], self.mutations, DONORS)


@st.composite
def fuzz_cases(draw: st.DrawFn) -> FuzzCase:
    def integer(lo: int, hi: int) -> int:
        return draw(st.integers(lo, hi))

    name = draw(st.sampled_from(NAMES))
    mutations = tuple(draw_mutation(integer, len(DONORS)) for _ in range(integer(1, 4)))
    return FuzzCase(name, mutations, draw(st.sampled_from(MODES)), draw(st.sampled_from(ENDS)),
                    integer(0, 1 << 16))


# --- the proxy and its observer -----------------------------------------------------------
@dataclass
class Harness:
    observer: Observer
    replayer: Replayer


@pytest.fixture(scope="module")
def harness(pg_topology: Topology, fuzz_table: None,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    proxy = start_proxy(fuzz_config(pg_topology, free_port()),
                        tmp_path_factory.mktemp("fuzz_proxy"))
    try:
        observer = Observer.connect(proxy, pg_topology)
        observer.wait_for_startup()
        try:
            yield Harness(observer, Replayer(proxy.host, proxy.port, PASSWORDS))
        finally:
            observer.close()
    finally:
        proxy.stop()


def check_after_session(h: Harness, case: object, outcome: Outcome) -> None:
    problems = h.observer.after_session(case, outcome)
    assert not problems, f"{case}\nsent: {outcome.sent[:400]!r}\n" + "\n".join(problems)


# --- the tests -----------------------------------------------------------------------------
def test_corpus_replays_the_same_however_it_is_sent(harness: Harness) -> None:
    """Every recorded session, unmutated: no problem, the same answers (message types)
    whether sent flight by flight, pipelined after the login, or cut at random points;
    a session that logged in gets ReadyForQuery for each of its queries and syncs."""
    for name, data in CORPUS.items():
        outcomes = {mode: harness.replayer.replay(data, mode) for mode in MODES
                    if mode != "raw" or b"p" not in _types(data)}  # raw cannot redo md5
        for mode, outcome in outcomes.items():
            check_after_session(harness, (name, mode), outcome)
        # Rows aside: a read right after a commit may run on a replica that lags.
        answers = {mode: outcome.types.replace("D", "") for mode, outcome in outcomes.items()}
        assert len(set(answers.values())) == 1, (name, answers)
        flights = outcomes["flights"]
        if b"Z" in bytes(t for t, _ in flights.messages):  # it logged in
            expected = sum(1 for t in _types(data) if t in b"QSF")
            assert flights.types.count("Z") == expected + 1, (name, flights.types)
    harness.observer.warm_rss = rss(harness.observer.proxy.pid)


def _types(data: bytes) -> bytes:
    return bytes(u.type for u in split_units(data) if u.kind == MESSAGE)


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
          suppress_health_check=list(HealthCheck), print_blob=True, phases=PHASES)
@given(case=fuzz_cases())
def test_mutated_sessions_leave_the_proxy_serving(harness: Harness, case: FuzzCase) -> None:
    stream = case.stream()
    note(f"stream = {stream!r}")
    outcome = harness.replayer.replay(stream, case.mode, case.end, case.cut_seed)
    note(f"received = {bytes(outcome.received[:600])!r}")
    check_after_session(harness, case, outcome)


if SEED is not None:
    test_mutated_sessions_leave_the_proxy_serving = seed(int(SEED))(
        test_mutated_sessions_leave_the_proxy_serving)


def test_after_everything_nothing_is_left_behind(harness: Harness) -> None:
    """Runs last in this module (file order): every fuzzed client gone, the bystander
    too; no client, no active server, no backend inside a transaction, memory bounded,
    a clean log."""
    assert harness.observer.sessions > EXAMPLES, "the fuzz test above did not run"
    problems = harness.observer.after_all()
    assert not problems, "\n".join(problems)
