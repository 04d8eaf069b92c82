"""Case-blind search for the words that make the relay look closer at a chunk of SQL.

The relay flags SQL that leaves state in the server session (FrontendScanner's
_note_session_state: advisory_lock, temp). Lowering each chunk and searching it twice went
through three bytes methods, 3 000 instructions of a pooled transaction's 20 000 when the
relay is compiled; this one pass of machine integers rules out the chunks that name neither
(nearly all of them) for a few hundred. Pure Python keeps lower() and find(), which are
faster there than a loop of the interpreter's (framing.py chooses).
"""

from __future__ import annotations

from typing import Final

try:  # a machine integer when compiled by mypyc (mypy_extensions comes with mypy)
    from mypy_extensions import i64 as i64  # framing uses it too
except ImportError:  # pragma: no cover - mypy is a dependency of the build
    i64 = int  # type: ignore[misc]

_LOWER_BIT: Final = 0x20  # ASCII: a letter's lower case is its upper case with this bit set


def mentions_state_words(data: bytes) -> bool:
    """Does ``data`` contain "advisory_lock" or "temp", in any mix of cases?"""
    n: i64 = len(data)
    i: i64 = 0
    while i < n:
        c: i64 = data[i] | _LOWER_BIT
        if c == 0x61 and _has_word_at(data, i, b"advisory_lock"):  # a
            return True
        if c == 0x74 and _has_word_at(data, i, b"temp"):  # t
            return True
        i += 1
    return False


def _has_word_at(data: bytes, start: i64, word: bytes) -> bool:
    """``word`` (lower case letters and underscores) at ``data[start:]``, in any case."""
    m: i64 = len(word)
    if start + m > len(data):
        return False
    k: i64 = 0
    while k < m:
        b: i64 = data[start + k]
        w: i64 = word[k]
        # A letter matches either case; "_" only itself (0x5F | 0x20 is 0x7F, no letter).
        if b != w and (b | _LOWER_BIT) != w:
            return False
        k += 1
    return True
