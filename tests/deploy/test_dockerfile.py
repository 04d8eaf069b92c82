"""The Dockerfile, checked without a Docker engine (none exists on these machines, and the
image has never been built here): its instructions parsed, the final stage's user, stop
signal, health check, ports and command; every COPY source present and not dropped by
.dockerignore; the locks pinned and hashed and covering pyproject.toml's dependencies; and
the HEALTHCHECK's Python run for real against a proxy's /healthz.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pgcat_py.localpg import Topology, free_port
from tests.e2e.conftest import ProxyRunner
from tests.e2e.test_metrics import exporter_port
from tests.harness.proxy import proxy_config
from tests.harness.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
# The image's interpreter: python:3.11-slim on Linux.
IMAGE_ENVIRONMENT: dict[str, str] = {
    **{key: str(value) for key, value in default_environment().items()},
    "python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
    "platform_system": "Linux", "implementation_name": "cpython"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array form's words, or None for the shell form."""
        if self.value.startswith("["):
            words: list[str] = json.loads(self.value)
            return words
        return None


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (the Dockerfile
    reference: a line ending in a backslash continues; `#` starts a comment line)."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped too
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def stages() -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in parse(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            found.append([])
        assert found, f"line {instruction.line}: {instruction.keyword} before FROM"
        found[-1].append(instruction)
    return found


def final() -> dict[str, list[Instruction]]:
    by_keyword: dict[str, list[Instruction]] = {}
    for instruction in stages()[-1]:
        by_keyword.setdefault(instruction.keyword, []).append(instruction)
    return by_keyword


def only(keyword: str) -> Instruction:
    found = final().get(keyword, [])
    assert len(found) == 1, f"the final stage has {len(found)} {keyword}"
    return found[0]


def test_every_stage_starts_from_python_3_11_slim_or_newer() -> None:
    for stage in stages():
        image = stage[0].value.split()[0]
        match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image)
        assert match and int(match[1]) >= 11, image


def test_the_final_stage_runs_as_the_pods_non_root_user() -> None:
    user = only("USER").value.split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric uid lets runAsNonRoot verify it"
    deployment = yaml.safe_load((ROOT / "k8s" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)


def test_the_stop_signal_is_sigint_the_graceful_shutdown() -> None:
    assert only("STOPSIGNAL").value == "SIGINT"


def test_the_healthcheck_asks_healthz_with_python() -> None:
    check = only("HEALTHCHECK")
    options, _, command = check.value.partition("CMD ")
    words = json.loads(command)
    assert words[:2] == ["python", "-c"], "exec form, with the image's python (no curl)"
    compile(words[2], "HEALTHCHECK", "exec")
    assert "/healthz" in words[2] and ":9930/" in words[2]
    assert "--interval=" in options and "--timeout=" in options


def test_the_command_is_pgcat_py_on_the_mounted_config() -> None:
    assert only("ENTRYPOINT").exec_form() == ["pgcat-py"]
    assert only("CMD").exec_form() == ["/etc/pgcat/pgcat.toml"]
    ports = {word for e in final()["EXPOSE"] for word in e.value.split()}
    assert {"6432", "9930"} <= ports


def test_dependencies_come_from_the_lock_with_hashes() -> None:
    runs = [i.value for stage in stages() for i in stage if i.keyword == "RUN"]
    commands = [shlex.split(c) for r in runs for c in r.split("&&")]
    installs = [c for c in commands if len(c) > 1 and c[0].endswith("/pip") and c[1] == "install"]
    locked = [c for c in installs if "-r" in c]
    assert any("requirements.lock" in c[c.index("-r") + 1] for c in locked)
    for command in locked:
        assert "--require-hashes" in command and "--only-binary=:all:" in command, command
    for command in installs:
        assert "-r" in command or "--no-deps" in command, f"unlocked dependencies: {command}"


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(relative: str) -> bool:
    """.dockerignore's rules as Docker applies them (filepath.Match, `**` any depth,
    a matched directory drops what is under it); this file uses no `!` exceptions."""
    patterns = ignore_patterns()
    assert not any(p.startswith("!") for p in patterns)
    parts = Path(relative).parts
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for pattern in patterns:
            if fnmatch.fnmatchcase(prefix, pattern.removeprefix("**/")) or (
                    pattern.startswith("**/") and fnmatch.fnmatchcase(
                        parts[depth - 1], pattern.removeprefix("**/"))):
                return True
    return False


def test_every_copied_source_exists_and_reaches_the_build_context() -> None:
    copies = [i for stage in stages() for i in stage if i.keyword in ("COPY", "ADD")]
    assert copies
    for copy in copies:
        words = [w for w in shlex.split(copy.value) if not w.startswith("--")]
        if any(w.startswith("--from=") for w in shlex.split(copy.value)):
            continue
        for source in words[:-1]:
            path = ROOT / source
            assert path.exists(), f"line {copy.line}: {source} does not exist"
            assert not is_ignored(source.rstrip("/")), f".dockerignore drops {source}"
    # what pip needs to build the wheel: pyproject's readme and every package
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {w.rstrip("/") for c in copies for w in shlex.split(c.value)}
    assert project["project"]["readme"] in copied
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, package


def test_dockerignore_keeps_tests_and_the_virtualenv_out() -> None:
    for path in (".venv", ".git", "tests", "benchmarks", "demo-data",
                 "pgcat_py/__pycache__", "pgcat_py/config/__pycache__/x.pyc"):
        assert is_ignored(path), path
    for path in ("pgcat_py/app.py", "README.md", "pyproject.toml", "requirements.lock"):
        assert not is_ignored(path), path


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} from a pip requirements file written by scripts/lock."""
    text = path.read_text().replace("\\\n", " ")
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        assert version, f"{path.name}: {requirement} is not pinned"
        hashes = [o.removeprefix("--hash=sha256:") for o in options]
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), line
        found[canonicalize_name(name)] = (version, hashes)
    return found


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def closure(requirements: list[str], locked: dict[str, tuple[str, list[str]]]
            ) -> dict[str, Requirement]:
    """Every distribution the requirements pull in on the image. A package's own
    dependencies are read from what is installed here when that is the locked version
    (scripts/lock pins .venv's); a newer one installed since says nothing about the lock."""
    needed: dict[str, Requirement] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate(
                {**IMAGE_ENVIRONMENT, "extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in needed and requirement.extras <= needed[name].extras:
            continue
        needed[name] = requirement
        if name not in locked or installed_version(name) != locked[name][0]:
            continue
        for dependency in importlib.metadata.requires(requirement.name) or []:
            dep = Requirement(dependency)
            if dep.marker is None or any(
                    dep.marker.evaluate({**IMAGE_ENVIRONMENT, "extra": extra})
                    for extra in ["", *requirement.extras]):
                dep.marker = None
                todo.append(dep)
    return needed


def test_the_lock_covers_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = read_lock(LOCK)
    needed = closure(project["dependencies"], locked)
    assert "sqlglotc" in needed, "sqlglot[c]'s compiled part"
    for name, requirement in needed.items():
        assert name in locked, f"requirements.lock lacks {name}: run scripts/lock"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (name, version)
    assert set(locked) == set(needed), f"locked but not needed: {set(locked) - set(needed)}"


def test_the_build_lock_covers_the_build_backend() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    locked = read_lock(BUILD_LOCK)
    for raw in requires:
        requirement = Requirement(raw)
        version, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), raw


def test_the_bench_lock_covers_the_bench_extra() -> None:
    """requirements-bench.lock (scripts/lock): matplotlib for benchmarks/soak.py's plot."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["bench"]
    locked = read_lock(ROOT / "requirements-bench.lock")
    for name, requirement in closure(extra, locked).items():
        assert name in locked, f"requirements-bench.lock lacks {name}: run scripts/lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), name


def healthcheck_code() -> str:
    _, _, command = only("HEALTHCHECK").value.partition("CMD ")
    code: str = json.loads(command)[2]
    return code


def run_healthcheck(port: int) -> int:
    env = {"PGCAT_HEALTHZ_URL": f"http://127.0.0.1:{port}/healthz", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", healthcheck_code()], env=env,
                          capture_output=True, timeout=30, check=False)
    return done.returncode


@pytest.mark.timeout(60)
def test_the_healthcheck_passes_on_a_serving_proxy_and_fails_once_it_stops(
        pg_topology: Topology, proxy_runner: ProxyRunner) -> None:
    port = exporter_port()
    text = proxy_config(pg_topology, port=free_port(),
                        extra_general={"enable_prometheus_exporter": True,
                                       "prometheus_exporter_port": port})
    running = proxy_runner(text)
    assert wait_for(lambda: run_healthcheck(port) == 0), running.log_tail()
    running.stop()
    assert run_healthcheck(port) != 0
