"""Startup packet properties: round trips, byte-at-a-time arrival, garbage, options quoting."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pgcat_py.protocol.errors import ProtocolViolation
from pgcat_py.protocol.startup import (
    MAX_STARTUP_PACKET_LENGTH,
    StartupPacket,
    parse_options,
    read_startup_packet,
)
from tests.property.protocol.strategies import startup_packets


@settings(max_examples=150)
@given(startup_packets, st.binary(max_size=8))
def test_every_startup_packet_round_trips_and_consumes_only_itself(
        pkt: StartupPacket, after: bytes) -> None:
    encoded = pkt.encode()
    assert read_startup_packet(encoded + after) == (pkt, len(encoded))


@settings(max_examples=50)
@given(startup_packets)
def test_startup_packet_fed_byte_by_byte_needs_every_byte(pkt: StartupPacket) -> None:
    encoded = pkt.encode()
    buffer = bytearray()
    for byte in encoded[:-1]:
        buffer.append(byte)
        assert read_startup_packet(buffer) == (None, 0)
    buffer.append(encoded[-1])
    assert read_startup_packet(buffer) == (pkt, len(encoded))


@settings(max_examples=300)
@given(st.binary(max_size=64) | st.builds(
    lambda length, rest: length.to_bytes(4, "big") + rest,
    st.integers(0, 80), st.binary(max_size=80)))
def test_any_bytes_are_a_packet_more_to_wait_for_or_a_protocol_violation(data: bytes) -> None:
    try:
        pkt, used = read_startup_packet(data)
    except ProtocolViolation:
        return
    if pkt is None:
        assert used == 0
    else:
        assert 8 <= used <= min(len(data), MAX_STARTUP_PACKET_LENGTH + 4)


setting_names = st.from_regex(r"[a-z_][a-z0-9_.]{0,15}", fullmatch=True)
setting_values = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                         max_size=12)


def escape(value: str) -> str:
    """How a client quotes a value for the options keyword: backslash before space and '\\'."""
    return "".join("\\" + ch if ch.isspace() or ch == "\\" else ch for ch in value)


@settings(max_examples=150)
@given(st.dictionaries(setting_names, setting_values, max_size=4), st.booleans())
def test_escaped_option_values_parse_back_exactly(settings_: dict[str, str],
                                                  attached: bool) -> None:
    switch = "-c" if attached else "-c "
    options = " ".join(f"{switch}{name}={escape(value)}" for name, value in settings_.items())
    assert parse_options(options) == settings_


@settings(max_examples=150)
@given(st.text(max_size=40))
def test_parse_options_never_fails_on_any_text(options: str) -> None:
    for name in parse_options(options):
        assert "-" not in name
