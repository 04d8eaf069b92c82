"""Reading pgcat.toml: file -> TOML -> models -> rules -> `LoadedConfig` or `ConfigError`.

Every refusal names the file and the key path as written in TOML; pydantic's error locations
are joined with dots. Values are shown to help fix a typo, except under a password key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pgcat_py.config.errors import ConfigError, ConfigWarning, Problem, join_key_path
from pgcat_py.config.lint import lint, unknown_keys
from pgcat_py.config.model import Config
from pgcat_py.config.rules import problems_of
from pgcat_py.config.types import PASSWORD_KEYS


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A usable config and what is worth logging about it."""

    config: Config
    warnings: list[ConfigWarning] = field(default_factory=list)

    @property
    def unknown_keys(self) -> list[ConfigWarning]:
        """The warnings `--check` fails on."""
        return [w for w in self.warnings if w.kind == "unknown_key"]


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Reads and validates a pgcat.toml; raises ConfigError saying which file and key."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, file)


def parse_config(
    text: str, path: str = "<string>", *, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Validates TOML text as a pgcat config. `environ` resolves `${NAME}` values
    (default: os.environ)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages carry "(at line L, column C)" and never a value.
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None
    raw["path"] = path  # pgcat overwrites `path` with the file it loaded
    return validate_raw(raw, path, environ=environ)


def validate_raw(
    raw: dict[str, Any], path: str, *, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Validates a parsed config table (TOML's, or a running config's with one key
    changed by the admin console's SET)."""
    context = {"environ": os.environ if environ is None else environ}
    try:
        config = Config.model_validate(raw, context=context)
    except ValidationError as exc:
        problems = [_problem_from(error) for error in exc.errors()]
        raise ConfigError.from_problems(path, problems, tuple(unknown_keys(raw))) from None
    problems = problems_of(config)
    if problems:
        raise ConfigError.from_problems(path, problems, tuple(unknown_keys(raw)))
    return LoadedConfig(config, lint(raw, config))


def _problem_from(error: ErrorDetails) -> Problem:
    """A pydantic error as (key path, message), the value shown unless it is a secret."""
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "missing":
        return Problem(join_key_path(loc), "field required")
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    value = error.get("input")
    is_secret = any(part in PASSWORD_KEYS for part in loc)
    if not is_secret and error["type"] != "value_error" and _is_scalar(value):
        message += f", got {value!r}"
    return Problem(join_key_path(loc), message)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
