"""Warnings for a config that loads: keys pgcat would silently ignore, and pgcat keys that
pgcat-py accepts but does not act on yet.

pgcat has no `deny_unknown_fields`, so a typo (`[pool.sharded_db.plugins]` in its own
pgcat.toml) is silently dropped. We warn with the key's path and a hint; `--check` fails.
A valid key we do not implement yet is never silently dropped either: when set to anything
but its default it gets a `not_yet_supported` warning. Shrink `NOT_YET_SUPPORTED` as
features land.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel

from pgcat_py.config.errors import ConfigWarning, join_key_path
from pgcat_py.config.model import Config
from pgcat_py.config.types import union_members

# Key paths (`*` = any pool, user or shard name) that no proxy code reads yet.
# Empty since auth_query landed (auth_users.py); the check stays for the next such key.
NOT_YET_SUPPORTED: frozenset[str] = frozenset()

# Names that pgcat's docs or Helm chart use but its code ignores, and pgcat's own typo.
MISNAMED_KEYS: dict[str, str] = {
    "pool": "tables of pools are [pools.NAME]; pgcat ignores [pool.*] silently",
    "general.verify_config": "pgcat's CONFIG.md says verify_config; the key is validate_config",
    "general.prepared_statements_cache_size": (
        "pgcat reads it per pool: pools.NAME.prepared_statements_cache_size"
    ),
    "pools.*.db_activity_based_ms_init_delay": "the key is db_activity_init_delay",
    "pools.*.table_mutation_cache_ttl": "the key is table_mutation_cache_ms_ttl",
}

Path = tuple[str, ...]


def lint(raw: Mapping[str, Any], config: Config | None) -> list[ConfigWarning]:
    """Unknown keys of the raw TOML, then unsupported keys of the loaded config."""
    warnings = unknown_keys(raw)
    if config is not None:
        warnings += not_yet_supported(config)
    return warnings


def unknown_keys(raw: Mapping[str, Any]) -> list[ConfigWarning]:
    """Every key of the TOML document that no model field reads."""
    return [
        ConfigWarning(join_key_path(path), _unknown_message(path, known), "unknown_key")
        for path, known in _walk_model(raw, Config, ())
    ]


def _matches(pattern: str, path: Path) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p in ("*", k) for p, k in zip(parts, path, strict=True))


def _unknown_message(path: Path, known: list[str]) -> str:
    hint = next((text for key, text in MISNAMED_KEYS.items() if _matches(key, path)), None)
    if hint is None:
        close = difflib.get_close_matches(path[-1], known, n=1)
        hint = f"did you mean {close[0]}?" if close else None
    message = "unknown key, ignored"
    return f"{message} ({hint})" if hint else message


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    """TOML keys a model reads (names and aliases) -> their annotations."""
    names: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        names[name] = field.annotation
        if field.alias:
            names[field.alias] = field.annotation
    return names


def _walk_model(
    raw: Mapping[str, Any], model: type[BaseModel], path: Path
) -> Iterator[tuple[Path, list[str]]]:
    fields = _field_names(model)
    for key, value in raw.items():
        if key in fields:
            yield from _walk_value(value, fields[key], (*path, key))
        else:
            yield (*path, key), sorted(fields)


def _walk_value(value: Any, annotation: Any, path: Path) -> Iterator[tuple[Path, list[str]]]:
    """Descends wherever the annotation holds a model: directly, in a dict or in a list."""
    for member in union_members(annotation):
        if get_origin(member) is Annotated:
            member = get_args(member)[0]
        origin = get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(value, Mapping):
                yield from _walk_model(value, member, path)
        elif origin is dict and isinstance(value, Mapping):
            item = get_args(member)[1]
            for key, item_value in value.items():
                yield from _walk_value(item_value, item, (*path, str(key)))
        elif origin is list and isinstance(value, list):
            item = get_args(member)[0]
            for index, item_value in enumerate(value):
                yield from _walk_value(item_value, item, (*path, str(index)))


def not_yet_supported(config: Config) -> list[ConfigWarning]:
    """A warning for every NOT_YET_SUPPORTED key set to something other than its default."""
    found = []
    for pattern in NOT_YET_SUPPORTED:
        for path, owner, name in _expand(config, pattern.split("."), ()):
            default = type(owner).model_fields[name].default
            if not _is_inert(getattr(owner, name), default):
                found.append(
                    ConfigWarning(
                        join_key_path(path),
                        "accepted, but pgcat-py does not support it yet: ignored",
                        "not_yet_supported",
                    )
                )
    return sorted(found, key=lambda warning: warning.key_path)


def _expand(node: Any, segments: list[str], path: Path) -> Iterator[tuple[Path, BaseModel, str]]:
    """The (path, owning model, field name) of every key a pattern names in the config."""
    head, *rest = segments
    if head == "*":
        for key, child in node.items():
            yield from _expand(child, rest, (*path, key))
    elif not rest:
        yield (*path, head), node, head
    else:
        child = getattr(node, head)
        if child is not None:
            yield from _expand(child, rest, (*path, head))


def _is_inert(value: Any, default: Any) -> bool:
    """Default, or `false` where the default is "unset" (enable_prometheus_exporter)."""
    return bool(value == default or (default is None and value is False))
