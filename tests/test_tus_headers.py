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
