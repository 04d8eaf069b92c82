"""Builds the compiled relay (see pgcat_py.compiled): `python -m pgcat_py.compiled_build`.

Needs mypy (the dev extra; mypyc ships with it), setuptools, a C compiler and Python's
headers; without them it says what is missing and exits 0, since pure Python needs no build.
`--if-stale` builds only when the current build does not match the sources (scripts/setup).
A build goes to a new directory that replaces the current one only when it is complete and
its sources did not change meanwhile; a proxy running the old build keeps the libraries it
has mapped. The compiler's output goes to build/compiled/build.log.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import json
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .compiled import (
    BUILD_DIR,
    EXT_SUFFIX,
    GROUP,
    RELAY_MODULES,
    REPO,
    build_problem,
    read_stamp,
    relay_dir,
    source_digests,
)

SOURCE_PACKAGES = ("pgcat_py", "parser", "sharding")  # ours (pyproject.toml [tool.mypy])


def source_files(root: Path = REPO, modules: Sequence[str] = RELAY_MODULES,
                 packages: Sequence[str] = SOURCE_PACKAGES) -> list[str]:
    """What the build of `modules` reads: their files and those of every module of
    `packages` they import at any depth, anywhere in a file (TYPE_CHECKING and function-level
    imports too, as mypy follows them), the packages' __init__.py files on the way, and
    pyproject.toml; paths under `root`, sorted."""
    found: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        path = _module_file(root, name)
        if name in found or path is None:
            continue
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += [m for m in _imported(name, path) if m.split(".")[0] in packages]
    files = {path.relative_to(root).as_posix() for path in found.values()}
    return sorted(files | {"pyproject.toml"})


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for path in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(name: str, path: Path) -> set[str]:
    """Every module `path` (module `name`) may import: `from a import b` gives a and a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def toolchain_problem() -> str | None:
    """What a build lacks on this machine (None: nothing)."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "no Python headers (Python.h)"
    for package in ("mypy", "setuptools"):
        try:
            version(package)
        except PackageNotFoundError:
            return f"{package} is not installed (pip install -e '.[dev]')"
    return None


def is_stale(build_dir: Path = BUILD_DIR) -> bool:
    """The build does not run the current sources, or another mypy would compile them."""
    stamp = read_stamp(build_dir)
    return (build_problem(build_dir) is not None or stamp is None
            or stamp.get("mypy") != version("mypy"))


def build(build_dir: Path = BUILD_DIR) -> float:
    """Compile RELAY_MODULES into build_dir/relay; the seconds it took.

    Raises RuntimeError when the build fails or the sources changed while it ran.
    """
    started = time.monotonic()
    build_dir.mkdir(parents=True, exist_ok=True)
    files = source_files()
    digests = source_digests(REPO, files)
    new = build_dir / f"relay.new-{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    log_path = build_dir / "build.log"
    with _output_to(log_path), _cwd(REPO):
        try:
            _compile(build_dir, new)
        except (Exception, SystemExit) as exc:  # mypyc exits on a type error
            shutil.rmtree(new, ignore_errors=True)
            raise RuntimeError(f"the build failed ({exc!r}); see {log_path}") from exc
    if source_files() != files or source_digests(REPO, files) != digests:
        shutil.rmtree(new, ignore_errors=True)
        raise RuntimeError("the relay's sources changed during the build: not installed")
    seconds = time.monotonic() - started
    stamp = {"python": EXT_SUFFIX, "mypy": version("mypy"), "modules": list(RELAY_MODULES),
             "build_seconds": round(seconds, 1), "sources": digests}
    (new / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
    _replace(relay_dir(build_dir), new)
    return seconds


def _compile(build_dir: Path, out: Path) -> None:
    """mypyc to C (in build_dir/c), then the C compiler (objects in build_dir/temp) to `out`."""
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]
    from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]

    files = [name.replace(".", "/") + ".py" for name in RELAY_MODULES]
    # Its own mypy cache: mypyc keeps more in it than a plain mypy run does.
    options = ["--cache-dir", str(build_dir / "mypy-cache")]
    # One C file per module: the same code as one big file (measured: the same instructions
    # per relayed transaction) for less CPU time (54 against 62 s for the whole build here).
    extensions = mypycify([*options, *files], target_dir=str(build_dir / "c"),
                          group_name=GROUP, multi_file=True)
    command = build_ext(Distribution({"ext_modules": extensions}))
    command.build_lib, command.build_temp = str(out), str(build_dir / "temp")
    command.parallel = os.cpu_count() or 1  # extensions at once (the shims)
    command.ensure_finalized()
    command.run()


def _replace(current: Path, new: Path) -> None:
    """Put `new` where `current` is. Not atomic: a proxy starting in between finds no build
    and runs pure Python."""
    old = current.with_name(f"relay.old-{os.getpid()}")
    if current.exists():
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Our stdout and stderr, and the C compiler's, into `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """mypyc names modules by their paths from the working directory."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _locked(build_dir: Path) -> Iterator[None]:
    """One build at a time (two setups at once wait for each other)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pgcat_py.compiled_build",
                                description=__doc__.splitlines()[0])
    p.add_argument("--if-stale", action="store_true",
                   help="build only if the current build does not match the sources")
    args = p.parse_args(argv)
    missing = toolchain_problem()
    if missing is not None:
        print(f"compiled relay: not built: {missing}; pure Python only", file=sys.stderr)
        return 0
    with _locked(BUILD_DIR):
        if args.if_stale and not is_stale():
            return 0  # quiet: scripts/setup runs this every time
        print(f"compiled relay: building {len(RELAY_MODULES)} modules with mypyc ...",
              file=sys.stderr, flush=True)
        try:
            seconds = build()
        except RuntimeError as exc:
            print(f"compiled relay: {exc}", file=sys.stderr)
            return 1
    print(f"compiled relay: built in {seconds:.0f} s into {relay_dir()} "
          f"(use it: pgcat-py --compiled, or PGCAT_PY_COMPILED=1)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not sys.exit: tearing down mypy's in-memory build takes seconds
