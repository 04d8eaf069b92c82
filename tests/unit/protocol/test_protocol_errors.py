"""The error hierarchy: what each error tells the client (SQLSTATE) and whether it ends the
connection (FATAL)."""

from __future__ import annotations

import pytest

from pgcat_py.protocol.errors import (
    AuthenticationFailed,
    PoolTimeout,
    ProtocolViolation,
    ProxyError,
    ServerError,
)


@pytest.mark.parametrize(("error", "sqlstate", "fatal"), [
    (ProxyError, "XX000", False),
    (ProtocolViolation, "08P01", True),
    (AuthenticationFailed, "28P01", True),
    (ServerError, "08006", True),
    (PoolTimeout, "58000", False),
])
def test_each_error_carries_its_sqlstate_and_severity(error: type[ProxyError], sqlstate: str,
                                                      fatal: bool) -> None:
    err = error("message")
    assert isinstance(err, ProxyError)
    assert (err.sqlstate, err.is_fatal, err.message, str(err)) == (
        sqlstate, fatal, "message", "message")


def test_overrides_apply_to_one_instance_only() -> None:
    err = ProtocolViolation("no user", sqlstate="28000", severity="ERROR", detail="why")
    assert (err.sqlstate, err.severity, err.detail, err.is_fatal) == ("28000", "ERROR", "why",
                                                                      False)
    assert ProtocolViolation("other").sqlstate == "08P01"
    assert ProtocolViolation("other").detail is None
