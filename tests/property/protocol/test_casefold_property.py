"""protocol/casefold.py's one-pass search agrees with lower() and find() on any bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pgcat_py.protocol.casefold import mentions_state_words

# Bytes near the words: their letters in both cases, the underscore and its neighbours, and
# the bytes that differ from a letter by the case bit alone (@, [, `, {, DEL).
PIECES = st.sampled_from([b"advisory_lock", b"ADVISORY_LOCK", b"Advisory_Lock", b"temp",
                          b"TEMP", b"tEmP", b"advisory", b"_lock", b"te", b"mp", b"_", b"\x7f",
                          b"@", b"[", b"`", b"{", b"advisory\x7flock", b"tem", b"a", b"t"])
TEXTS = st.one_of(st.binary(max_size=80), st.lists(PIECES, max_size=8).map(b"".join))


def expected(data: bytes) -> bool:
    lowered = data.lower()
    return lowered.find(b"advisory_lock") >= 0 or lowered.find(b"temp") >= 0


@given(TEXTS)
def test_mentions_state_words_is_a_case_blind_find(data: bytes) -> None:
    assert mentions_state_words(data) == expected(data)


def test_the_words_at_either_end() -> None:
    assert mentions_state_words(b"TEMP")
    assert mentions_state_words(b"select pg_advisory_LOCK(1)")
    assert not mentions_state_words(b"tem")
    assert not mentions_state_words(b"advisory\x7flock")
    assert not mentions_state_words(b"")
