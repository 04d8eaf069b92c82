"""pgcat.toml.example: its live part loads with zero warnings, and its commented reference
names every key with pgcat's code default (so the docs cannot drift from the models)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from pgcat_py.config import (
    General,
    Intercept,
    InterceptQuery,
    Pool,
    Prewarmer,
    QueryLogger,
    Shard,
    TableAccess,
    User,
    load_config,
)
from pgcat_py.config.lint import unknown_keys

EXAMPLE = Path(__file__).resolve().parents[3] / "pgcat.toml.example"
REFERENCE_MARKER = "===== Every key"


def reference_lines() -> list[str]:
    """The `# key = value  # comment` lines after the marker, uncommented ("##" is prose)."""
    lines = EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if REFERENCE_MARKER in line)
    return [line[2:] for line in lines[start:] if line.startswith("# ")]


def reference() -> dict[str, Any]:
    return tomllib.loads("\n".join(reference_lines()))


def test_example_loads_with_zero_warnings() -> None:
    loaded = load_config(EXAMPLE)
    assert loaded.warnings == []
    config = loaded.config
    assert config.general.port == 6432
    [shard] = config.pools["app"].shard_list
    assert (shard.servers[0].host, shard.servers[0].port) == ("127.0.0.1", 5432)
    assert shard.servers[0].role == "primary"


def test_example_reference_has_no_unknown_keys() -> None:
    assert unknown_keys(reference()) == []


def tables() -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    ref = reference()
    pool = ref["pools"]["example"]
    plugins = ref["plugins"]
    return [
        ("general", General, ref["general"]),
        ("pools.example", Pool, pool),
        ("pools.example.users.0", User, pool["users"]["0"]),
        ("pools.example.shards.0", Shard, pool["shards"]["0"]),
        ("plugins.query_logger", QueryLogger, plugins["query_logger"]),
        ("plugins.table_access", TableAccess, plugins["table_access"]),
        ("plugins.prewarmer", Prewarmer, plugins["prewarmer"]),
        ("plugins.intercept", Intercept, plugins["intercept"]),
        ("plugins.intercept.queries.0", InterceptQuery, plugins["intercept"]["queries"]["0"]),
    ]


@pytest.mark.parametrize(("name", "model", "table"), tables(), ids=[t[0] for t in tables()])
def test_example_reference_lists_every_key(
    name: str, model: type[BaseModel], table: dict[str, Any]
) -> None:
    keys = {field.alias or key for key, field in model.model_fields.items()}
    keys.discard("plugins")  # pool plugins: same tables as [plugins], pointed to in prose
    assert sorted(keys - table.keys()) == [], name


@pytest.mark.parametrize(("name", "model", "table"), tables(), ids=[t[0] for t in tables()])
def test_example_reference_shows_code_defaults(
    name: str, model: type[BaseModel], table: dict[str, Any]
) -> None:
    for key, field in model.model_fields.items():
        if field.default in (None, PydanticUndefined) or key not in table:
            continue  # required, or unset by default: the example shows the form
        assert table[key] == field.default, f"{name}.{key}"


def test_example_reference_says_unset_for_keys_without_default() -> None:
    comment_of: dict[tuple[str, str], str] = {}
    table = ""
    for line in reference_lines():
        if line.startswith("["):
            table = line.strip("[] ")
            continue
        key, _, rest = line.partition("=")
        comment_of[table, key.strip()] = rest.rpartition("#")[2]
    for name, model, _table in tables():
        for key, field in model.model_fields.items():
            if field.default is None and key != "plugins":
                comment = comment_of[name, key]
                assert "unset" in comment or "required" in comment, f"{name}.{key}"
