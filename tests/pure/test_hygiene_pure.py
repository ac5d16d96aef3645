"""Storage hygiene's pure parts: sizes as operators write them, clamd's addresses and
answers, and upload tokens that carry the key that issued them."""
from __future__ import annotations

import pytest

from server.hygiene.clamd import ClamdUnavailable, Verdict, parse_address, parse_answer
from server.hygiene.sizes import BadSize, format_size, parse_count, parse_size
from server.security.signing import (
    Check,
    UploadGrant,
    make_upload_token,
    verify_upload_token,
)

KEY = b"k" * 32


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("1048576", 1048576), ("1K", 1024), ("50M", 50 * 1024**2),
    ("2G", 2 * 1024**3), ("1T", 1024**4), ("2g", 2 * 1024**3), ("50MB", 50 * 1024**2),
    ("50MiB", 50 * 1024**2), (" 3 K ", 3 * 1024), ("none", None), ("NONE", None),
])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.5G", "G", "12X", "1 0", "ten",
                                  "99999999999T"])
def test_not_sizes(text):
    with pytest.raises(BadSize):
        parse_size(text)


@pytest.mark.parametrize("text, value", [("0", 0), ("60", 60), ("none", None)])
def test_counts(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.5", "1K", "99999999999"])
def test_not_counts(text):
    with pytest.raises(BadSize):
        parse_count(text)


@pytest.mark.parametrize("value, text", [(None, "none"), (0, "0"), (1000, "1000"),
                                         (50 * 1024**2, "50M"), (1536, "1536"),
                                         (3 * 1024**3, "3G")])
def test_format_size(value, text):
    assert format_size(value) == text
    assert parse_size(text) == value


@pytest.mark.parametrize("text, shown", [
    ("unix:///run/clamav/clamd.ctl", "unix:///run/clamav/clamd.ctl"),
    ("tcp://127.0.0.1:3310", "tcp://127.0.0.1:3310"),
])
def test_clamd_addresses(text, shown):
    assert str(parse_address(text)) == shown


@pytest.mark.parametrize("text", ["", "clamd.ctl", "unix://relative", "tcp://127.0.0.1",
                                  "tcp://:3310", "http://127.0.0.1:3310",
                                  "tcp://127.0.0.1:99999"])
def test_bad_clamd_addresses(text):
    with pytest.raises(ValueError):
        parse_address(text)


@pytest.mark.parametrize("raw, verdict", [
    (b"stream: OK\0", Verdict(True)),
    (b"stream: Eicar-Test-Signature FOUND\0", Verdict(False, "Eicar-Test-Signature")),
    (b"stream: Media.Test.1.UNOFFICIAL FOUND\0", Verdict(False, "Media.Test.1.UNOFFICIAL")),
])
def test_clamd_answers(raw, verdict):
    assert parse_answer(raw) == verdict


@pytest.mark.parametrize("raw", [b"INSTREAM size limit exceeded. ERROR\0",
                                 b"stream: lstat() failed. ERROR\0", b"\0", b"garbage\0",
                                 b"stream: maybe\0"])
def test_clamd_errors(raw):
    with pytest.raises(ClamdUnavailable):
        parse_answer(raw)


def test_a_token_carries_its_issuer():
    token = make_upload_token(KEY, 7, 1000, 2000, key_id=42)
    assert verify_upload_token([KEY], token, 1000) == UploadGrant(7, 1000, 2000, 42)
    # Tokens made before quotas still work, and count against no key.
    old = make_upload_token(KEY, 7, 1000, 2000)
    assert verify_upload_token([KEY], old, 1000) == UploadGrant(7, 1000, 2000, None)


def test_the_issuer_cannot_be_changed_or_dropped():
    token = make_upload_token(KEY, 7, 1000, 2000, key_id=42)
    head, mac = token.rsplit(".", 1)
    assert verify_upload_token([KEY], head.replace(".42", ".43") + "." + mac,
                               1000) is Check.INVALID
    assert verify_upload_token([KEY], head.rsplit(".", 1)[0] + "." + mac,
                               1000) is Check.INVALID

