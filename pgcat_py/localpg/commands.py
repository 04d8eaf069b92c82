"""Finding and running the PostgreSQL binaries for local topologies.

PostgreSQL's server binaries (initdb, pg_ctl, postgres, pg_basebackup) refuse to run as root,
so when we are root every one of them runs as the `postgres` OS user through
`runuser -u postgres --`, and every file they touch must belong to that user
(reference/environment.md §3). Clients (psql, pgbench) run as whoever we are.
Failures raise `LocalPgError` with the command's output and the tail of the relevant log.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

SERVER_OS_USER = "postgres"
PG_BIN_ENV = "PGCAT_PY_PG_BIN"  # overrides the search in find_pg_bin()
PG_INSTALL_ROOT = Path("/usr/lib/postgresql")  # Debian/Ubuntu: one <major>/bin per version
LOG_TAIL_LINES = 40
COMMAND_TIMEOUT = 180.0  # seconds; initdb on a loaded 2-core machine stays far below this


class LocalPgError(RuntimeError):
    """A step of creating, starting or querying a local PostgreSQL node failed."""


class PgBinariesNotFound(LocalPgError):
    """No PostgreSQL server binaries (initdb) on this machine."""


def find_pg_bin() -> Path:
    """The newest PostgreSQL bin directory that has initdb ($PGCAT_PY_PG_BIN wins)."""
    override = os.environ.get(PG_BIN_ENV)
    if override:
        if not (Path(override) / "initdb").is_file():
            raise PgBinariesNotFound(f"${PG_BIN_ENV}={override} holds no initdb")
        return Path(override)
    candidates = [p.parent for p in PG_INSTALL_ROOT.glob("*/bin/initdb") if p.is_file()]
    if candidates:
        return max(candidates, key=_version_key)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PgBinariesNotFound(
        "no PostgreSQL server binaries found: looked at $"
        f"{PG_BIN_ENV}, {PG_INSTALL_ROOT}/*/bin/initdb and initdb on PATH; "
        "install them with scripts/setup (apt-get install postgresql)"
    )


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """'/usr/lib/postgresql/15/bin' -> (15,); non-numeric versions sort first."""
    return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def client_binary(pg_bin: Path, name: str) -> str:
    """psql/pgbench: the one next to the server binaries, else the one on PATH."""
    local = pg_bin / name
    if local.is_file():
        return str(local)
    on_path = shutil.which(name)
    if on_path is None:
        raise PgBinariesNotFound(f"{name} not found in {pg_bin} nor on PATH")
    return on_path


def is_root() -> bool:
    return os.geteuid() == 0


def as_server_user(argv: Sequence[str]) -> list[str]:
    """Prefix a server command so it runs as `postgres` when we are root."""
    if is_root():
        return ["runuser", "-u", SERVER_OS_USER, "--", *argv]
    return list(argv)


def give_to_server_user(*paths: Path) -> None:
    """chown to `postgres` (only needed, and only possible, as root)."""
    if not is_root():
        return
    entry = pwd.getpwnam(SERVER_OS_USER)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def write_server_file(path: Path, text: str) -> None:
    """Write a config file the server will read (owned by the server user)."""
    path.write_text(text)
    give_to_server_user(path)


def check_traversable(path: Path) -> None:
    """The server user must be able to walk down to `path` (environment.md §3)."""
    if not is_root():
        return
    server_uid = pwd.getpwnam(SERVER_OS_USER).pw_uid
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid != server_uid and not info.st_mode & 0o001:
            raise LocalPgError(
                f"{parent} is not traversable by the {SERVER_OS_USER} OS user, so PostgreSQL "
                f"cannot use {path}; choose a base under /tmp or chmod o+x {parent}"
            )


def run_command(
    argv: Sequence[str],
    *,
    what: str,
    log: Path | None = None,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run one command to completion; return stdout, or raise with output and log tail.

    A new session keeps a terminal's Ctrl-C away from pg_ctl and the postmaster it starts:
    the caller decides when servers stop (fast, replicas first), not the terminal.
    """
    full_env = None if env is None else {**os.environ, **env}
    try:
        done = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=COMMAND_TIMEOUT,
            start_new_session=True,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalPgError(f"{what}: {exc}{_log_section(log)}") from exc
    if done.returncode != 0:
        output = _tail((done.stdout or "") + (done.stderr or ""))
        raise LocalPgError(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{output}{_log_section(log)}"
        )
    return done.stdout


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that it does not exist."""
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError as exc:
        return f"(no log: {exc})"


def _log_section(log: Path | None) -> str:
    if log is None:
        return ""
    return f"\n--- tail of {log} ---\n{log_tail(log)}"


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
