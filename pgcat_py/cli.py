"""Command line: `pgcat-py [CONFIG]`, `pgcat-py --check CONFIG`, `pgcat-py demo`,
`pgcat-py convert pgbouncer.ini [-o pgcat.toml]`.

Exit codes follow pgcat: 78 (EX_CONFIG) for a config that cannot be used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .compiled import ENV_COMPILED, use_compiled
from .config import EX_CONFIG, ConfigError, check_tls_files, load_config


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (pgcat's --log-format structured)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


# pgcat's levels (Rust's, any case) and Python's names, to logging's numbers.
LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
          "off": logging.CRITICAL + 10}
logging.addLevelName(5, "TRACE")


def log_level(name: str) -> int:
    """A level by pgcat's or Python's name (ValueError for others)."""
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r} (one of: {', '.join(LEVELS)})") from None


def rust_log_level(value: str) -> int | None:
    """The level RUST_LOG gives pgcat: a bare level, or a `pgcat=level` directive."""
    for directive in value.split(","):
        target, _, level = directive.strip().rpartition("=")
        if target in ("", "pgcat") and level.strip().lower() in LEVELS:
            return LEVELS[level.strip().lower()]
    return None


def setup_logging(level: str, fmt: str, rust_log: str | None = None) -> None:
    """Logging as pgcat's flags ask: the more verbose of --log-level and RUST_LOG; text,
    structured (JSON lines; `json` is ours) or debug (text with the source line)."""
    number = log_level(level)
    from_rust = rust_log_level(rust_log) if rust_log else None
    if from_rust is not None:
        number = min(number, from_rust)
    handler = logging.StreamHandler(sys.stderr)
    if fmt in ("json", "structured"):
        handler.setFormatter(JsonFormatter())
    elif fmt == "debug":
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=number, handlers=[handler], force=True)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgcat-py", description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=os.environ.get("CONFIG_FILE", "pgcat.toml"),
                   help="path to pgcat.toml, or 'demo' to start the local demo topology")
    p.add_argument("--check", action="store_true",
                   help="validate the config and exit (fails on unknown keys)")
    p.add_argument("-l", "--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    p.add_argument("-F", "--log-format", default=os.environ.get("LOG_FORMAT", "text").lower(),
                   type=str.lower, choices=["text", "json", "structured", "debug"])
    p.add_argument("-n", "--no-color", action="store_true",
                   default=bool(os.environ.get("NO_COLOR")),
                   help="accepted for pgcat's scripts (pgcat-py never colours its logs)")
    p.add_argument("--demo-dir", default="demo-data", help="where `demo` keeps its servers")
    p.add_argument("--port", type=int, default=6432, help="listen port for `demo`")
    p.add_argument("--compiled", action="store_true",
                   default=os.environ.get(ENV_COMPILED, "") not in ("", "0"),
                   help="run the relay compiled with mypyc (build/compiled, built by "
                        "scripts/setup) if that build matches the sources, else pure Python "
                        "with a warning (env PGCAT_PY_COMPILED=1)")
    return p


def check(path: str) -> int:
    from .plugins import check_plugin_modules  # the parser and sqlglot: only when needed

    try:
        loaded = load_config(path)
        check_tls_files(loaded.config)  # the proxy loads them at startup: so does --check
        check_plugin_modules(loaded.config)  # and imports plugin_module hooks
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_CONFIG
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if loaded.unknown_keys:
        print(f"error: {path}: {len(loaded.unknown_keys)} unknown key(s)", file=sys.stderr)
        return EX_CONFIG
    print(f"{path}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["convert"]:  # pgcat-py convert pgbouncer.ini [-o pgcat.toml]
        from .convert import main as convert_main

        return convert_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        setup_logging(args.log_level, args.log_format, os.environ.get("RUST_LOG"))
    except ValueError as exc:
        parser.error(str(exc))
    # Worker processes (workers/supervisor.py) read these as their defaults.
    os.environ["LOG_LEVEL"], os.environ["LOG_FORMAT"] = args.log_level, args.log_format
    if args.compiled:  # before the relay modules are first imported
        os.environ[ENV_COMPILED] = "1"  # and so in the worker processes
        use_compiled()
    if args.config == "demo" and not Path("demo").is_file():
        from .demo import run_demo

        return run_demo(Path(args.demo_dir), args.port)
    if args.check:
        return check(args.config)
    from .app import run

    try:
        return run(Path(args.config))
    except ConfigError as exc:
        logging.getLogger("pgcat_py").error("%s", exc)
        return EX_CONFIG
    except OSError as exc:  # e.g. the port is taken
        logging.getLogger("pgcat_py").error("cannot start: %s", exc)
        return EX_CONFIG


if __name__ == "__main__":
    sys.exit(main())
