"""tests/offline_dns.py: which names a test may resolve (a table), and that the guard is
in place for socket.getaddrinfo, asyncio's loop, aiohttp's ThreadedResolver and uvloop.

Every refusal below is made by the guard before any resolver is asked: the guard's
presence is asserted first, and the wrapper tests use a stand-in for the real call."""
from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from tests.offline_dns import (
    guarded_getaddrinfo,
    guarded_loop_getaddrinfo,
    hosts_names,
    may_resolve,
)

HOSTS = hosts_names(["127.0.0.1 localhost  # the loopback", "::1 ip6-localhost ip6-loopback",
                     "# 10.0.0.1 commented.out", "", "127.0.0.1 VM"])


def test_hosts_names():
    assert HOSTS == {"localhost", "ip6-localhost", "ip6-loopback", "vm"}


@pytest.mark.parametrize("host,flags,ok", [
    (None, 0, True),                       # a wildcard bind: nothing to resolve
    ("127.0.0.1", 0, True), ("::1", 0, True), ("fe80::1%lo", 0, True),
    (b"127.0.0.1", 0, True),
    ("127.1", 0, True), ("0x7f000001", 0, True), ("2130706433", 0, True),
    ("localhost", 0, True), ("LOCALHOST", 0, True), ("vm", 0, True),
    ("ip6-loopback", 0, True),
    ("localhost.", 0, False),              # the trailing dot is not in the file: DNS
    ("[::1]", 0, False),
    ("x.example", 0, False), ("cdn.z-api.io", 0, False), ("1.2.3.4.nip.io", 0, False),
    ("commented.out", 0, False), ("", 0, False), ("127.0.0.1 junk", 0, False),
    (b"\xff", 0, False),
    ("x.example", socket.AI_NUMERICHOST, True),   # numeric only: never asks DNS
])
def test_may_resolve(host, flags, ok):
    assert may_resolve(host, HOSTS, flags) is ok


def test_the_wrapper_refuses_before_calling_the_real_resolver():
    calls = []

    def real(*args):
        calls.append(args)
        return ["answer"]
    wrapped = guarded_getaddrinfo(real, HOSTS)
    with pytest.raises(socket.gaierror) as info:
        wrapped("x.example", 80)
    assert info.value.errno == socket.EAI_NONAME and calls == []
    assert wrapped("localhost", 80, type=socket.SOCK_STREAM) == ["answer"]
    assert calls == [("localhost", 80, 0, socket.SOCK_STREAM, 0, 0)]


async def test_the_loop_wrapper_refuses_before_calling_the_real_resolver():
    calls = []

    async def real(self, host, port, **kw):
        calls.append((host, port, kw))
        return ["answer"]
    wrapped = guarded_loop_getaddrinfo(real, HOSTS)
    with pytest.raises(socket.gaierror):
        await wrapped(None, "x.example", 443)
    assert calls == []
    assert await wrapped(None, "127.0.0.1", 443) == ["answer"]


async def test_the_guard_is_installed_for_every_resolver_path():
    # Installed by the session fixture in conftest.py (asserted before any lookup).
    assert socket.getaddrinfo.__qualname__.startswith("guarded_getaddrinfo")
    loop = asyncio.get_running_loop()
    with pytest.raises(socket.gaierror):
        await loop.getaddrinfo("nothing-here.example", 80)
    assert (await loop.getaddrinfo("localhost", 80, family=socket.AF_INET))[0][4][0] \
        == "127.0.0.1"
    resolver = aiohttp.ThreadedResolver()   # what aiohttp clients use by default
    try:
        with pytest.raises(OSError):
            await resolver.resolve("nothing-here.example", 80)
    finally:
        await resolver.close()


def test_the_guard_holds_on_uvloop():
    import uvloop
    assert uvloop.Loop.getaddrinfo.__qualname__.startswith("guarded_loop_getaddrinfo")
    uv = uvloop.new_event_loop()
    try:
        with pytest.raises(socket.gaierror):
            uv.run_until_complete(uv.getaddrinfo("nothing-here.example", 80))
        infos = uv.run_until_complete(uv.getaddrinfo("localhost", 80, family=socket.AF_INET))
        assert infos[0][4][0] == "127.0.0.1"
    finally:
        uv.close()
