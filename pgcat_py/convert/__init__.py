"""`pgcat-py convert pgbouncer.ini [-o pgcat.toml]`: a PgBouncer config as a pgcat.toml.

Reads PgBouncer's ini dialect (`[section]`, `key = value`, whole-line `;` / `#` comments, no
inline comments, no continuation lines; `%include` is refused), the libpq-like connection
strings of `[databases]`, the `[users]` overrides and the auth_file (userlist.txt) the ini
names. Every key with no equivalent, or whose meaning shifts, becomes a warning with the
reason: nothing is dropped silently. Where PgBouncer's default differs from pgcat-py's and
changes behaviour (port, pool_mode, pool size, the client's wait for a server, server TLS),
PgBouncer's is written out. The text is validated with the config loader before it is
written. Key meanings: PgBouncer's doc/config.md; ours: pgcat.toml.example.

`ini` reads PgBouncer's files, `general` converts [pgbouncer], `pools` converts [databases]
and [users], `toml_text` writes the result.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config import EX_CONFIG, ConfigError, parse_config
from .auth_query import convert_auth_query
from .general import (
    convert_admin,
    convert_auth_type,
    convert_general,
    read_users,
    usable_passwords,
)
from .ini import ConvertError, read_ini
from .pools import Context, convert_pools, read_user_overrides
from .toml_text import Conversion, render

__all__ = ["ConvertError", "convert", "main", "render"]


def convert(ini_path: Path, auth_file: Path | None = None) -> Conversion:
    out = Conversion()
    sections = read_ini(ini_path)
    ini = sections.get("pgbouncer", {})
    for name in sections:
        if name not in ("pgbouncer", "databases", "users"):
            reason = ("worker processes forward cancel requests among themselves"
                      if name == "peers" else "unknown section")
            out.warn(f"[{name}]", f"{reason}: not converted")
    convert_general(ini, out)
    auth_type = convert_auth_type(ini.get("auth_type", "md5"), out)
    secrets_by_user = read_users(ini, ini_path, auth_file, out)
    passwords = usable_passwords(secrets_by_user, auth_type, out)
    convert_auth_query(ini, secrets_by_user, out.general, "[pgbouncer]", out)
    convert_admin(ini, secrets_by_user, passwords, auth_type, out)
    context = Context(ini, auth_type, passwords, read_user_overrides(sections, passwords, out))
    convert_pools(sections.get("databases", {}), context, out)
    if not out.pools:
        raise ConvertError(f"{ini_path}: no [databases] entry to convert (pgcat-py serves "
                           "only the databases it names)")
    return out


def check_output(text: str, name: str) -> None:
    """The converted text must load as pgcat-py would load it, with no unknown key."""
    try:
        loaded = parse_config(text, name, environ={})
    except ConfigError as exc:
        raise ConvertError(f"the converted config does not load: {exc}") from None
    if loaded.unknown_keys:  # a bug here, not in the input
        raise ConvertError(f"the converted config has unknown keys: {loaded.unknown_keys}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="pgcat-py convert", description="Write the pgcat.toml equivalent to a "
        "pgbouncer.ini; what cannot be converted is listed on stderr.")
    parser.add_argument("ini", help="PgBouncer's config file")
    parser.add_argument("-o", "--output", help="the pgcat.toml to write (default: stdout)")
    parser.add_argument("--auth-file", type=Path, help="the userlist.txt to read (default: "
                        "the ini's auth_file, relative to the ini's directory)")
    args = parser.parse_args(argv)
    try:
        conversion = convert(Path(args.ini), args.auth_file)
        text = render(conversion, args.ini)
        check_output(text, args.output or "<stdout>")
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_CONFIG
    for warning in conversion.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    # It holds passwords: readable by its owner only, like a userlist.txt should be.
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"{args.output}: written ({len(conversion.warnings)} warning(s) above)",
          file=sys.stderr)
    return 0
