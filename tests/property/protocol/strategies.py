"""Hypothesis strategies for every protocol message dataclass, and for chunkings of a stream.

Field ranges are the wire types': Int16 and Int32 are signed, OIDs are UInt32, strings never
contain NUL (they are C strings on the wire) and are valid Unicode (no lone surrogates, which
could not survive an encode/decode round trip as anything but the bytes they stand for).
Lists are kept short: the properties are about structure, not bulk.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TypeVar

from hypothesis import strategies as st

from pgcat_py.protocol import backend as be
from pgcat_py.protocol import frontend as fe
from pgcat_py.protocol.startup import (
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
    StartupPacket,
)

INT16 = st.integers(-(2**15), 2**15 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
BYTE = st.integers(0, 255)
names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
nonempty_names = names.filter(bool)
payload_bytes = st.binary(max_size=24)
nullable_bytes = st.none() | payload_bytes


T = TypeVar("T")


def short_tuples(elements: st.SearchStrategy[T]) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(elements, max_size=4).map(tuple)


kinds = st.sampled_from("SP")

queries = st.builds(fe.Query, names)
parses = st.builds(fe.Parse, names, names, short_tuples(UINT32))
binds = st.builds(fe.Bind, names, names, short_tuples(INT16), short_tuples(nullable_bytes),
                  short_tuples(INT16))
describes = st.builds(fe.Describe, kinds, names)
executes = st.builds(fe.Execute, names, INT32)
closes = st.builds(fe.Close, kinds, names)
function_calls = st.builds(fe.FunctionCall, UINT32, short_tuples(INT16),
                           short_tuples(nullable_bytes), INT16)
fe_copy_data = st.builds(fe.CopyData, payload_bytes)
copy_fails = st.builds(fe.CopyFail, names)
password_messages = st.builds(fe.PasswordMessage, payload_bytes)
bodiless_frontend = st.sampled_from([fe.Sync(), fe.Flush(), fe.Terminate(), fe.CopyDone()])

# What a client may send after login: everything but the auth-only 'p' and Terminate (which
# ends the stream; properties about it place it themselves).
relayed_frontend_messages: st.SearchStrategy[fe.FrontendMessage] = st.one_of(
    queries, parses, binds, describes, executes, closes, function_calls, fe_copy_data,
    copy_fails, st.sampled_from([fe.Sync(), fe.Flush(), fe.CopyDone()]))
frontend_messages: st.SearchStrategy[fe.FrontendMessage] = st.one_of(
    relayed_frontend_messages, password_messages, st.just(fe.Terminate()))

fields = st.builds(be.Field, names, UINT32, UINT32, INT16, INT16, INT32, INT16)
# Error and notice field codes are single ASCII bytes; 0 ends the list.
field_codes = st.characters(min_codepoint=1, max_codepoint=127)

authentications = st.builds(be.Authentication, INT32, payload_bytes)
backend_key_data = st.builds(be.BackendKeyData, INT32, INT32)
parameter_statuses = st.builds(be.ParameterStatus, names, names)
ready_for_queries = st.builds(be.ReadyForQuery, st.sampled_from("ITE"))
row_descriptions = st.builds(be.RowDescription, short_tuples(fields))
data_rows = st.builds(be.DataRow, short_tuples(nullable_bytes))
command_completes = st.builds(be.CommandComplete, names)
notices_and_errors = st.builds(be.NoticeOrError, st.dictionaries(field_codes, names, max_size=5),
                               st.booleans())
notifications = st.builds(be.NotificationResponse, INT32, names, names)
parameter_descriptions = st.builds(be.ParameterDescription, short_tuples(UINT32))
copy_responses = st.builds(be.CopyResponse, st.sampled_from("GHW"), BYTE, short_tuples(INT16))
function_call_responses = st.builds(be.FunctionCallResponse, nullable_bytes)
negotiate_protocol_versions = st.builds(be.NegotiateProtocolVersion, INT32, short_tuples(names))
bares = st.builds(be.Bare, st.sampled_from(be.BARE_TYPES))
be_copy_data = st.builds(be.CopyData, payload_bytes)

backend_messages: st.SearchStrategy[be.BackendMessage] = st.one_of(
    authentications, backend_key_data, parameter_statuses, ready_for_queries, row_descriptions,
    data_rows, command_completes, notices_and_errors, notifications, parameter_descriptions,
    copy_responses, function_call_responses, negotiate_protocol_versions, bares, be_copy_data)

startup_params = st.dictionaries(nonempty_names, names, max_size=4).flatmap(
    lambda extra: st.builds(lambda user: {**extra, "user": user}, nonempty_names))
startup_messages = st.builds(StartupMessage, startup_params, st.integers(0, 0xFFFF))
startup_packets: st.SearchStrategy[StartupPacket] = st.one_of(
    startup_messages, st.just(SSLRequest()), st.just(GSSENCRequest()),
    st.builds(CancelRequest, INT32, INT32))


@st.composite
def cut_points(draw: st.DrawFn, size: int) -> list[int]:
    """Sorted, distinct offsets strictly inside ``range(size)`` at which a stream is cut."""
    if size < 2:
        return []
    offsets = draw(st.sets(st.integers(1, size - 1), max_size=min(size - 1, 12)))
    # Sometimes cut everywhere: byte-at-a-time delivery is the hardest case for carry logic.
    if draw(st.integers(0, 9)) == 0:
        offsets = set(range(1, size))
    return sorted(offsets)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts``; the pieces concatenate back to ``data``."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]
