"""SQL classification for routing: read or write, tables, shard keys, custom commands.

Pure functions over SQL text (no I/O), built on sqlglot behind a query-shape cache:

    parser = Parser(ParserSettings.build(automatic_sharding_key="data.id"))
    parser.classify("SELECT * FROM data WHERE id = 5")   # a read, keys (5,)
    parse_custom_command("SET SHARD TO '1'")            # pgcat's custom commands
    comment_hints("/* shard_id: 2 */ SELECT 1", settings)

Reads are an allow-list (SELECT, VALUES, TABLE, set operations over them, SHOW of a
setting); everything else, everything unknown and everything unparseable is a write.
"""

from parser.classification import (
    ALL_SHARDS,
    NO_KEYS,
    UNKNOWN_KEYS,
    Classification,
    CopyDirection,
    IsolationLevel,
    KeyStatus,
    KeyValue,
    ParamRef,
    ShardKeys,
    StatementKind,
    TransactionModes,
)
from parser.core import Parser, classify
from parser.custom_commands import CommandKind, CustomCommand, parse_custom_command
from parser.hints import CommentHint, comment_hints
from parser.settings import ParserSettings, ShardingKey

__all__ = [
    "ALL_SHARDS",
    "NO_KEYS",
    "UNKNOWN_KEYS",
    "Classification",
    "CommandKind",
    "CommentHint",
    "CopyDirection",
    "CustomCommand",
    "IsolationLevel",
    "KeyStatus",
    "KeyValue",
    "ParamRef",
    "Parser",
    "ParserSettings",
    "ShardKeys",
    "ShardingKey",
    "StatementKind",
    "TransactionModes",
    "classify",
    "comment_hints",
    "parse_custom_command",
]
