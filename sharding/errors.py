"""The sharding package's errors: a bad sharding key value, a bad shard id.

Both are ``ValueError``s that name the offending value, and carry the SQLSTATE a client
should see if the proxy reports them (this package imports nothing of ours, so the code is
a plain string the frontend copies into its ErrorResponse).
"""

from __future__ import annotations

# Values in messages are cut to this many characters: a sharding key can be a client's
# megabyte-long Bind parameter, and an error message is not the place to echo it.
MAX_SHOWN_VALUE = 80
_DECIMAL_BITS = 4096  # ints wider than this are shown in hex (about 1233 decimal digits)

# SQLSTATEs (PostgreSQL Appendix A, errcodes.txt).
INVALID_TEXT_REPRESENTATION = "22P02"
NUMERIC_VALUE_OUT_OF_RANGE = "22003"
CHARACTER_NOT_IN_REPERTOIRE = "22021"
INVALID_BINARY_REPRESENTATION = "22P03"
INVALID_PARAMETER_VALUE = "22023"


def show_value(value: object) -> str:
    """The value as a message shows it: in double quotes like PostgreSQL, escaped, cut short."""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", errors="backslashreplace")
    elif isinstance(value, int) and value.bit_length() > _DECIMAL_BITS:
        text = hex(value)  # str() refuses ints over 4300 digits; hex() has no limit
    else:
        text = str(value)
    cut = len(text) > MAX_SHOWN_VALUE
    text = text[:MAX_SHOWN_VALUE]
    # Control characters (a NUL, a newline) are shown escaped so a log line stays one line.
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return '"' + text + ('..."' if cut else '"')


class ShardingError(ValueError):
    """Base class of this package's errors."""

    sqlstate: str = INVALID_PARAMETER_VALUE


class ShardKeyError(ShardingError):
    """A sharding key value cannot be read as the key's type (bad text, out of range, ...).

    The message names the value the way PostgreSQL's input functions do, e.g.
    ``invalid input syntax for type bigint: "12a"``.
    """

    def __init__(self, message: str, value: object, sqlstate: str = INVALID_TEXT_REPRESENTATION):
        super().__init__(message)
        self.value = value
        self.sqlstate = sqlstate


class ShardIdError(ShardingError):
    """A shard id that is not one of the pool's shards (``0 <= id < shards``)."""

    def __init__(self, message: str, shard_id: object, shards: int):
        super().__init__(message)
        self.shard_id = shard_id
        self.shards = shards
