"""The client's address: the peer, or what trusted proxies say in X-Forwarded-For.

Each proxy appends the address it received the request from, so the list is read from
the right: the peer first, then each hop, for as long as the hop reporting it is
trusted (MEDIA_TRUSTED_PROXIES). The first untrusted address is the client. Anything a
client wrote further left is never believed, and a garbled entry stops the walk at the
last address that can be vouched for.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from server.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HOPS = 32
MAX_HEADER = 2048


def parse_address(text: str | None) -> Address | None:
    """An IP address, IPv4-mapped IPv6 as IPv4; None for anything else."""
    if not text or len(text) > 64:
        return None
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(addr: Address | None, networks: Sequence[Network]) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n
                                    for n in networks)


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: Sequence[Network]) -> str | None:
    """The client's address as text, or None when the peer has none (a unix socket)."""
    addr = parse_address(peer)
    if addr is None:
        return None
    if not forwarded_for or not in_networks(addr, trusted):
        return str(addr)
    if len(forwarded_for) > MAX_HEADER:
        return str(addr)
    hops = [h.strip() for h in forwarded_for.split(",")][-MAX_HOPS:]
    for hop in reversed(hops):
        previous = parse_address(hop)
        if previous is None:
            break
        addr = previous
        if not in_networks(addr, trusted):
            break
    return str(addr)
