"""Reading SET / RESET statements into the settings that follow a client."""

from __future__ import annotations

import pytest

from pgcat_py.frontend.settings import apply_change, setting_change


@pytest.mark.parametrize(("sql", "change"), [
    ("SET statement_timeout = '1234'", ("statement_timeout", "1234")),
    ("set work_mem to 7777;", ("work_mem", "7777")),
    ("SET SESSION search_path TO app, public", ("search_path", "app, public")),
    ("SET search_path = 'a', 'b'", ("search_path", "a, b")),
    ("SET myapp.user_id = 'o''brien'", ("myapp.user_id", "o'brien")),
    ("SET work_mem TO DEFAULT", ("work_mem", None)),
    ("RESET work_mem", ("work_mem", None)),
    ("RESET ALL;", ("all", None)),
])
def test_set_and_reset_are_read(sql: str, change: tuple[str, str | None]) -> None:
    assert setting_change(sql) == change


@pytest.mark.parametrize("sql", [
    "SET LOCAL work_mem = 1", "SET TRANSACTION READ ONLY", "SET ROLE admin",
    "SET SESSION AUTHORIZATION DEFAULT", "SET TIME ZONE 'UTC'", "SET a = 1; SET b = 2",
    "SELECT 1", "SHOW work_mem", "SET CONSTRAINTS ALL DEFERRED",
])
def test_what_is_not_a_session_setting_is_ignored(sql: str) -> None:
    assert setting_change(sql) is None


def test_reset_goes_back_to_the_startup_value() -> None:
    startup = {"application_name": "app", "work_mem": "8MB"}
    params = dict(startup)
    apply_change(params, startup, ("work_mem", "1MB"))
    apply_change(params, startup, ("statement_timeout", "5"))
    assert params == {"application_name": "app", "work_mem": "1MB", "statement_timeout": "5"}
    apply_change(params, startup, ("work_mem", None))
    assert params["work_mem"] == "8MB"
    apply_change(params, startup, ("all", None))
    assert params == startup
