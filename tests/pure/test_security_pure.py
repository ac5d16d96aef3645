"""Access control's pure parts, as tables: signatures, tokens, credentials, scopes,
X-Forwarded-For, CORS decisions, safe serving and caching headers."""
from __future__ import annotations

import ipaddress

import pytest

from server.security.access import covers
from server.security.cors import allowed_origin, preflight_headers
from server.security.forwarded import client_address
from server.security.keys import MALFORMED, bearer, is_key_shaped, new_key, query_credential
from server.security.serving import PUBLIC_CACHE, cache_control, inline_allowed, safety_headers
from server.security.signing import (
    Check,
    UploadGrant,
    UrlSigner,
    expiry,
    make_upload_token,
    media_query,
    sign_media,
    verify_media,
    verify_upload_token,
)

K1, K2, K3 = b"k" * 32, b"second key, newer than the first", b"an unrelated key of 32 bytes!!!!"
NOW = 1_800_000_000


# -- signed URLs -----------------------------------------------------------------------

def _sig(media_id=7, variant="", exp=NOW + 60, key=K1):
    return sign_media(key, media_id, variant, exp)


@pytest.mark.parametrize("media_id,variant,exp,sig,keys,expected", [
    pytest.param(7, None, str(NOW + 60), _sig(), [K1], Check.OK, id="valid"),
    pytest.param(7, "", str(NOW + 60), _sig(), [K1], Check.OK, id="empty-variant-is-none"),
    pytest.param(7, None, str(NOW), _sig(exp=NOW), [K1], Check.EXPIRED, id="expires-at-exp"),
    pytest.param(7, None, str(NOW - 1), _sig(exp=NOW - 1), [K1], Check.EXPIRED, id="expired"),
    pytest.param(8, None, str(NOW + 60), _sig(), [K1], Check.INVALID, id="other-media"),
    pytest.param(7, None, str(NOW + 61), _sig(), [K1], Check.INVALID, id="exp-changed"),
    pytest.param(7, None, str(NOW - 60), _sig(), [K1], Check.INVALID,
                 id="exp-changed-and-expired-is-invalid"),
    pytest.param(7, None, "0" + str(NOW + 60), _sig(), [K1], Check.INVALID, id="exp-leading-zero"),
    pytest.param(7, "preview", str(NOW + 60), _sig(), [K1], Check.INVALID, id="variant-added"),
    pytest.param(7, None, str(NOW + 60), _sig(variant="preview"), [K1], Check.INVALID,
                 id="variant-dropped"),
    pytest.param(7, "preview", str(NOW + 60), _sig(variant="preview"), [K1], Check.OK,
                 id="variant-signed"),
    pytest.param(7, "m4a", str(NOW + 60), _sig(variant="preview"), [K1], Check.INVALID,
                 id="variant-swapped"),
    pytest.param(7, None, str(NOW + 60), _sig(key=K1), [K2, K1], Check.OK,
                 id="previous-key-after-rotation"),
    pytest.param(7, None, str(NOW + 60), _sig(key=K3), [K2, K1], Check.INVALID,
                 id="unknown-key"),
    pytest.param(7, None, str(NOW + 60), _sig()[:-1] + ("A" if _sig()[-1] != "A" else "B"),
                 [K1], Check.INVALID, id="sig-last-char"),
    pytest.param(7, None, str(NOW + 60), _sig()[:-1], [K1], Check.INVALID, id="sig-short"),
    pytest.param(7, None, str(NOW + 60), _sig() + "A", [K1], Check.INVALID, id="sig-long"),
    pytest.param(7, None, str(NOW + 60), "é" * 43, [K1], Check.INVALID, id="sig-non-ascii"),
    pytest.param(7, None, str(NOW + 60), "x" * 100_000, [K1], Check.INVALID, id="sig-huge"),
    pytest.param(7, None, str(NOW + 60), None, [K1], Check.INVALID, id="sig-missing"),
    pytest.param(7, None, None, _sig(), [K1], Check.INVALID, id="exp-missing"),
    pytest.param(7, None, "soon", _sig(), [K1], Check.INVALID, id="exp-not-digits"),
    pytest.param(7, None, "9" * 40, _sig(), [K1], Check.INVALID, id="exp-huge"),
    pytest.param(7, None, "١٢٣", _sig(), [K1], Check.INVALID, id="exp-arabic-digits"),
    pytest.param(7, "../x", str(NOW + 60), _sig(), [K1], Check.INVALID, id="variant-odd"),
])
def test_verify_media(media_id, variant, exp, sig, keys, expected):
    assert verify_media(keys, media_id, variant, exp, sig, NOW) is expected


def test_verify_media_remembers_signatures_not_verdicts():
    # The same URL again answers from the remembered HMAC, but its expiry still follows
    # the clock, and a key dropped from the rotation no longer signs it.
    sig, exp = _sig(exp=NOW + 60), str(NOW + 60)
    assert verify_media([K1], 7, None, exp, sig, NOW) is Check.OK
    assert verify_media([K1], 7, None, exp, sig, NOW) is Check.OK
    assert verify_media([K1], 7, None, exp, sig, NOW + 61) is Check.EXPIRED
    assert verify_media([K2], 7, None, exp, sig, NOW) is Check.INVALID
    assert verify_media([K1], 8, None, exp, sig, NOW) is Check.INVALID


@pytest.mark.parametrize("now,ttl,expected", [
    (0, 100, 100),
    (1, 100, 110),          # window = 10 s: rounded up
    (9, 100, 110),
    (10, 100, 110),
    (11, 100, 120),
    (NOW, 86400, NOW + 86400 - (NOW + 86400) % 8640 + 8640 * bool((NOW + 86400) % 8640)),
    (5, 9, 14),             # ttl under 10: a window of 1 s
])
def test_expiry_is_rounded_up_to_a_tenth_of_the_ttl(now, ttl, expected):
    exp = expiry(now, ttl)
    assert exp == expected
    assert now + ttl <= exp <= now + ttl + max(1, ttl // 10)


def test_urls_made_in_one_window_are_identical_and_verify():
    clock = [NOW]
    signer = UrlSigner([K1], 86400, clock=lambda: clock[0])
    first = signer.media_url(42)
    clock[0] += 60
    assert signer.media_url(42) == first
    path, query = first.split("?")
    assert path == "/api/media/serve/42"
    params = dict(p.split("=") for p in query.split("&"))
    assert signer.verify(42, None, params["exp"], params["sig"]) is Check.OK
    clock[0] = int(params["exp"])
    assert signer.verify(42, None, params["exp"], params["sig"]) is Check.EXPIRED


def test_variant_urls_carry_the_variant_and_public_urls_no_signature():
    signer = UrlSigner([K1], 100, clock=lambda: NOW)
    assert signer.media_url(3, "preview").startswith("/api/media/serve/3?variant=preview&exp=")
    public = UrlSigner([K1], 100, public=True)
    assert public.media_url(3) == "/api/media/serve/3"
    assert public.media_url(3, "m4a") == "/api/media/serve/3?variant=m4a"
    assert media_query(K1, 3, None, 5) == f"exp=5&sig={sign_media(K1, 3, '', 5)}"


def test_a_signer_needs_a_key():
    with pytest.raises(ValueError):
        UrlSigner([], 100)


# -- upload tokens -----------------------------------------------------------------------

TOKEN = make_upload_token(K1, 5, 1000, NOW + 60)


def _swap(token: str, index: int, value: str) -> str:
    head, rest = token[:4], token[4:].split(".")
    rest[index] = value
    return head + ".".join(rest)


@pytest.mark.parametrize("token,keys,expected", [
    pytest.param(TOKEN, [K1], UploadGrant(5, 1000, NOW + 60), id="valid"),
    pytest.param(TOKEN, [K2, K1], UploadGrant(5, 1000, NOW + 60), id="after-rotation"),
    pytest.param(make_upload_token(K1, 5, 1000, NOW), [K1], Check.EXPIRED, id="expired"),
    pytest.param(TOKEN, [K3], Check.INVALID, id="unknown-key"),
    pytest.param(_swap(TOKEN, 0, "6"), [K1], Check.INVALID, id="message-changed"),
    pytest.param(_swap(TOKEN, 1, "99999"), [K1], Check.INVALID, id="max-bytes-changed"),
    pytest.param(_swap(TOKEN, 2, str(NOW + 9999)), [K1], Check.INVALID, id="exp-changed"),
    pytest.param(_swap(TOKEN, 3, "A" * 43), [K1], Check.INVALID, id="mac-changed"),
    pytest.param(_swap(TOKEN, 0, "05"), [K1], Check.INVALID, id="leading-zero"),
    pytest.param(TOKEN + ".x", [K1], Check.INVALID, id="extra-field"),
    pytest.param("mut.", [K1], Check.INVALID, id="empty"),
    pytest.param("mut." + "9" * 200, [K1], Check.INVALID, id="huge"),
    pytest.param("mut.5.1000.é.x", [K1], Check.INVALID, id="non-ascii"),
    pytest.param(f"mut.7.1.{NOW + 60}.{sign_media(K1, 7, '1', NOW + 60)}", [K1],
                 Check.INVALID, id="a-url-signature-is-no-token"),
])
def test_verify_upload_token(token, keys, expected):
    assert verify_upload_token(keys, token, NOW) == expected


# -- credentials ----------------------------------------------------------------------------

@pytest.mark.parametrize("header,expected", [
    (None, None),
    ("Bearer abc", "abc"),
    ("bearer abc", "abc"),
    ("BEARER   abc  ", "abc"),
    ("Basic dXNlcjpwYXNz", MALFORMED),
    ("Bearer", MALFORMED),
    ("Bearer ", MALFORMED),
    ("Bearer a b", MALFORMED),
    ("Bearer ключ", MALFORMED),
    ("Bearer abc\x00", MALFORMED),
    ("Bearer " + "a" * 10_000, MALFORMED),
    ("abc", MALFORMED),
])
def test_bearer(header, expected):
    assert bearer(header) == expected


@pytest.mark.parametrize("value,expected", [
    (None, None), ("mut.1.2.3.x", "mut.1.2.3.x"), ("", MALFORMED), ("é", MALFORMED),
    ("a b", MALFORMED), ("a" * 1000, MALFORMED),
])
def test_query_credential(value, expected):
    assert query_credential(value) == expected


def test_new_keys_are_key_shaped_and_distinct():
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(is_key_shaped(k) and len(k) == 47 for k in keys)
    assert not is_key_shaped("msk_" + "a" * 42)
    assert not is_key_shaped("msk_" + "é" * 43)


@pytest.mark.parametrize("held,needed,ok", [
    ("read", "read", True), ("read", "write", False), ("read", "admin", False),
    ("write", "read", True), ("write", "write", True), ("write", "admin", False),
    ("admin", "read", True), ("admin", "write", True), ("admin", "admin", True),
    ("admin", "something-new", False), ("bogus", "read", False),
])
def test_scopes(held, needed, ok):
    assert covers(held, needed) is ok


# -- X-Forwarded-For ----------------------------------------------------------------------

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)
PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize("peer,xff,trusted,expected", [
    pytest.param("203.0.113.9", None, (), "203.0.113.9", id="peer"),
    pytest.param("203.0.113.9", "1.2.3.4", (), "203.0.113.9", id="untrusted-peer-ignored"),
    pytest.param("203.0.113.9", "1.2.3.4", PROXIES, "203.0.113.9",
                 id="peer-not-in-trusted-ignored"),
    pytest.param("10.0.0.2", "1.2.3.4", PROXIES, "1.2.3.4", id="trusted-proxy"),
    pytest.param("10.0.0.2", "6.6.6.6, 1.2.3.4", PROXIES, "1.2.3.4",
                 id="client-spoof-left-ignored"),
    pytest.param("10.0.0.2", "1.2.3.4, 10.0.0.7", PROXIES, "1.2.3.4", id="two-proxies"),
    pytest.param("10.0.0.2", "10.0.0.5, 10.0.0.7", PROXIES, "10.0.0.5",
                 id="all-trusted-leftmost"),
    pytest.param("10.0.0.2", "garbage, 1.2.3.4", PROXIES, "1.2.3.4", id="garbage-left"),
    pytest.param("10.0.0.2", "1.2.3.4, garbage", PROXIES, "10.0.0.2",
                 id="garbage-right-stops"),
    pytest.param("10.0.0.2", "", PROXIES, "10.0.0.2", id="empty-header"),
    pytest.param("10.0.0.2", "2001:db8::1", PROXIES, "2001:db8::1", id="ipv6-client"),
    pytest.param("10.0.0.2", "[2001:db8::1]", PROXIES, "2001:db8::1", id="bracketed"),
    pytest.param("fd00::1", "1.2.3.4", PROXIES, "1.2.3.4", id="ipv6-proxy"),
    pytest.param("::ffff:10.0.0.2", "1.2.3.4", PROXIES, "1.2.3.4", id="v4-mapped-peer"),
    pytest.param("127.0.0.1", "1.2.3.4", LOCAL, "1.2.3.4", id="nginx-same-host"),
    pytest.param("10.0.0.2", "1.2.3.4," * 2000, PROXIES, "10.0.0.2", id="huge-header"),
    pytest.param(None, "1.2.3.4", PROXIES, None, id="unix-socket"),
    pytest.param("", "1.2.3.4", PROXIES, None, id="no-peer"),
])
def test_client_address(peer, xff, trusted, expected):
    assert client_address(peer, xff, trusted) == expected


# -- CORS ---------------------------------------------------------------------------------

ORIGINS = ("https://chat.example.com", "http://localhost:3000")


@pytest.mark.parametrize("origin,allowed,expected", [
    ("https://chat.example.com", ORIGINS, "https://chat.example.com"),
    ("https://evil.example.com", ORIGINS, None),
    ("https://chat.example.com.evil.com", ORIGINS, None),
    ("null", ORIGINS, None),
    (None, ORIGINS, None),
    ("https://chat.example.com", (), None),
    ("https://any.example", ("*",), "*"),
])
def test_allowed_origin(origin, allowed, expected):
    assert allowed_origin(origin, allowed) == expected


def test_preflight_decisions():
    methods = {"GET", "HEAD"}
    ok = preflight_headers("https://chat.example.com", "GET", ORIGINS, methods)
    assert ok["Access-Control-Allow-Origin"] == "https://chat.example.com"
    assert ok["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert "Range" in ok["Access-Control-Allow-Headers"]
    assert "Authorization" in ok["Access-Control-Allow-Headers"]
    assert ok["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in ok
    assert preflight_headers("https://chat.example.com", "DELETE", ORIGINS, methods) is None
    assert preflight_headers("https://evil.example.com", "GET", ORIGINS, methods) is None
    assert preflight_headers("https://chat.example.com", None, ORIGINS, methods) is None
    assert "Vary" not in preflight_headers("https://x.example", "get", ("*",), methods)


# -- safe serving and caching ------------------------------------------------------------

@pytest.mark.parametrize("mime,inline", [
    ("image/jpeg", True), ("image/png", True), ("image/heic", True), ("video/mp4", True),
    ("audio/ogg", True), ("application/pdf", True), ("IMAGE/JPEG", True),
    ("image/svg+xml", False), ("text/html", False), ("text/html; charset=utf-8", False),
    ("application/xhtml+xml", False), ("text/xml", False), ("application/xml", False),
    ("text/javascript", False), ("application/javascript", False),
    ("application/zip", False), ("application/octet-stream", False),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", False),
    ("text/plain", False), ("garbage", False), ("", False),
])
def test_inline_only_for_what_cannot_run(mime, inline):
    assert inline_allowed(mime) is inline
    headers = safety_headers(mime, "f.bin")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith("inline;" if inline else "attachment;")
    assert headers.get("Content-Security-Policy") == (None if inline else "sandbox")


@pytest.mark.parametrize("kind,expires,expected", [
    ("public", None, PUBLIC_CACHE),
    ("public", NOW + 50, PUBLIC_CACHE),
    ("signed-url", NOW + 50, "private, max-age=50"),
    ("signed-url", NOW - 5, "private, max-age=0"),
    ("key", None, "private, max-age=86400"),
])
def test_cache_control(kind, expires, expected):
    assert cache_control(kind, expires=expires, now=NOW, ttl=86400) == expected
