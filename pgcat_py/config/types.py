"""Building blocks shared by the config models.

Owns pgcat's integer widths (so `port = 70000` fails as it does in pgcat's u16), the enums as
lower-case Literal strings with pgcat's aliases, and `Section`: the frozen, strict pydantic base
whose string values may be `"${ENV_VAR}"` references, resolved from the environment
(DESIGN.md §5: secrets may come from the environment).
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

# pgcat's Rust integer types (src/config.rs), as bounds.
U16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
I16 = Annotated[int, Field(ge=-(2**15), le=2**15 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
USize = U64

# Keys whose values are secrets: never logged, never echoed in errors, "***" when shown.
PASSWORD_KEYS = frozenset({"password", "server_password", "admin_password", "auth_query_password"})

# A whole string value `${NAME}` is an environment reference; nothing else is substituted.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _normaliser(aliases: Mapping[str, str]) -> Callable[[object], object]:
    """Lower-cases a string and maps pgcat's alias spellings onto the canonical name."""

    def normalise(value: object) -> object:
        if not isinstance(value, str):
            return value
        lowered = value.lower()
        return aliases.get(lowered, lowered)

    return normalise


PoolModeName = Literal["transaction", "session"]
LoadBalancingModeName = Literal["random", "loc", "round_robin"]  # round_robin: ours
DefaultRoleName = Literal["any", "primary", "replica"]
ShardingFunctionName = Literal["pg_bigint_hash", "sha1"]
AuthTypeName = Literal["md5", "trust", "scram-sha-256"]
ServerRoleName = Literal["primary", "replica", "mirror"]
TlsModeName = Literal["prefer", "require"]  # ours: pgcat cannot require TLS (its issue #633)

PoolMode = Annotated[PoolModeName, BeforeValidator(_normaliser({}))]
LoadBalancingMode = Annotated[
    LoadBalancingModeName,
    # pgcat: `loc`, `LOC`, `least_outstanding_connections` (src/config.rs LoadBalancingMode)
    BeforeValidator(
        _normaliser(
            {
                "least_outstanding_connections": "loc",
                "leastoutstandingconnections": "loc",
            }
        )
    ),
]
DefaultRole = Annotated[DefaultRoleName, BeforeValidator(_normaliser({}))]
ShardingFunction = Annotated[
    ShardingFunctionName,
    # pgcat: `pg_bigint_hash`, `PgBigintHash`, `sha1`, `Sha1` (src/sharding.rs)
    BeforeValidator(_normaliser({"pgbiginthash": "pg_bigint_hash"})),
]
AuthType = Annotated[AuthTypeName, BeforeValidator(_normaliser({}))]
ServerRole = Annotated[ServerRoleName, BeforeValidator(_normaliser({}))]
TlsMode = Annotated[TlsModeName, BeforeValidator(_normaliser({}))]


def union_members(annotation: Any) -> tuple[Any, ...]:
    """The types of a field annotation, looking through `X | None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _from_environment(raw: str, name: str, annotation: Any) -> object:
    """Turns an environment string into the field's type (TOML would have typed it)."""
    members = union_members(annotation)
    if bool in members:
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"environment variable {name} must be true or false")
    if int in members:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"environment variable {name} must hold an integer") from None
    return raw


class Section(BaseModel):
    """A table of pgcat.toml: frozen, strictly typed, unknown keys left to the linter.

    Any string value of the exact form `"${NAME}"` is replaced by environment variable NAME
    (from the validation context's "environ" mapping, else `os.environ`) and converted to the
    field's type, so `port = "${PORT}"` (pgcat's own Go test config) works too.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _resolve_environment(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        match = ENV_REFERENCE.fullmatch(value)
        if match is None:
            return value
        name = match.group(1)
        environ = os.environ
        if isinstance(info.context, Mapping) and "environ" in info.context:
            environ = info.context["environ"]
        raw = environ.get(name)
        if raw is None:
            raise ValueError(f"environment variable {name} is not set")
        assert info.field_name is not None  # field validators always have one
        return _from_environment(raw, name, cls.model_fields[info.field_name].annotation)


def ms_to_seconds(milliseconds: int) -> float:
    """pgcat keeps durations in ms; asyncio wants seconds."""
    return milliseconds / 1000.0
