"""What an idle client holds: no per-client copies of what can be shared.

Each of these was a measured part of an idle client's memory (benchmarks/idle_memory_bench.py):
an empty statement dict and a copy of its startup settings, 64 bytes each at least.
"""

from __future__ import annotations

from typing import Any, cast

from pgcat_py.frontend import login
from pgcat_py.frontend.login import shared_startup_settings
from pgcat_py.frontend.statements import ClientStatements


def test_named_statements_are_made_on_first_use() -> None:
    statements = ClientStatements()
    assert statements._named is None
    statements.named[b"s1\0"] = cast(Any, "statement")
    assert statements.named == {b"s1\0": "statement"}


def test_clients_with_the_same_startup_settings_share_one_dict() -> None:
    first = shared_startup_settings({"application_name": "app", "timezone": "UTC"})
    second = shared_startup_settings({"application_name": "app", "timezone": "UTC"})
    other = shared_startup_settings({"application_name": "other"})
    assert first is second and first == {"application_name": "app", "timezone": "UTC"}
    assert other is not first


def test_the_shared_startup_settings_start_over_when_full() -> None:
    kept = shared_startup_settings({"application_name": "kept"})
    for n in range(login.STARTUP_SETTINGS_SHARED):
        shared_startup_settings({"application_name": f"client {n}"})
    assert len(login._STARTUP_SETTINGS) <= login.STARTUP_SETTINGS_SHARED
    assert kept == {"application_name": "kept"}  # a client's dict outlives the cache
