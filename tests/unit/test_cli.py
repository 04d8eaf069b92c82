"""pgcat's command line, so pgcat's scripts and images start pgcat-py unchanged."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pgcat_py.cli import log_level, rust_log_level, setup_logging

EXAMPLE = Path(__file__).parents[2] / "pgcat.toml.example"


@pytest.mark.parametrize(("name", "level"), [
    ("trace", 5), ("TRACE", 5), ("Debug", logging.DEBUG), ("info", logging.INFO),
    ("warn", logging.WARNING), ("WARNING", logging.WARNING), ("error", logging.ERROR)])
def test_pgcat_and_python_level_names_in_any_case(name: str, level: int) -> None:
    assert log_level(name) == level


def test_an_unknown_level_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'loud'"):
        log_level("loud")


@pytest.mark.parametrize(("value", "level"), [
    ("debug", logging.DEBUG), ("pgcat=trace", 5), ("hyper=info,pgcat=warn", logging.WARNING),
    ("tokio=debug", None), ("nonsense", None)])
def test_rust_log_directives(value: str, level: int | None) -> None:
    assert rust_log_level(value) == level


def test_the_more_verbose_of_log_level_and_rust_log_wins() -> None:
    setup_logging("info", "text", "pgcat=debug")
    assert logging.getLogger().level == logging.DEBUG
    setup_logging("error", "text", None)
    assert logging.getLogger().level == logging.ERROR


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgcat_py", *args], capture_output=True,
                          text=True, timeout=60, env=env, check=False)


def test_pgcat_flags_are_accepted_with_check() -> None:
    done = run("--log-level", "trace", "-F", "Structured", "-n", "--check", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    bad = run("--log-level", "loud", "--check", str(EXAMPLE))
    assert bad.returncode == 2 and "unknown log level" in bad.stderr


def test_structured_logs_are_json_lines(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    done = run("-F", "structured", str(missing), env={"PATH": "/usr/bin:/bin",
                                                      "CONFIG_FILE": "ignored"})
    assert done.returncode == 78
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert entry["level"] == "ERROR" and "absent.toml" in entry["message"]
