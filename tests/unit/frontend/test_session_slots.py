"""ClientSession declares every attribute in __slots__: an instance dict with its ~49
attributes cost each idle client ~1.6 KB (benchmarks/idle_memory_bench.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from pgcat_py.frontend.session import ClientSession


def test_a_client_session_has_no_instance_dict() -> None:
    ctx = SimpleNamespace(worker=SimpleNamespace(count=1, index=0))
    session = ClientSession(cast(Any, ctx))  # an undeclared attribute would raise here
    assert not hasattr(session, "__dict__")
    assert session.checkout_failures == 0 and session.fresh_since == 0.0
