"""A client session's states (the `state` column of the admin console's SHOW CLIENTS).

LOGIN: startup and auth. IDLE: no server; input is buffered until a whole first message
says what the next transaction needs. CHECKOUT: waiting for a server (and its parameter
sync). LINKED: relaying to and from a server. ADMIN: an admin console session.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    LOGIN = "login"
    IDLE = "idle"
    CHECKOUT = "waiting"
    LINKED = "active"
    ADMIN = "admin"
