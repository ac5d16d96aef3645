"""tus header parsing, table by table (server/tus/headers.py)."""
import base64

import pytest

from server.tus import headers as h


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize("text,expected", [
    (None, None), ("0", 0), ("42", 42), (" 7 ", 7), (str(2**53), 2**53),
])
def test_number_ok(text, expected):
    assert h.parse_number("Upload-Offset", text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.5", "abc", "+3", "1e3", str(2**53 + 1),
                                  "9" * 40, "0x10", "١٢"])
def test_number_bad(text):
    with pytest.raises(h.TusHeaderError):
        h.parse_number("Upload-Offset", text)


@pytest.mark.parametrize("text,expected", [(None, False), ("1", True), (" 1 ", True)])
def test_defer_ok(text, expected):
    assert h.parse_defer_length(text) is expected


@pytest.mark.parametrize("text", ["0", "", "yes", "2"])
def test_defer_bad(text):
    with pytest.raises(h.TusHeaderError):
        h.parse_defer_length(text)


@pytest.mark.parametrize("text,expected", [
    (None, {}), ("", {}), ("   ", {}),
    (f"message_id {b64('12')}", {"message_id": "12"}),
    (f"message_id {b64('12')},filename {b64('a b.jpg')}",
     {"message_id": "12", "filename": "a b.jpg"}),
    (f" message_id {b64('1')} , flag", {"message_id": "1", "flag": ""}),
    (f"filename {b64('été.png')}", {"filename": "été.png"}),
    (f"message_id {b64('1')},", {"message_id": "1"}),
])
def test_metadata_ok(text, expected):
    assert h.parse_metadata(text) == expected


@pytest.mark.parametrize("text", [
    "message_id !!notbase64", "message_id YWJ", f"a {b64('1')},a {b64('2')}",
    "a b c", "bad/key YQ==", ",".join(f"k{i} YQ==" for i in range(h.MAX_METADATA_PAIRS + 1)),
    "k " + "A" * (h.MAX_METADATA_HEADER + 4),
])
def test_metadata_bad(text):
    with pytest.raises(h.TusHeaderError):
        h.parse_metadata(text)


def test_metadata_round_trip():
    meta = {"message_id": "5", "filename": "x y.mp4", "empty": ""}
    assert h.parse_metadata(h.encode_metadata(meta)) == meta


SHA1 = base64.b64encode(bytes(20)).decode()
SHA256 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize("text,expected", [
    (None, None), (f"sha1 {SHA1}", ("sha1", bytes(20))),
    (f"SHA256 {SHA256}", ("sha256", bytes(32))),
])
def test_checksum_ok(text, expected):
    assert h.parse_checksum(text) == expected


@pytest.mark.parametrize("text", ["", "sha1", f"md5 {SHA1}", f"sha1 {SHA256}",
                                  "sha1 not-base64!", f"sha1 {SHA1} extra"])
def test_checksum_bad(text):
    with pytest.raises(h.TusHeaderError):
        h.parse_checksum(text)


@pytest.mark.parametrize("method,override,expected", [
    ("POST", None, "POST"), ("POST", "PATCH", "PATCH"), ("POST", "delete", "DELETE"),
    ("POST", "HEAD", "HEAD"), ("PATCH", "DELETE", "PATCH"), ("POST", "", "POST"),
])
def test_method_override(method, override, expected):
    assert h.method_of(method, override) == expected


def test_method_override_bad():
    with pytest.raises(h.TusHeaderError):
        h.method_of("POST", "GET")


@pytest.mark.parametrize("scheme,host,proto,fwd_host,expected", [
    ("http", "127.0.0.1:8080", None, None, "http://127.0.0.1:8080"),
    # a trusted proxy's values (the caller passes None for an untrusted peer)
    ("http", "10.0.0.5:8080", "https", "media.example.com", "https://media.example.com"),
    ("http", "media.example.com", "HTTPS", None, "https://media.example.com"),
    ("http", "a:1", "https, http", "m.example:8443, inner:80", "https://m.example:8443"),
    ("http", "a:1", None, "[::1]:8443", "http://[::1]:8443"),
    # garbage is ignored, never copied into the URL the client follows
    ("http", "a:1", "javascript", "evil.example/x?y", "http://a:1"),
    ("http", "a:1", "ftp", "", "http://a:1"),
    ("http", "a:1", "https", "host name", "https://a:1"),
    ("http", "a:1", "", "user@evil.example", "http://a:1"),
])
def test_origin(scheme, host, proto, fwd_host, expected):
    assert h.origin(scheme, host, proto, fwd_host) == expected


@pytest.mark.parametrize("text,expected", [
    ("send_to NTUxMTk5OTk5OTk5OQ==,caption b2zDoQ==",
     {"send_to": "5511999999999", "caption": "olá"}),
    ("compress MA==,quality ODA=", {"compress": "0", "quality": "80"}),
    ("message_id MQ==, is_flagged", {"message_id": "1", "is_flagged": ""}),
])
def test_metadata_carries_the_plain_upload_fields(text, expected):
    assert h.parse_metadata(text) == expected


@pytest.mark.parametrize("text", [
    "k " + "QUFB" * 3000,                       # over the header bound
    "message_id MQ==,message_id MQ==",          # duplicate
    ",".join(f"k{i}" for i in range(33)),       # more pairs than allowed
    "message_id MQ= =",                         # three parts
    "mess\u00e9ge MQ==",                         # a key outside the token characters
    "caption b2zD",                              # base64 of invalid UTF-8 is fine...
])
def test_metadata_limits(text):
    if text.startswith("caption"):
        assert h.parse_metadata(text) == {"caption": "ol\ufffd"}   # ...replaced, not 500
        return
    with pytest.raises(h.TusHeaderError):
        h.parse_metadata(text)
