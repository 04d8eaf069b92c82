"""Login: startup packet, SSL/GSS negotiation, cancel requests, auth, and the welcome messages.

Order and messages follow PostgreSQL's backend startup (postmaster.c ProcessStartupPacket,
then auth, then ParameterStatus*, BackendKeyData, ReadyForQuery), so drivers see what they
would see from PostgreSQL itself.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..backend import params as P
from ..protocol import backend as be
from ..protocol.errors import (
    FEATURE_NOT_SUPPORTED,
    TOO_MANY_CONNECTIONS,
    AdminShutdown,
    ProtocolViolation,
    ProxyError,
)
from ..protocol.startup import (
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
    StartupPacket,
    parse_options,
    read_startup_packet,
)
from .auth import authenticate
from .states import State
from .tls import SSL_REFUSED, answer_ssl_request, encryption_request_again, tls_required

if TYPE_CHECKING:
    from .session import ClientSession

# One dict per distinct set of startup settings, shared by the clients that started with it
# (RESET reads a client's startup_params; nothing writes them): an idle client then holds
# no copy of its own. Bounded, since clients choose the values (an application_name each):
# when full it starts over; the clients keep the dicts they have.
_STARTUP_SETTINGS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
STARTUP_SETTINGS_SHARED = 256
# The welcome's ParameterStatus messages, encoded, by the values they show: the clients of a
# pool mostly see the same ones, and encoding a dozen messages was a tenth of a login's
# Python in a burst. Bounded likewise.
_PARAMETER_STATUS: dict[tuple[tuple[str, tuple[str, str]], ...], bytes] = {}
PARAMETER_STATUS_CACHED = 64


async def read_startup(session: ClientSession) -> StartupMessage | CancelRequest:
    """The StartupMessage (or CancelRequest), after any SSL/GSS negotiation: SSLRequest gets
    'S' and the TLS handshake when a certificate is configured, else 'N'; GSSENCRequest
    gets 'N'. A CancelRequest is taken encrypted or not, as PostgreSQL takes it (libpq 17
    sends it over TLS when the connection it cancels had TLS)."""
    tls = session.ctx.client_tls
    encrypted = False
    while True:
        packet = await _next_packet(session)
        if isinstance(packet, SSLRequest | GSSENCRequest):
            if encrypted:
                raise encryption_request_again(type(packet).__name__)
            if isinstance(packet, SSLRequest):
                encrypted = await answer_ssl_request(session, tls)
            else:
                session.write(SSL_REFUSED)
            continue
        if isinstance(packet, StartupMessage) and not encrypted and tls and tls.required:
            raise tls_required()
        return packet


async def _next_packet(session: ClientSession) -> StartupPacket:
    while True:
        packet, used = read_startup_packet(session._rbuf)
        if packet is not None:
            session.consume(used)
            return packet
        await session._wait_for_data()


async def login(session: ClientSession) -> bool:
    """Run the whole login; False when the connection was a CancelRequest."""
    ctx = session.ctx
    startup = await read_startup(session)
    if isinstance(startup, CancelRequest):
        ctx.cancel(startup.process_id, startup.secret_key)
        return False
    # Interned: every client of a pool then shares the two strings instead of holding its own.
    session.database, session.user = sys.intern(startup.database), sys.intern(startup.user)
    if ctx.is_admin_database(startup.database):
        return await _admin_login(session, startup)
    if ctx.shutting_down:
        raise AdminShutdown()
    if ctx.too_many_clients():
        raise ProxyError("sorry, too many clients already",
                         sqlstate=TOO_MANY_CONNECTIONS, severity="FATAL")
    session.params = client_settings(startup)
    # auth_query (auth_users.py): the secret PostgreSQL stores; the pool entry after it
    via_query = ctx.auth_query_login(startup.database, startup.user)
    sasl_final = await via_query(session) if via_query is not None else b""
    cluster, creds, pool_mode = ctx.find_pool(startup.database, startup.user)
    for name, value in cluster.settings.user_settings:  # the user's, unless the client's
        session.params.setdefault(name, value)
    # Until the client changes a setting, its settings are the shared startup ones
    # (ClientSession.own_params copies them before a change).
    session.params = session.startup_params = shared_startup_settings(session.params)
    session.params_changed()
    if via_query is None:
        sasl_final = await authenticate(session, creds)
    session.cluster = cluster
    session.transaction_mode = pool_mode == "transaction"
    session.routes_vary = cluster.router.varies
    session.holds_begins = cluster.has_choice
    try:
        server_params = await cluster.learn_server_parameters()
    except BaseException:
        session.write(sasl_final)  # the exchange ends before the error, as it always did
        raise
    _welcome(session, startup, server_params, sasl_final)
    ctx.client_logged_in(session)
    return True


async def _admin_login(session: ClientSession, startup: StartupMessage) -> bool:
    creds = session.ctx.admin_credentials(startup.user)
    if creds is None:
        raise ProxyError(f'No pool configured for database: "{startup.database}", '
                         f'user: "{startup.user}"', sqlstate="28000", severity="FATAL")
    sasl_final = await authenticate(session, creds)
    session.state = State.ADMIN
    admin_params = {"application_name": ("application_name", ""),
                    "client_encoding": ("client_encoding", "UTF8"),
                    "server_encoding": ("server_encoding", "UTF8"),
                    "server_version": ("server_version", "15.0 (pgcat-py)"),
                    "datestyle": ("DateStyle", "ISO, MDY"),
                    "timezone": ("TimeZone", "Etc/UTC"),
                    "standard_conforming_strings": ("standard_conforming_strings", "on")}
    _welcome(session, startup, admin_params, sasl_final)
    return True


def shared_startup_settings(settings: dict[str, str]) -> dict[str, str]:
    """A copy of ``settings`` that other clients with the same settings share: read only."""
    key = tuple(settings.items())
    shared = _STARTUP_SETTINGS.get(key)
    if shared is None:
        if len(_STARTUP_SETTINGS) >= STARTUP_SETTINGS_SHARED:
            _STARTUP_SETTINGS.clear()
        shared = _STARTUP_SETTINGS[key] = dict(settings)
    return shared


def client_settings(startup: StartupMessage) -> dict[str, str]:
    """The session settings a client asked for at startup, names lower-cased."""
    if "replication" in startup.params and startup.params["replication"] not in ("", "false",
                                                                                   "0", "off"):
        raise ProxyError("replication connections are not supported by the pooler",
                         sqlstate=FEATURE_NOT_SUPPORTED, severity="FATAL")
    settings = {k.lower(): v for k, v in parse_options(startup.params.get("options", "")).items()}
    for name, value in startup.params.items():
        if name in P.NOT_SETTINGS or name.startswith("_pq_."):
            continue
        settings[name.lower()] = value
    for name in settings:
        if not P.is_valid_name(name):
            raise ProtocolViolation(f'invalid startup parameter name "{name}"')
    return settings


def _welcome(session: ClientSession, startup: StartupMessage,
             server_params: dict[str, tuple[str, str]], sasl_final: bytes) -> None:
    """``sasl_final`` (see authenticate), AuthenticationOk, ParameterStatus*,
    BackendKeyData, ReadyForQuery in one write."""
    out = [be.AUTH_OK_MESSAGE]
    unrecognized = tuple(k for k in startup.params if k.startswith("_pq_."))
    if startup.minor_version or unrecognized:
        out.insert(0, be.NegotiateProtocolVersion(0, unrecognized).encode())
    shown = dict(server_params)
    for key, value in session.params.items():
        if key in P.TRACKED and key in shown:
            shown[key] = (shown[key][0], value)
        elif key in P.TRACKED:
            shown[key] = (key, value)
    out.append(_parameter_status(shown))
    out.append(be.BackendKeyData(session.process_id, session.secret_key).encode())
    out.append(be.READY_IDLE)
    session.write(sasl_final + b"".join(out))


def _parameter_status(shown: dict[str, tuple[str, str]]) -> bytes:
    """ParameterStatus for each (name, value) of ``shown``, in one piece (cached)."""
    key = tuple(shown.items())
    block = _PARAMETER_STATUS.get(key)
    if block is None:
        if len(_PARAMETER_STATUS) >= PARAMETER_STATUS_CACHED:
            _PARAMETER_STATUS.clear()
        block = _PARAMETER_STATUS[key] = b"".join(
            be.ParameterStatus(name, value).encode() for name, value in shown.values())
    return block
