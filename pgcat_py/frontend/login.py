"""Login: startup packet, SSL/GSS negotiation, cancel requests, auth, and the welcome messages.

Order and messages follow PostgreSQL's backend startup (postmaster.c ProcessStartupPacket,
then auth, then ParameterStatus*, BackendKeyData, ReadyForQuery), so drivers see what they
would see from PostgreSQL itself.
"""

from __future__ import annotations

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
    session.database, session.user = startup.database, startup.user
    if ctx.is_admin_database(startup.database):
        return await _admin_login(session, startup)
    if ctx.shutting_down:
        raise AdminShutdown()
    if ctx.too_many_clients():
        raise ProxyError("sorry, too many clients already",
                         sqlstate=TOO_MANY_CONNECTIONS, severity="FATAL")
    session.params = client_settings(startup)
    session.startup_params = dict(session.params)
    cluster, creds, pool_mode = ctx.find_pool(startup.database, startup.user)
    for name, value in cluster.settings.user_settings:  # the user's, unless the client's
        session.params.setdefault(name, value)
        session.startup_params.setdefault(name, value)
    session.params_changed()
    await authenticate(session, creds)
    session.cluster = cluster
    session.transaction_mode = pool_mode == "transaction"
    session.routes_vary = cluster.router.varies
    session.holds_begins = cluster.has_choice
    server_params = await cluster.learn_server_parameters()
    _welcome(session, startup, server_params)
    ctx.client_logged_in(session)
    return True


async def _admin_login(session: ClientSession, startup: StartupMessage) -> bool:
    creds = session.ctx.admin_credentials(startup.user)
    if creds is None:
        raise ProxyError(f'No pool configured for database: "{startup.database}", '
                         f'user: "{startup.user}"', sqlstate="28000", severity="FATAL")
    await authenticate(session, creds)
    session.state = State.ADMIN
    admin_params = {"application_name": ("application_name", ""),
                    "client_encoding": ("client_encoding", "UTF8"),
                    "server_encoding": ("server_encoding", "UTF8"),
                    "server_version": ("server_version", "15.0 (pgcat-py)"),
                    "datestyle": ("DateStyle", "ISO, MDY"),
                    "timezone": ("TimeZone", "Etc/UTC"),
                    "standard_conforming_strings": ("standard_conforming_strings", "on")}
    _welcome(session, startup, admin_params)
    return True


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
             server_params: dict[str, tuple[str, str]]) -> None:
    """AuthenticationOk, ParameterStatus*, BackendKeyData, ReadyForQuery in one write."""
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
    out += [be.ParameterStatus(name, value).encode() for name, value in shown.values()]
    out.append(be.BackendKeyData(session.process_id, session.secret_key).encode())
    out.append(be.READY_IDLE)
    session.write(b"".join(out))
