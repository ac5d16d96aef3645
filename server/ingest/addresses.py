"""Which addresses and hosts ``import-url`` may fetch from: pure functions, no I/O.

The server fetches URLs a client names, so a URL must never reach what only the server
can reach (server-side request forgery): its own loopback, the private network, the
cloud metadata service. The decision is made on the resolved *address*, never on the
name, and the connection is then made to that same address (see url.py), so a name
that resolves differently the second time (DNS rebinding) gains nothing.

Only global unicast addresses pass. Addresses that embed an IPv4 address (IPv4-mapped,
NAT64, 6to4, Teredo) are judged by the address they embed, so ``::ffff:127.0.0.1`` is
loopback. Legacy IPv4 spellings that resolvers still accept (``127.1``, ``2130706433``,
``0x7f.0.0.1``, ``0177.0.0.1``) are read the way ``inet_aton`` reads them.
"""
from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named first so the refusal says what was hit; is_global below catches the rest.
_V4_RULES: list[tuple[ipaddress.IPv4Network, str]] = [
    (ipaddress.ip_network(n), why) for n, why in [
        ("0.0.0.0/8", "unspecified or 'this network'"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    ]]
_V6_RULES: list[tuple[ipaddress.IPv6Network, str]] = [
    (ipaddress.ip_network(n), why) for n, why in [
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated, private)"),
        ("ff00::/8", "multicast"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("::/96", "IPv4-compatible (deprecated)"),
    ]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Metadata endpoints worth naming even though the rules above already refuse them.
_METADATA = {ipaddress.ip_address("169.254.169.254"): "cloud metadata service",
             ipaddress.ip_address("fd00:ec2::254"): "cloud metadata service (AWS IPv6)",
             ipaddress.ip_address("100.100.100.200"): "cloud metadata service (Alibaba)"}


def parse_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one in any spelling a resolver accepts
    (dotted, short, decimal, octal, hex IPv4; IPv6 with or without brackets or zone),
    else None (a name to resolve)."""
    h = host.strip().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.split("%", 1)[0]   # an IPv6 zone id does not change what is reached
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if not h or any(c not in "0123456789abcdefxABCDEFX." for c in h):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(h))   # pure parsing, no lookup
    except OSError:
        return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is a translation form."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be fetched from (None: a global unicast address, allowed)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = refusal(inner)
            return f"{why} (embedded in IPv6 {ip})" if why else None
        rules: list = _V6_RULES
    else:
        rules = _V4_RULES
    if ip in _METADATA:
        return _METADATA[ip]
    for net, why in rules:
        if ip in net:
            return why
    if not ip.is_global:
        return "not a global address"
    return None


def address_allowed(ip: IPAddress, *, allow_private: bool) -> str | None:
    """None if ``ip`` may be connected to, else the reason it may not.

    ``allow_private`` (MEDIA_IMPORT_ALLOW_PRIVATE, for tests and private networks)
    admits everything except multicast and the unspecified address, which are never a
    server to fetch from.
    """
    why = refusal(ip)
    if why is None:
        return None
    if allow_private and not ip.is_multicast and not ip.is_unspecified:
        return None
    return why


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """MEDIA_IMPORT_HOSTS: ``host`` equals a pattern, or a ``*.domain`` pattern covers
    it (subdomains only). An empty list allows every host."""
    if not patterns:
        return True
    h = host.lower().rstrip(".")
    for p in patterns:
        if p.startswith("*."):
            if h.endswith(p[1:]) and len(h) > len(p) - 1:
                return True
        elif h == p:
            return True
    return False
