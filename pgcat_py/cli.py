"""Command line: `pgcat-py [CONFIG]`, `pgcat-py --check CONFIG`, `pgcat-py demo`.

Exit codes follow pgcat: 78 (EX_CONFIG) for a config that cannot be used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .config import EX_CONFIG, ConfigError, check_tls_files, load_config


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (pgcat's --log-format structured)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt in ("json", "structured"):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgcat-py", description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=os.environ.get("CONFIG_FILE", "pgcat.toml"),
                   help="path to pgcat.toml, or 'demo' to start the local demo topology")
    p.add_argument("--check", action="store_true",
                   help="validate the config and exit (fails on unknown keys)")
    p.add_argument("-l", "--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    p.add_argument("-F", "--log-format", default=os.environ.get("LOG_FORMAT", "text"),
                   choices=["text", "json", "structured", "debug"])
    p.add_argument("--demo-dir", default="demo-data", help="where `demo` keeps its servers")
    p.add_argument("--port", type=int, default=6432, help="listen port for `demo`")
    return p


def check(path: str) -> int:
    try:
        loaded = load_config(path)
        check_tls_files(loaded.config)  # the proxy loads them at startup: so does --check
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
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
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
