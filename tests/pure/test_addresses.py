"""The import-url address filter, as tables: no traffic, no lookups."""
from __future__ import annotations

import ipaddress

import pytest

from server.ingest.addresses import address_allowed, host_allowed, parse_ip, refusal

REFUSED = [
    # (address, a word the reason must contain)
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"),
    ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.168.0.1", "private"), ("192.168.255.255", "private"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("169.254.169.254", "metadata"), ("169.254.1.1", "link-local"),
    ("100.100.100.200", "metadata"),
    ("192.0.0.8", "IETF"), ("192.0.2.10", "documentation"), ("198.18.0.1", "benchmark"),
    ("198.51.100.7", "documentation"), ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"),
    ("::1", "loopback"), ("::", "unspecified"),
    ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"),
    ("fd00:ec2::254", "metadata"),
    ("fe80::1", "link-local"), ("fec0::1", "site-local"), ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"), ("100::1", "discard"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"), ("::ffff:0.0.0.0", "unspecified"),
    ("64:ff9b::7f00:1", "loopback"), ("64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:7f00:1::1", "loopback"), ("2002:c0a8:101::1", "private"),
    ("::127.0.0.1", "IPv4-compatible"),
]


@pytest.mark.parametrize("addr,why", REFUSED)
def test_refused(addr, why):
    reason = refusal(ipaddress.ip_address(addr))
    assert reason is not None and why.lower() in reason.lower(), reason
    assert address_allowed(ipaddress.ip_address(addr), allow_private=False) == reason


ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1",
           "100.63.255.255", "100.128.0.1", "192.167.1.1", "169.253.0.1", "11.0.0.1",
           "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8",
           "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("addr", ALLOWED)
def test_global_addresses_allowed(addr):
    assert refusal(ipaddress.ip_address(addr)) is None


@pytest.mark.parametrize("addr,allowed", [
    ("127.0.0.1", True), ("::1", True), ("10.1.2.3", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("fd00::1", True), ("::ffff:127.0.0.1", True),
    # Never a server, whatever the setting.
    ("0.0.0.0", False), ("::", False), ("224.0.0.1", False), ("ff02::1", False),
])
def test_allow_private(addr, allowed):
    ip = ipaddress.ip_address(addr)
    assert (address_allowed(ip, allow_private=True) is None) is allowed


@pytest.mark.parametrize("host,addr", [
    ("127.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("0", "0.0.0.0"),
    ("0.0.0.0", "0.0.0.0"), ("10.1", "10.0.0.1"), ("3232235777", "192.168.1.1"),
    ("169.254.169.254.", "169.254.169.254"), ("0xA9FEA9FE", "169.254.169.254"),
    ("[::1]", "::1"), ("::1", "::1"), ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("[::ffff:7f00:1]", "::ffff:127.0.0.1"), ("fe80::1%eth0", "fe80::1"),
])
def test_parse_ip_reads_every_spelling(host, addr):
    ip = parse_ip(host)
    assert ip == ipaddress.ip_address(addr)
    assert refusal(ip) is not None


@pytest.mark.parametrize("host", ["localhost", "example.com", "cdn.z-api.io", "1.2.3.4.nip.io",
                                  "0x7g.0.0.1", "", "127.0.0.1.evil", "[not-ip]"])
def test_parse_ip_leaves_names(host):
    assert parse_ip(host) is None


@pytest.mark.parametrize("host,patterns,allowed", [
    ("anything.example", (), True),
    ("media.z-api.io", ("media.z-api.io",), True),
    ("MEDIA.Z-API.IO.", ("media.z-api.io",), True),
    ("other.z-api.io", ("media.z-api.io",), False),
    ("a.b.whatsapp.net", ("*.whatsapp.net",), True),
    ("whatsapp.net", ("*.whatsapp.net",), False),
    ("evilwhatsapp.net", ("*.whatsapp.net",), False),
    ("whatsapp.net.evil.com", ("*.whatsapp.net",), False),
    ("x.com", ("a.com", "x.com"), True),
])
def test_host_allow_list(host, patterns, allowed):
    assert host_allowed(host, patterns) is allowed
