"""What loading a config can say: `ConfigError` (refused) and `ConfigWarning` (loaded, but...).

Both name the file and the dotted key path as written in TOML (`pools.app.users.0.pool_size`).
Neither ever carries a password value (DESIGN.md invariant 5).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# sysexits.h EX_CONFIG: pgcat exits with it on a bad config (pgcat.md §1.5, §10).
EX_CONFIG = 78

# TOML bare keys; anything else (a pool named "my.db") is quoted in a key path.
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def join_key_path(parts: Iterable[str | int]) -> str:
    """`("pools", "app", "users", "0")` -> `pools.app.users.0`, quoting keys as TOML would."""
    return ".".join(
        str(part) if BARE_KEY.fullmatch(str(part)) else json.dumps(str(part)) for part in parts
    )


WarningKind = Literal["unknown_key", "not_yet_supported"]


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A config that loads but deserves a log line.

    `unknown_key`: pgcat would silently ignore it (usually a typo); `--check` fails on it.
    `not_yet_supported`: a valid pgcat key set to a non-default value pgcat-py ignores for now.
    """

    key_path: str
    message: str
    kind: WarningKind

    def __str__(self) -> str:
        return f"{self.key_path}: {self.message}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a config is refused."""

    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.key_path}: {self.message}" if self.key_path else self.message


class ConfigError(Exception):
    """A config that cannot be used: unreadable, not TOML, wrongly typed, or breaking a rule.

    `str()` is `FILE: KEY.PATH: message`, for the first problem; `problems` holds them all
    and `warnings` the unknown keys seen on the way (often the cause: a typo'd required key).
    """

    def __init__(
        self,
        file: str,
        key_path: str,
        message: str,
        *,
        problems: tuple[Problem, ...] = (),
        warnings: tuple[ConfigWarning, ...] = (),
    ) -> None:
        self.file = file
        self.key_path = key_path
        self.message = message
        self.problems = problems or (Problem(key_path, message),)
        self.warnings = warnings
        super().__init__(self._render())

    @classmethod
    def from_problems(
        cls, file: str, problems: list[Problem], warnings: tuple[ConfigWarning, ...] = ()
    ) -> ConfigError:
        first = problems[0]
        return cls(file, first.key_path, first.message, problems=tuple(problems), warnings=warnings)

    def _render(self) -> str:
        text = f"{self.file}: {Problem(self.key_path, self.message)}"
        if len(self.problems) > 1:
            text += f" (and {len(self.problems) - 1} more)"
        return text
