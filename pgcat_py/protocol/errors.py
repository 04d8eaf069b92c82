"""The proxy's error hierarchy: every error carries the SQLSTATE the client will see.

Low-level exceptions (ConnectionResetError, OSError, scramp's) are translated into these at
the layer boundary, so the session loop only has to know one family.
"""

from __future__ import annotations

# SQLSTATE codes we send (PostgreSQL docs, Appendix A).
PROTOCOL_VIOLATION = "08P01"
CONNECTION_FAILURE = "08006"
CONNECTION_EXCEPTION = "08000"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
INVALID_CATALOG_NAME = "3D000"
TOO_MANY_CONNECTIONS = "53300"
ADMIN_SHUTDOWN = "57P01"
QUERY_CANCELED = "57014"
FEATURE_NOT_SUPPORTED = "0A000"
IN_FAILED_TRANSACTION = "25P02"
ACTIVE_SQL_TRANSACTION = "25001"
SYSTEM_ERROR = "58000"
INTERNAL_ERROR = "XX000"
UNDEFINED_OBJECT = "42704"
SYNTAX_ERROR = "42601"
INVALID_PARAMETER_VALUE = "22023"
CONFIGURATION_LIMIT_EXCEEDED = "53400"
POOLER_TIMEOUT = "08P01"


class ProxyError(Exception):
    """An error that ends up as an ErrorResponse to a client."""

    sqlstate: str = INTERNAL_ERROR
    severity: str = "ERROR"

    def __init__(self, message: str, *, sqlstate: str | None = None,
                 severity: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if sqlstate is not None:
            self.sqlstate = sqlstate
        if severity is not None:
            self.severity = severity
        self.detail = detail

    @property
    def is_fatal(self) -> bool:
        """FATAL errors end the client connection after the ErrorResponse."""
        return self.severity == "FATAL"


class ProtocolViolation(ProxyError):
    """Bytes that do not follow the protocol: the connection cannot be trusted any more."""

    sqlstate = PROTOCOL_VIOLATION
    severity = "FATAL"


class AuthenticationFailed(ProxyError):
    """Wrong password or failed SASL exchange."""

    sqlstate = INVALID_PASSWORD
    severity = "FATAL"


class ServerError(ProxyError):
    """A server connection failed (connect, auth, or lost mid-transaction)."""

    sqlstate = CONNECTION_FAILURE
    severity = "FATAL"


class AdminShutdown(ProxyError):
    """The pooler is shutting down (PostgreSQL's wording and code for the same case)."""

    sqlstate = ADMIN_SHUTDOWN
    severity = "FATAL"

    def __init__(self) -> None:
        super().__init__("terminating connection due to administrator command")


class PoolTimeout(ProxyError):
    """No server connection could be checked out within connect_timeout."""

    sqlstate = SYSTEM_ERROR
    severity = "ERROR"


class IdleInTransactionTimeout(ProxyError):
    """idle_client_in_transaction_timeout (PostgreSQL's wording and code for the same)."""

    sqlstate = "25P03"
    severity = "FATAL"

    def __init__(self) -> None:
        super().__init__("terminating connection due to idle-in-transaction timeout")
