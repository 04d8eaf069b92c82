"""What an idle client holds: no per-client copies of what can be shared.

Each of these was a measured part of an idle client's memory (benchmarks/idle_memory_bench.py):
an empty statement dict and a copy of its startup settings, 64 bytes each at least; then the
defaults every client shares until it changes them (its Overrides, settings, settings key,
named-statement texts), each of which must become the client's own before it changes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from parser import CommandKind, CustomCommand
from pgcat_py.app import cancel_key
from pgcat_py.frontend import login, settings
from pgcat_py.frontend.checkout import adopt_spelling
from pgcat_py.frontend.commands import run_command
from pgcat_py.frontend.idle import NO_STATEMENTS, _statement_of
from pgcat_py.frontend.login import shared_startup_settings
from pgcat_py.frontend.session import ClientSession
from pgcat_py.frontend.settings import PARAMS_KEYS_SHARED, shared_params_key
from pgcat_py.frontend.statements import ClientStatements
from pgcat_py.protocol.frontend import Bind, Parse
from pgcat_py.router import NO_OVERRIDES, Overrides


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


# --- defaults every client shares until it changes them ------------------------------------
def test_a_named_parse_gives_the_client_its_own_statement_dict() -> None:
    session = SimpleNamespace(statements=NO_STATEMENTS,
                              prepared=SimpleNamespace(unnamed_parse=b""),
                              router=SimpleNamespace(reads_bind_keys=False))
    session.own_statements = ClientSession.own_statements.__get__(session)
    batch = bytearray(Parse("s1", "SELECT 1").encode() + Bind("", "s1").encode())
    sql, _, _ = _statement_of(cast(Any, session), batch, len(batch))
    assert sql == "SELECT 1"
    assert session.statements == {"s1": "SELECT 1"}
    assert NO_STATEMENTS == {}  # the shared one is never written


def test_a_custom_command_gets_the_client_its_own_overrides() -> None:
    session = SimpleNamespace(overrides=NO_OVERRIDES)
    own = ClientSession.own_overrides(cast(Any, session))
    assert own is not NO_OVERRIDES and session.overrides is own
    assert ClientSession.own_overrides(cast(Any, session)) is own  # made once
    run_command(CustomCommand(CommandKind.SET_SERVER_ROLE, "replica"), own,
                cast(Any, SimpleNamespace()))
    assert own.role == "replica" and own.any_set
    assert Overrides() == NO_OVERRIDES


def test_a_setting_change_copies_the_shared_startup_settings() -> None:
    shared = shared_startup_settings({"application_name": "same"})
    session = SimpleNamespace(params=shared, startup_params=shared)
    own = ClientSession.own_params(cast(Any, session))
    own["application_name"] = "changed"
    assert shared == {"application_name": "same"} and session.startup_params is shared
    assert ClientSession.own_params(cast(Any, session)) is own


def test_clients_with_the_same_settings_share_one_key() -> None:
    first = shared_params_key((("application_name", "app"),))
    assert shared_params_key((("application_name", "app"),)) is first
    for n in range(PARAMS_KEYS_SHARED):
        shared_params_key((("application_name", f"client {n}"),))
    assert len(settings._PARAMS_KEYS) <= PARAMS_KEYS_SHARED


def test_the_cancel_key_tells_every_pair_apart() -> None:
    assert cancel_key(1, 2) != cancel_key(2, 1)
    assert cancel_key(2**31 - 1, 0) != cancel_key(0, 2**31 - 1)
    assert cancel_key(5, 2**31 - 1) == 5 << 32 | 2**31 - 1


def test_the_server_spelling_of_a_setting_goes_to_the_clients_own_copy() -> None:
    shared = shared_startup_settings({"datestyle": "iso", "application_name": "app"})
    session = SimpleNamespace(params=shared, startup_params=shared, params_key=())
    for name in ("own_params", "params_changed"):
        setattr(session, name, getattr(ClientSession, name).__get__(session))
    adopt_spelling(cast(Any, session), {"datestyle": ("DateStyle", "ISO, MDY"),
                                        "application_name": ("application_name", "app")})
    assert shared == {"datestyle": "iso", "application_name": "app"}
    assert session.params == {"datestyle": "ISO, MDY", "application_name": "app"}
    assert ("datestyle", "ISO, MDY") in session.params_key
    same = SimpleNamespace(params=shared, startup_params=shared, own_params=None,
                           params_changed=lambda: None)
    adopt_spelling(cast(Any, same), {"application_name": ("application_name", "app")})
    # nothing to adopt: no copy made (own_params, None here, would fail if called)


def test_an_intercepted_named_parse_gives_the_client_its_own_statement_dict() -> None:
    session = SimpleNamespace(statements=NO_STATEMENTS)
    ClientSession.own_statements(cast(Any, session))["s1"] = "SELECT 1"
    assert session.statements == {"s1": "SELECT 1"} and NO_STATEMENTS == {}
