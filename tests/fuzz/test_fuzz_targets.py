"""The in-process fuzz targets (tests/fuzz/targets.py) in CI: over every corpus session
and its messages, then over hypothesis' mutations of them. No server needed; run_fuzz.py
runs the same targets under atheris for hours."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgcat_py.protocol import backend as be
from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.framing import BackendScanner

from .conftest import load_corpus
from .stream import draw_mutation, mutate
from .targets import TARGETS, seeds

CORPUS = load_corpus()
DONORS = list(CORPUS.values())


@pytest.mark.parametrize("target", TARGETS)
def test_target_holds_on_its_seeds(target: str) -> None:
    for data in seeds(target, CORPUS):
        TARGETS[target](data)


@st.composite
def mutated_seeds(draw: st.DrawFn, target: str) -> bytes:
    def integer(lo: int, hi: int) -> int:
        return draw(st.integers(lo, hi))

    base = draw(st.sampled_from(seeds(target, CORPUS)))
    mutations = [draw_mutation(integer, len(DONORS)) for _ in range(integer(1, 4))]
    return mutate(base, mutations, DONORS)


@pytest.mark.parametrize("target", TARGETS)
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_target_holds_on_mutations(target: str, data: st.DataObject) -> None:
    TARGETS[target](data.draw(mutated_seeds(target)))


@pytest.mark.parametrize("target", TARGETS)
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=300))
def test_target_holds_on_any_bytes(target: str, data: bytes) -> None:
    TARGETS[target](data)


# --- found by these targets, fixed in protocol/ -------------------------------------------
def test_ready_for_query_without_its_status_byte_is_a_violation() -> None:
    # atheris, backend_scanner: the status was read from past the message (IndexError out
    # of the server's data_received, or the next message's type byte taken as the status).
    for stream in (b"Z\0\0\0\x04", b"Z\0\0\0\x04" + be.READY_IDLE):
        with pytest.raises(ProtocolViolation):
            BackendScanner().feed(stream)


def test_negotiate_protocol_version_with_a_negative_count_is_a_violation() -> None:
    # hypothesis (tests/property): a count of 0x80000000 read as int32 decoded as no options.
    with pytest.raises(ProtocolViolation):
        be.decode_backend(ord("v"), b"\0\0\0\0\x80\0\0\0")
