"""The relay compiled with mypyc: which modules, where the build lives, and when it is used.

`python -m pgcat_py.compiled_build` (scripts/setup runs it) compiles RELAY_MODULES into
build/compiled/relay/: one shared library with all of them (calls between them are C calls),
one small extension module per module that loads its part, and stamp.json with the digests of
the sources it was built from: the relay modules and every module of ours they import, at any
depth (mypyc compiles against their types and inlines their Final constants), and
pyproject.toml (mypy's settings). Never next to the sources: a .so beside its .py would shadow
it, and an edit to the .py would silently run stale code.

`use_compiled()` (`pgcat-py --compiled`, or PGCAT_PY_COMPILED=1) puts a finder in front of
sys.meta_path that knows only those module names; everything else, packages included,
imports from the sources as always. It does so only if the stamp matches those sources as
they are now and this interpreter, and only before any relay module was imported; otherwise
it logs why, once, and the relay stays pure Python. An edit to app.py or the admin console
leaves the build current; one to session.py or anything it imports makes it stale until it is
rebuilt. Pure Python is the default and what the test suite runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.util
import json
import logging
import sys
import sysconfig
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build" / "compiled"  # gitignored (build/)
ENV_COMPILED = "PGCAT_PY_COMPILED"  # "1": run the relay compiled (the CLI's --compiled)
# Everything a pooled transaction runs through (checkout, relay both ways, release, routing),
# measured with benchmarks/relay_cycle_bench.py, and the parser's front: parser.scan (the
# plain-query scan that beats the regex lexer only when compiled), the lexer and the Parser.
# Not the rest of parser/: sqlglot runs once per shape, on a cache miss.
RELAY_MODULES = (
    "pgcat_py.protocol.framing",
    "pgcat_py.protocol.casefold",
    "pgcat_py.protocol.backend",
    "pgcat_py.conn",
    "pgcat_py.frontend.session",
    "pgcat_py.frontend.idle",
    "pgcat_py.frontend.linked",
    "pgcat_py.frontend.statements",
    "pgcat_py.frontend.pins",
    "pgcat_py.frontend.states",
    "pgcat_py.backend.server",
    "pgcat_py.backend.prepared",
    "pgcat_py.backend.stale_plan",
    "pgcat_py.pool.server_pool",
    "pgcat_py.pool.cluster",
    "pgcat_py.pool.counters",
    "pgcat_py.router",
    "pgcat_py.stats",
    "parser.scan",
    "parser.lexer",
    "parser.core",
)
GROUP = "pgcat_py_relay"  # mypyc's shared library is the top-level module GROUP__mypyc
PROBE = "pgcat_py.frontend.session"  # its origin says which relay runs
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))  # .cpython-311-x86_64-linux-gnu.so
COMPILED_KIND, PURE_KIND = "compiled (mypyc)", "pure Python"  # what benchmarks print

_warned = False


def source_digests(root: Path, files: Sequence[str]) -> dict[str, str]:
    """The sha256 of each of `files` (paths under `root`); "gone" for one that is not there."""
    digests = {}
    for name in files:
        try:
            digests[name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
        except OSError:
            digests[name] = "gone"
    return digests


def relay_dir(build_dir: Path = BUILD_DIR) -> Path:
    """The current build: stamp.json and the extension modules."""
    return build_dir / "relay"


def read_stamp(build_dir: Path = BUILD_DIR) -> dict[str, object] | None:
    """The current build's stamp (None: no build, or an unreadable stamp)."""
    try:
        stamp = json.loads((relay_dir(build_dir) / "stamp.json").read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def module_files(build_dir: Path = BUILD_DIR) -> dict[str, Path]:
    """Module name -> extension file, for the relay modules and mypyc's shared library."""
    root = relay_dir(build_dir)
    names = [*RELAY_MODULES, f"{GROUP}__mypyc"]
    return {name: root.joinpath(*name.split(".")).with_name(name.rsplit(".", 1)[-1] + EXT_SUFFIX)
            for name in names}


def build_problem(build_dir: Path = BUILD_DIR, root: Path = REPO) -> str | None:
    """Why the build in `build_dir` cannot run the sources under `root` (None: it can)."""
    stamp = read_stamp(build_dir)
    if stamp is None:
        return f"no compiled build in {build_dir} (scripts/setup builds it)"
    if stamp.get("python") != EXT_SUFFIX:
        return f"it was built for {stamp.get('python')}, this interpreter is {EXT_SUFFIX}"
    if stamp.get("modules") != list(RELAY_MODULES):
        return "it was built for another list of relay modules"
    built = stamp.get("sources")
    if not isinstance(built, dict) or not built:
        return "its stamp lists no sources"
    changed = [name for name, digest in source_digests(root, list(built)).items()
               if digest != built[name]]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"{changed[0]}{more} changed since it was built"
    missing = [name for name, path in module_files(build_dir).items() if not path.is_file()]
    if missing:
        return f"its files for {', '.join(missing)} are missing"
    return None


class _BuildFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of one compiled build, and only those."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        file = self.files.get(fullname)
        return None if file is None else importlib.util.spec_from_file_location(fullname, file)


def use_compiled(build_dir: Path = BUILD_DIR) -> bool:
    """From now on import the relay modules from the compiled build, if it is current.

    True if the relay will run compiled. Otherwise the reason is logged (once per process)
    and the relay stays pure Python.
    """
    if any(isinstance(finder, _BuildFinder) for finder in sys.meta_path):
        return True
    problem = build_problem(build_dir)
    imported = [name for name in RELAY_MODULES if name in sys.modules]
    if problem is not None:
        problem += " (rebuild: python -m pgcat_py.compiled_build)"
    elif imported:
        problem = f"{', '.join(imported)} already imported from the sources"
    if problem is not None:
        global _warned
        if not _warned:
            _warned = True
            log.warning("compiled relay not used: %s; running pure Python", problem)
        return False
    sys.meta_path.insert(0, _BuildFinder(module_files(build_dir)))
    log.info("relay compiled with mypyc: %d modules from %s", len(RELAY_MODULES),
             relay_dir(build_dir))
    return True


def relay_kind() -> str:
    """Which relay this process runs: COMPILED_KIND or PURE_KIND."""
    module = importlib.import_module(PROBE)
    origin = getattr(module, "__file__", None) or ""
    return COMPILED_KIND if origin.endswith(EXT_SUFFIX) else PURE_KIND


def relay_kind_of(pid: int, build_dir: Path = BUILD_DIR) -> str:
    """Which relay a running proxy runs: whether it has mapped the build's shared library.
    A supervisor's workers decide as it did: they inherit ENV_COMPILED and read the same
    build."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return COMPILED_KIND if str(relay_dir(build_dir) / GROUP) in maps else PURE_KIND
