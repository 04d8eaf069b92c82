"""docs/configuration.md is what `python -m pgcat_py.config.reference` writes from the
models, every key has a meaning, and the reference and pgcat.toml.example agree on which keys
are ours. (That the example names every key with the model's default, and no unknown key, is
test_config_example.py's part.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from pgcat_py.config.meanings import EXTENSIONS, MEANINGS
from pgcat_py.config.reference import SECTIONS, Section, render, type_text
from tests.unit.config.test_config_example import reference_lines, tables

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
MODELS: dict[str, type[BaseModel]] = {s.model.__name__: s.model for s in SECTIONS}


def test_docs_configuration_md_is_what_the_generator_writes() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: .venv/bin/python -m pgcat_py.config.reference "
        "> docs/configuration.md")


@pytest.mark.parametrize("section", SECTIONS, ids=[s.header for s in SECTIONS])
def test_every_key_has_a_meaning(section: Section) -> None:
    model = section.model
    own = MEANINGS.get(model.__name__, {})
    for name, field in model.model_fields.items():
        assert field.description or name in own, f"{model.__name__}.{name} has no meaning"


def test_no_meaning_or_extension_names_a_key_that_is_gone() -> None:
    for table in (MEANINGS, EXTENSIONS):
        for model_name, keys in table.items():
            assert set(keys) <= set(MODELS[model_name].model_fields), model_name


def test_the_example_marks_the_same_keys_as_ours() -> None:
    marked: dict[str, set[str]] = {}
    table = ""
    for line in reference_lines():
        if line.startswith("["):
            table = line.strip("[] ")
        elif line.partition("#")[2].strip().startswith("[extension]"):  # not a value's
            marked.setdefault(table, set()).add(line.partition("=")[0].strip())
    for name, model, _ in tables():
        assert marked.get(name, set()) == EXTENSIONS.get(model.__name__, frozenset()), name


@pytest.mark.parametrize(("annotation", "text"), [
    (bool, "boolean"), (list[list[str]], "array of arrays of strings"),
    (int | None, "integer"), (dict[str, int], "tables of integer"),
])
def test_type_names(annotation: object, text: str) -> None:
    assert type_text(annotation) == text


def test_integer_widths_show_their_bounds() -> None:
    assert "integer 0 to 65535" in render()  # port, a u16
    assert "integer -32768 to 32767" in render()  # prometheus_exporter_port, an i16
