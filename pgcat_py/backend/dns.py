"""dns_cache_enabled / dns_max_ttl (pgcat's meaning): server host names are resolved once
and kept for dns_max_ttl seconds; connections are opened to the cached addresses; when a
refresh finds that a host's addresses changed (a failover that moved a DNS name), the idle
connections made to the old ones are dropped, so new ones reach the new server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time

log = logging.getLogger(__name__)


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DnsCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, tuple[str, ...]]] = {}  # host -> (until, ips)

    async def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The host's addresses, from the cache while fresh (an IP is its own address)."""
        if is_address(host):
            return (host,)
        now = time.monotonic()
        entry = self._entries.get(host)
        if entry is not None and now < entry[0]:
            return entry[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
        found = tuple(sorted({str(info[4][0]) for info in infos}))
        if entry is not None and entry[1] != found:
            log.warning("DNS: %s moved from %s to %s", host, ", ".join(entry[1]),
                        ", ".join(found))
        self._entries[host] = (now + self.ttl, found)
        return found

    def current(self, host: str) -> tuple[str, ...] | None:
        """What the cache holds for ``host`` now (None when it never resolved it)."""
        entry = self._entries.get(host)
        return entry[1] if entry is not None else None
