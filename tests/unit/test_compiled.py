"""When the compiled relay is used: only with a build whose stamp matches the sources as they
are now (pgcat_py.compiled). Anything else falls back to pure Python with one warning, and
never puts a finder for a stale build in front of the sources."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

import pytest

from pgcat_py import compiled
from pgcat_py.compiled import RELAY_MODULES, REPO, build_problem, module_files, source_digests
from pgcat_py.compiled_build import source_files

SOURCES = ["pgcat_py/conn.py", "pgcat_py/protocol/framing.py", "pyproject.toml"]


def fake_build(build_dir: Path, sources: dict[str, str]) -> Path:
    """A build for this interpreter and module list, with empty module files and `sources`
    (name -> sha256) in its stamp; the stamp's path."""
    for path in module_files(build_dir).values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    stamp = {"sources": sources, "python": compiled.EXT_SUFFIX, "modules": list(RELAY_MODULES)}
    path = compiled.relay_dir(build_dir) / "stamp.json"
    path.write_text(json.dumps(stamp))
    return path


def finders() -> list[object]:
    return [f for f in sys.meta_path if type(f).__name__ == "_BuildFinder"]


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_warned", False)


def test_a_stale_stamp_falls_back_to_pure_python_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_build(tmp_path, {**source_digests(REPO, SOURCES), "pgcat_py/conn.py": "0" * 64})
    with caplog.at_level(logging.WARNING, logger="pgcat_py.compiled"):
        assert compiled.use_compiled(tmp_path) is False
        assert compiled.use_compiled(tmp_path) is False
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "pgcat_py/conn.py changed since it was built" in warnings[0]
    assert "running pure Python" in warnings[0]
    assert finders() == []


def test_no_build_falls_back_to_pure_python(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pgcat_py.compiled"):
        assert compiled.use_compiled(tmp_path / "nothing") is False
    assert "no compiled build" in caplog.text
    assert finders() == []


def test_a_build_for_another_interpreter_or_module_list_is_stale(tmp_path: Path) -> None:
    stamp_path = fake_build(tmp_path, source_digests(REPO, SOURCES))
    assert build_problem(tmp_path) is None
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "python": ".cpython-312-x86_64-linux-gnu.so"}))
    assert "built for .cpython-312" in (build_problem(tmp_path) or "")
    stamp_path.write_text(json.dumps({**stamp, "modules": list(RELAY_MODULES[:-1])}))
    assert "another list of relay modules" in (build_problem(tmp_path) or "")


def test_a_missing_module_file_is_stale(tmp_path: Path) -> None:
    fake_build(tmp_path, source_digests(REPO, SOURCES))
    module_files(tmp_path)["pgcat_py.conn"].unlink()
    assert "pgcat_py.conn are missing" in (build_problem(tmp_path) or "")


def test_relay_modules_imported_from_the_sources_are_not_replaced(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    importlib.import_module("pgcat_py.frontend.session")  # pure Python, as the suite runs it
    fake_build(tmp_path, source_digests(REPO, SOURCES))
    with caplog.at_level(logging.WARNING, logger="pgcat_py.compiled"):
        assert compiled.use_compiled(tmp_path) is False
    assert "pgcat_py.frontend.session" in caplog.text and "already imported" in caplog.text
    assert finders() == []


def write_package(root: Path) -> None:
    """pkg.a imports pkg.b in a function and pkg.c for typing only; pkg.d is not imported."""
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "a.py").write_text(
        "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n"
        "def f() -> None:\n    from .b import B\n")
    (root / "pkg" / "b.py").write_text("B = 1\n")
    (root / "pkg" / "c.py").write_text("")
    (root / "pkg" / "d.py").write_text("")
    (root / "pyproject.toml").write_text("")


def test_the_stamp_covers_what_the_relay_imports_at_any_depth(tmp_path: Path) -> None:
    write_package(tmp_path)
    files = source_files(tmp_path, ["pkg.a"], ["pkg"])
    assert files == ["pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py", "pyproject.toml"]
    real = source_files()
    assert {name.replace(".", "/") + ".py" for name in RELAY_MODULES} <= set(real)
    assert "pyproject.toml" in real


def test_an_edit_to_an_imported_module_makes_the_build_stale(tmp_path: Path) -> None:
    write_package(tmp_path)
    build = tmp_path / "build"
    fake_build(build, source_digests(tmp_path, source_files(tmp_path, ["pkg.a"], ["pkg"])))
    (tmp_path / "pkg" / "d.py").write_text("D = 1\n")  # not imported: still current
    assert build_problem(build, root=tmp_path) is None
    (tmp_path / "pkg" / "b.py").write_text("B = 2\n")
    assert build_problem(build, root=tmp_path) == "pkg/b.py changed since it was built"
    (tmp_path / "pkg" / "c.py").unlink()
    assert build_problem(build, root=tmp_path) == ("pkg/b.py and 1 more changed since it was "
                                                   "built")
