"""pgcat's seven custom commands (query_router.rs: test_regex_set, test_try_execute_command)."""

from __future__ import annotations

import pytest

from parser import CommandKind, CustomCommand, parse_custom_command

K = CommandKind

# test_regex_set: every accepted string and the command it is.
ACCEPTED = [
    ("SET SHARDING KEY TO '1'", CustomCommand(K.SET_SHARDING_KEY, 1)),
    ("SET SHARD TO '1'", CustomCommand(K.SET_SHARD, 1)),
    ("SHOW SHARD", CustomCommand(K.SHOW_SHARD)),
    ("SET SERVER ROLE TO 'replica'", CustomCommand(K.SET_SERVER_ROLE, "replica")),
    ("SET SERVER ROLE TO 'primary'", CustomCommand(K.SET_SERVER_ROLE, "primary")),
    ("SET SERVER ROLE TO 'any'", CustomCommand(K.SET_SERVER_ROLE, "any")),
    ("SET SERVER ROLE TO 'auto'", CustomCommand(K.SET_SERVER_ROLE, "auto")),
    ("SET SERVER ROLE TO 'default'", CustomCommand(K.SET_SERVER_ROLE, "default")),
    ("SHOW SERVER ROLE", CustomCommand(K.SHOW_SERVER_ROLE)),
    ("SET PRIMARY READS TO 'on'", CustomCommand(K.SET_PRIMARY_READS, "on")),
    ("SET PRIMARY READS TO 'off'", CustomCommand(K.SET_PRIMARY_READS, "off")),
    ("SET PRIMARY READS TO 'default'", CustomCommand(K.SET_PRIMARY_READS, "default")),
    ("SHOW PRIMARY READS", CustomCommand(K.SHOW_PRIMARY_READS)),
    ("set sharding key to '1'", CustomCommand(K.SET_SHARDING_KEY, 1)),
    ("set shard to '1'", CustomCommand(K.SET_SHARD, 1)),
    ("show shard", CustomCommand(K.SHOW_SHARD)),
    ("set server role to 'replica'", CustomCommand(K.SET_SERVER_ROLE, "replica")),
    ("set server role to 'PRIMARY'", CustomCommand(K.SET_SERVER_ROLE, "primary")),
    ("show server role", CustomCommand(K.SHOW_SERVER_ROLE)),
    ("set primary reads to 'on'", CustomCommand(K.SET_PRIMARY_READS, "on")),
    # pgcat compares the value case-sensitively: 'OFF' is accepted but changes nothing.
    ("set primary reads to 'OFF'", CustomCommand(K.SET_PRIMARY_READS, "OFF")),
    ("set primary reads to 'deFaUlt'", CustomCommand(K.SET_PRIMARY_READS, "deFaUlt")),
    ("SET SHARDING KEY TO 11235", CustomCommand(K.SET_SHARDING_KEY, 11235)),
    ("SET SHARD TO 15", CustomCommand(K.SET_SHARD, 15)),
    ("SET PRIMARY READS TO off", CustomCommand(K.SET_PRIMARY_READS, "off")),
    ("  SET SHARDING KEY TO 11235  ; ", CustomCommand(K.SET_SHARDING_KEY, 11235)),
    ("  SET SHARD TO 15;   ", CustomCommand(K.SET_SHARD, 15)),
    ("  SET SHARDING KEY TO 11235  ;", CustomCommand(K.SET_SHARDING_KEY, 11235)),
    (" SET SERVER ROLE TO 'primary';   ", CustomCommand(K.SET_SERVER_ROLE, "primary")),
    ("    SET SERVER ROLE TO 'primary'  ; ", CustomCommand(K.SET_SERVER_ROLE, "primary")),
    ("  SET SERVER ROLE TO 'primary'  ;", CustomCommand(K.SET_SERVER_ROLE, "primary")),
    ("  SET PRIMARY READS TO 'off'    ;", CustomCommand(K.SET_PRIMARY_READS, "off")),
    ("SET SHARD TO 'ANY'", CustomCommand(K.SET_SHARD, "any")),
    ("set shard to any", CustomCommand(K.SET_SHARD, "any")),
    ("SET SHARDING KEY TO '00042'", CustomCommand(K.SET_SHARDING_KEY, 42)),
    ("SET SHARD TO '1", CustomCommand(K.SET_SHARD, 1)),  # pgcat's quotes are independent
]

REJECTED = [
    "SELECT * FROM table",
    "SELECT * FROM table WHERE value = 'set sharding key to 5'",
    "SET SHARD TO '1'; SELECT 1",  # combined with another statement
    "SET SERVER ROLE TO primary",  # quotes are mandatory for the role
    "SET SHARDING KEY TO '-5'",  # negative keys cannot be set by command
    "SET  SHARD TO '1'",  # one space between words
    "\tSET SHARD TO '1'",  # only spaces around
    "SET SHARD TO '1'\n",  # pgcat's $ is the end of the text
    "SET SHARD TO '1';;",
    "SET SHARD = 1",
    "SET SERVER ROLE TO 'mirror'",
    "SET PRIMARY READS TO 'yes'",
    "SHOW SHARDS",
    "SET search_path TO x",
    "",
    ";",
    "s",
]


@pytest.mark.parametrize(("sql", "command"), ACCEPTED)
def test_pgcat_custom_command_forms(sql: str, command: CustomCommand) -> None:
    assert parse_custom_command(sql) == command


@pytest.mark.parametrize("sql", REJECTED)
def test_not_a_custom_command(sql: str) -> None:
    assert parse_custom_command(sql) is None


def test_sharding_key_beyond_bigint_is_an_error_not_a_panic() -> None:
    command = parse_custom_command("SET SHARDING KEY TO 99999999999999999999")
    assert command is not None
    assert command.kind is K.SET_SHARDING_KEY
    assert command.value is None
    assert command.error == "sharding key 99999999999999999999 is out of range for type bigint"


def test_sharding_key_at_bigint_max_is_accepted() -> None:
    assert parse_custom_command("SET SHARDING KEY TO 9223372036854775807") == CustomCommand(
        K.SET_SHARDING_KEY, 2**63 - 1
    )
    command = parse_custom_command("SET SHARDING KEY TO 9223372036854775808")
    assert command is not None and command.error is not None


def test_huge_numbers_do_not_hit_the_int_digit_limit() -> None:
    command = parse_custom_command("SET SHARD TO " + "9" * 5000)
    assert command is not None and command.kind is K.SET_SHARD and command.error is not None
    command = parse_custom_command("SET SHARDING KEY TO " + "9" * 5000)
    assert command is not None and command.error is not None
