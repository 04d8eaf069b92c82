"""Reading key values from literals and Bind parameters as PostgreSQL's input functions do."""

from __future__ import annotations

import uuid

import pytest

from sharding import (
    FORMAT_BINARY,
    FORMAT_TEXT,
    KeyType,
    ShardKeyError,
    coerce_binary,
    coerce_literal,
    coerce_param,
    coerce_text,
    pg_bigint_hash,
    pg_text_hash,
    pg_uuid_hash,
    sha1,
)

U = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-42", -42),
        ("+42", 42),
        ("  42\t\n", 42),  # int8in skips C isspace() on both sides
        ("007", 7),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775807", 2**63 - 1),
        ("0x1F", 31),  # PostgreSQL 16 spellings
        ("-0o17", -15),
        ("0b101", 5),
        ("1_000_000", 1_000_000),
    ],
)
def test_bigint_text_forms_postgresql_reads(text: str, value: int) -> None:
    assert coerce_text(text, KeyType.BIGINT) == value
    assert coerce_text(text.encode(), KeyType.BIGINT) == value


@pytest.mark.parametrize(
    "text", ["", " ", "12a", "4.0", "1e3", "--1", "1 2", "_1", "1_", "1__0", "٣", "0x", "abc"]
)
def test_non_numeric_text_for_bigint_key_is_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ShardKeyError, match="invalid input syntax for type bigint") as info:
        coerce_text(text, KeyType.BIGINT)
    assert f'"{text}"' in str(info.value)
    assert info.value.sqlstate == "22P02"
    assert info.value.value == text


@pytest.mark.parametrize(
    ("text", "key_type"),
    [
        ("9223372036854775808", KeyType.BIGINT),
        ("-9223372036854775809", KeyType.BIGINT),
        ("99999999999999999999", KeyType.BIGINT),  # panics pgcat's client task
        ("2147483648", KeyType.INTEGER),
        ("-32769", KeyType.SMALLINT),
    ],
)
def test_out_of_range_integer_is_refused_naming_value_and_type(
    text: str, key_type: KeyType
) -> None:
    with pytest.raises(ShardKeyError) as info:
        coerce_text(text, key_type)
    assert str(info.value) == f'value "{text}" is out of range for type {key_type}'
    assert info.value.sqlstate == "22003"


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\xff\xfe", -2),  # int2
        (b"\x00\x00\x01\x00", 256),  # int4
        (b"\xff\xff\xff\xff\xff\xff\xff\xff", -1),  # int8
        (b"\x7f\xff\xff\xff\xff\xff\xff\xff", 2**63 - 1),
    ],
)
def test_binary_integer_parameters_are_big_endian_by_length(data: bytes, value: int) -> None:
    assert coerce_binary(data, KeyType.BIGINT) == value
    assert coerce_param(memoryview(data), FORMAT_BINARY, KeyType.BIGINT) == value


def test_binary_integer_of_odd_length_is_refused() -> None:
    with pytest.raises(ShardKeyError, match="must be 2, 4 or 8 bytes, got 3: 0x010203"):
        coerce_binary(b"\x01\x02\x03", KeyType.BIGINT)


def test_binary_int8_too_big_for_an_int4_key_is_out_of_range() -> None:
    with pytest.raises(ShardKeyError, match='"4294967296" is out of range for type integer'):
        coerce_binary((2**32).to_bytes(8, "big"), KeyType.INTEGER)


@pytest.mark.parametrize(
    "text",
    [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
    ],
)
def test_every_uuid_spelling_postgresql_accepts_is_the_same_key(text: str) -> None:
    assert coerce_text(text, KeyType.UUID) == U
    assert pg_uuid_hash(text, 7) == pg_uuid_hash(U, 7)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",  # 31 digits
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
        "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",  # Python accepts it, PostgreSQL not
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",  # hyphen inside a group of four
        "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
    ],
)
def test_malformed_uuid_is_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ShardKeyError) as info:
        coerce_text(text, KeyType.UUID)
    assert str(info.value) == f'invalid input syntax for type uuid: "{text}"'


def test_binary_uuid_is_its_16_bytes() -> None:
    assert coerce_param(U.bytes, FORMAT_BINARY, KeyType.UUID) == U
    with pytest.raises(ShardKeyError, match="must be 16 bytes, got 15"):
        coerce_binary(U.bytes[:15], KeyType.UUID)


def test_text_parameters_are_utf8_in_either_format() -> None:
    raw = "héllo 🐘".encode()
    assert coerce_param(raw, FORMAT_TEXT, KeyType.TEXT) == "héllo 🐘"
    assert coerce_param(raw, FORMAT_BINARY, KeyType.TEXT) == "héllo 🐘"


def test_invalid_utf8_text_parameter_is_refused() -> None:
    with pytest.raises(ShardKeyError, match='encoding "UTF8"') as info:
        coerce_text(b"caf\xe9", KeyType.TEXT)
    assert info.value.sqlstate == "22021"
    assert "caf\\xe9" in str(info.value)


def test_text_with_a_nul_is_refused_like_a_utf8_database_does() -> None:
    with pytest.raises(ShardKeyError, match="0x00") as info:
        pg_text_hash("a\x00b", 3)
    assert '"a\\x00b"' in str(info.value)


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(ShardKeyError, match="not valid Unicode"):
        pg_text_hash("\ud800", 3)


def test_null_parameter_stays_null() -> None:
    assert coerce_param(None, FORMAT_TEXT, KeyType.BIGINT) is None
    assert coerce_literal(None, KeyType.UUID) is None


def test_unknown_format_code_is_refused() -> None:
    with pytest.raises(ShardKeyError, match="format code 2"):
        coerce_param(b"1", 2, KeyType.BIGINT)


def test_quoted_integer_literal_is_the_integer() -> None:
    assert coerce_literal("42", KeyType.BIGINT) == 42
    assert coerce_literal(42, KeyType.BIGINT) == 42


def test_integer_literal_for_text_key_is_its_decimal_text() -> None:
    assert coerce_literal(-42, KeyType.TEXT) == "-42"
    assert coerce_literal(U, KeyType.TEXT) == str(U)


@pytest.mark.parametrize(
    ("value", "key_type"),
    [(True, KeyType.BIGINT), (42, KeyType.UUID), (U, KeyType.BIGINT), (2**40, KeyType.INTEGER)],
)
def test_literal_of_the_wrong_kind_is_a_shard_key_error(value: object, key_type: KeyType) -> None:
    with pytest.raises(ShardKeyError, match=str(value)):
        coerce_literal(value, key_type)


def test_literal_of_an_unknown_python_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        coerce_literal(4.2, KeyType.BIGINT)


def test_long_values_are_cut_short_in_messages() -> None:
    with pytest.raises(ShardKeyError) as info:
        coerce_text("9" * 10_000 + "x", KeyType.BIGINT)
    assert len(str(info.value)) < 200
    assert str(info.value).endswith('..."')


@pytest.mark.parametrize(
    ("name", "key_type"),
    [
        ("int8", KeyType.BIGINT),
        ("BIGINT", KeyType.BIGINT),
        ("int", KeyType.INTEGER),
        ("int2", KeyType.SMALLINT),
        ("varchar(32)", KeyType.TEXT),
        ("character  varying", KeyType.TEXT),
        ("uuid", KeyType.UUID),
    ],
)
def test_key_types_by_postgresql_names(name: str, key_type: KeyType) -> None:
    assert KeyType.parse(name) is key_type


def test_unsupported_key_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported sharding key type 'numeric'"):
        KeyType.parse("numeric")


def test_any_number_of_leading_zeros_is_accepted() -> None:
    assert coerce_text("0" * 10_000 + "42", KeyType.BIGINT) == 42
    assert coerce_text("-0x" + "0" * 100 + "1F", KeyType.BIGINT) == -31


@pytest.mark.parametrize("data", ["9" * 10_000, b"9" * 5_000, "-" + "1" * 4_400])
def test_number_too_long_for_python_int_is_out_of_range_not_a_crash(data: str | bytes) -> None:
    # Python refuses to convert decimal strings over 4300 digits; PostgreSQL says "out of range"
    with pytest.raises(ShardKeyError, match="out of range for type bigint") as info:
        coerce_text(data, KeyType.BIGINT)
    assert info.value.sqlstate == "22003"


def test_out_of_range_message_shows_the_clients_text() -> None:
    with pytest.raises(ShardKeyError) as info:
        coerce_text(" 0x8000000000000000", KeyType.BIGINT)
    assert str(info.value) == 'value " 0x8000000000000000" is out of range for type bigint'


def test_huge_int_key_is_a_shard_key_error() -> None:
    with pytest.raises(ShardKeyError, match="out of range for type bigint"):
        pg_bigint_hash(10**5000, 3)
    with pytest.raises(ShardKeyError, match="out of range for type bigint"):
        sha1(-(10**5000), 3)
