"""dns_cache_enabled: names resolved once per dns_max_ttl, moves noticed."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from pgcat_py.backend.dns import DnsCache


def test_an_address_is_its_own_and_a_name_is_cached_until_its_ttl() -> None:
    answers = [["10.0.0.1"], ["10.0.0.1"], ["10.0.0.2"]]
    calls = 0

    async def fake_getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        nonlocal calls
        ips = answers[min(calls, len(answers) - 1)]
        calls += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.getaddrinfo = fake_getaddrinfo  # type: ignore[method-assign, assignment]
        cache = DnsCache(ttl=0.05)
        assert await cache.addresses("127.0.0.1", 5432) == ("127.0.0.1",)
        assert await cache.addresses("db.example", 5432) == ("10.0.0.1",)
        assert await cache.addresses("db.example", 5432) == ("10.0.0.1",)
        assert calls == 1  # fresh: from the cache
        await asyncio.sleep(0.06)
        assert await cache.addresses("db.example", 5432) == ("10.0.0.1",)
        await asyncio.sleep(0.06)
        assert await cache.addresses("db.example", 5432) == ("10.0.0.2",)  # it moved
        assert cache.current("db.example") == ("10.0.0.2",)

    asyncio.run(main())


def test_localhost_resolves_for_real() -> None:
    found = asyncio.run(DnsCache(30).addresses("localhost", 5432))
    if not found:
        pytest.fail("localhost did not resolve")
    assert "127.0.0.1" in found or "::1" in found
