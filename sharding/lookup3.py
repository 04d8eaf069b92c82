"""Bob Jenkins' lookup3 hash, exactly as PostgreSQL's src/common/hashfn.c computes it.

This module owns the two seeded 64-bit entry points PostgreSQL builds every
``*_extended`` hash support function on:

* :func:`hash_bytes_extended` (``hash_any_extended``): text, varchar, uuid, ...
* :func:`hash_bytes_uint32_extended` (``hash_uint32_extended``): int2, int4, int8, ...

All arithmetic is modulo 2**32 like C's ``uint32``. Python integers never overflow, so each
step masks its result before that value is rotated (a right shift would otherwise drag high
bits down); additions and XORs need no mask in between, their low 32 bits are exact.

Byte order. ``hash_bytes_extended`` reads the key a 32-bit word at a time and has four code
paths (aligned/unaligned x little/big endian). On a little-endian machine (x86-64, arm64:
every platform PostgreSQL is normally run on) the aligned and the unaligned paths agree:
words are read little-endian, and the trailing 1..11 bytes fill ``a`` and ``b`` from their
low byte up and ``c`` from its *second* byte up ("the lowest byte of c is reserved for the
length"). This module implements that little-endian result. A big-endian server (s390x)
hashes byte strings differently, so its text/uuid partitions differ; integer hashes do not
depend on byte order.
"""

from __future__ import annotations

import struct
from functools import lru_cache

MASK32 = 0xFFFFFFFF
# The golden ratio constant plus Bob Jenkins' arbitrary 3923095 (hashfn.c, "Set up the
# internal state": a = b = c = 0x9e3779b9 + len + 3923095).
GOLDEN_RATIO = 0x9E3779B9
LOOKUP3_INIT = 3923095
_UINT32_SIZE = 4  # sizeof(uint32): the "length" hash_bytes_uint32_extended starts from
_BLOCK = 12  # lookup3 consumes the key 12 bytes (three uint32 words) at a time


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """hashfn.c ``mix()``: mix three 32-bit values reversibly."""
    a = ((a - c) ^ ((c << 4) | (c >> 28))) & MASK32
    c = (c + b) & MASK32
    b = ((b - a) ^ ((a << 6) | (a >> 26))) & MASK32
    a = (a + c) & MASK32
    c = ((c - b) ^ ((b << 8) | (b >> 24))) & MASK32
    b = (b + a) & MASK32
    a = ((a - c) ^ ((c << 16) | (c >> 16))) & MASK32
    c = (c + b) & MASK32
    b = ((b - a) ^ ((a << 19) | (a >> 13))) & MASK32
    a = (a + c) & MASK32
    c = ((c - b) ^ ((b << 4) | (b >> 28))) & MASK32
    b = (b + a) & MASK32
    return a, b, c


def _final(a: int, b: int, c: int) -> tuple[int, int]:
    """hashfn.c ``final()``: final mixing of (a, b, c); returns the (b, c) that make the hash."""
    c = ((c ^ b) - ((b << 14) | (b >> 18))) & MASK32
    a = ((a ^ c) - ((c << 11) | (c >> 21))) & MASK32
    b = ((b ^ a) - ((a << 25) | (a >> 7))) & MASK32
    c = ((c ^ b) - ((b << 16) | (b >> 16))) & MASK32
    a = ((a ^ c) - ((c << 4) | (c >> 28))) & MASK32
    b = ((b ^ a) - ((a << 14) | (a >> 18))) & MASK32
    c = ((c ^ b) - ((b << 24) | (b >> 8))) & MASK32
    return b, c


def seeded_state(length: int, seed: int) -> tuple[int, int, int]:
    """The internal state after setup and seeding, before any key byte is read.

    It depends only on the key length and the seed, so callers with a fixed seed cache it.
    A zero seed means "no seed" in PostgreSQL and skips the extra ``mix()``.
    """
    a = b = c = (GOLDEN_RATIO + length + LOOKUP3_INIT) & MASK32
    if seed != 0:
        # hashfn.c: "we pretend that it's padded with four bytes of zeroes so that the
        # seed constitutes a 12-byte chunk".
        a = (a + (seed >> 32)) & MASK32
        b = (b + (seed & MASK32)) & MASK32
        a, b, c = _mix(a, b, c)
    return a, b, c


@lru_cache(maxsize=512)
def _prepared(length: int, seed: int) -> tuple[int, int, int, struct.Struct, bytes, int]:
    """What hashing ``length`` bytes with ``seed`` needs before it reads a byte.

    The seeded state, a struct reading the key as little-endian uint32 words zero-padded to
    whole 12-byte blocks, that padding, and the number of words in full blocks.
    """
    a, b, c = seeded_state(length & MASK32, seed)
    padding = bytes(-length % _BLOCK)
    words = struct.Struct(f"<{(length + len(padding)) // 4}I")
    return a, b, c, words, padding, (length - length % _BLOCK) // 4


def hash_bytes_extended(key: bytes, seed: int) -> int:
    """``hash_bytes_extended(k, keylen, seed)``: a byte string to a uint64 (little-endian path).

    ``mix()`` and ``final()`` are written out inline (the same lines as :func:`_mix` and
    :func:`_final`): function calls would double the time of a short key.
    """
    length = len(key)
    a, b, c, words_format, padding, full_words = _prepared(length, seed)
    # Zero padding is exact: the tail's missing bytes add nothing in the C switch.
    words = words_format.unpack(key + padding)
    for i in range(0, full_words, 3):
        a = (a + words[i]) & MASK32
        b = (b + words[i + 1]) & MASK32
        c = (c + words[i + 2]) & MASK32
        a = ((a - c) ^ ((c << 4) | (c >> 28))) & MASK32
        c = (c + b) & MASK32
        b = ((b - a) ^ ((a << 6) | (a >> 26))) & MASK32
        a = (a + c) & MASK32
        c = ((c - b) ^ ((b << 8) | (b >> 24))) & MASK32
        b = (b + a) & MASK32
        a = ((a - c) ^ ((c << 16) | (c >> 16))) & MASK32
        c = (c + b) & MASK32
        b = ((b - a) ^ ((a << 19) | (a >> 13))) & MASK32
        a = (a + c) & MASK32
        c = ((c - b) ^ ((b << 4) | (b >> 28))) & MASK32
        b = (b + a) & MASK32
    if full_words < len(words):
        a = (a + words[full_words]) & MASK32
        b = (b + words[full_words + 1]) & MASK32
        # The tail's bytes 8..10 go to bits 8..31 of c (its low byte is "reserved for the
        # length"), i.e. the little-endian word shifted up one byte.
        c = (c + (words[full_words + 2] << 8)) & MASK32
    c = ((c ^ b) - ((b << 14) | (b >> 18))) & MASK32
    a = ((a ^ c) - ((c << 11) | (c >> 21))) & MASK32
    b = ((b ^ a) - ((a << 25) | (a >> 7))) & MASK32
    c = ((c ^ b) - ((b << 16) | (b >> 16))) & MASK32
    a = ((a ^ c) - ((c << 4) | (c >> 28))) & MASK32
    b = ((b ^ a) - ((a << 14) | (a >> 18))) & MASK32
    c = ((c ^ b) - ((b << 24) | (b >> 8))) & MASK32
    return (b << 32) | c


@lru_cache(maxsize=16)
def _uint32_state(seed: int) -> tuple[int, int, int]:
    return seeded_state(_UINT32_SIZE, seed)


def hash_bytes_uint32_extended(k: int, seed: int) -> int:
    """``hash_bytes_uint32_extended(k, seed)``: a uint32 to a uint64 (any byte order)."""
    a, b, c = _uint32_state(seed)
    hi, lo = _final((a + (k & MASK32)) & MASK32, b, c)
    return (hi << 32) | lo
