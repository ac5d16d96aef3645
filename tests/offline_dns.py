"""Name resolution in tests without DNS: IP literals and /etc/hosts names only.

Tests talk to loopback only. A host name that misses /etc/hosts would go to the
machine's DNS resolver, which is not on loopback: a test naming ``x.example`` could send
a query off the machine. ``install`` wraps ``socket.getaddrinfo`` (which asyncio's
default loop, and so aiohttp's ThreadedResolver, calls through ``loop.getaddrinfo``) and
uvloop's own ``Loop.getaddrinfo`` (libuv, not the socket module) so that any other name
raises ``socket.gaierror`` at once, as an unknown name does, without asking anyone.
The service's own code is unchanged: this is installed by tests/conftest.py only.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

HOSTS_FILE = "/etc/hosts"


def hosts_names(lines: Iterable[str]) -> frozenset[str]:
    """The names an /etc/hosts text maps (lower case: the files lookup ignores case)."""
    names: set[str] = set()
    for line in lines:
        fields = line.partition("#")[0].split()
        names.update(f.lower() for f in fields[1:])
    return frozenset(names)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)           # IPv4, IPv6, IPv6 with a %scope
        return True
    except ValueError:
        pass
    if not host or any(c.isspace() for c in host):
        return False
    try:
        # The legacy IPv4 spellings getaddrinfo also takes as numbers (127.1,
        # 0x7f000001, 2130706433); glibc rejects trailing text, so does the check above.
        socket.inet_aton(host)
        return True
    except OSError:
        return False


def may_resolve(host: str | bytes | None, names: frozenset[str], flags: int = 0) -> bool:
    """Whether getaddrinfo(host, ...) may go ahead: no host (a wildcard bind), a numeric
    lookup (AI_NUMERICHOST), an IP literal, or a name /etc/hosts maps exactly (a trailing
    dot or brackets are not in the file, so they would reach DNS). Pure."""
    if host is None or flags & socket.AI_NUMERICHOST:
        return True
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    return _is_literal(host) or host.lower() in names


def refusal(host: object) -> socket.gaierror:
    return socket.gaierror(socket.EAI_NONAME,
                           f"{host!r} is neither an IP literal nor in {HOSTS_FILE}: "
                           "tests never ask DNS")


def guarded_getaddrinfo(real, names: frozenset[str]):
    """``real`` (socket.getaddrinfo) refusing what :func:`may_resolve` refuses."""
    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if not may_resolve(host, names, flags):
            raise refusal(host)
        return real(host, port, family, type, proto, flags)
    return getaddrinfo


def guarded_loop_getaddrinfo(real, names: frozenset[str]):
    """An event loop's ``getaddrinfo`` method refusing likewise."""
    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        if not may_resolve(host, names, flags):
            raise refusal(host)
        return await real(self, host, port, family=family, type=type, proto=proto,
                          flags=flags)
    return getaddrinfo


def install(monkeypatch, hosts_file: str = HOSTS_FILE) -> frozenset[str]:
    """Wrap every resolver path in this process (undone with ``monkeypatch``); the
    names /etc/hosts maps."""
    try:
        with open(hosts_file, encoding="utf-8", errors="replace") as f:
            names = hosts_names(f)
    except OSError:
        names = frozenset()
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo(socket.getaddrinfo, names))
    try:
        import uvloop
    except ImportError:
        return names
    monkeypatch.setattr(uvloop.Loop, "getaddrinfo",
                        guarded_loop_getaddrinfo(uvloop.Loop.getaddrinfo, names))
    return names
