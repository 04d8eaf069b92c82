"""Sans-IO PostgreSQL wire protocol (v3.0): framing, message codecs, startup packets, auth math.

Nothing here touches a socket, an event loop or the configuration: bytes in, values out,
bytes out. The relay uses :mod:`.framing` directly; the control plane uses :mod:`.codec`.
"""
