"""The one media-type table (server/http/media_types.py), read by intake (sniff) and
processing (identify) alike: first bytes -> type, filetype's names -> ours."""
from __future__ import annotations

import filetype
import pytest

from server.http.media_types import (
    CANONICAL,
    DEFAULT_ALLOWED,
    KNOWN,
    SIGNED,
    SNIFF_BYTES,
    TEXT,
    MediaKind,
    is_raw_upload_type,
    kind_of,
    signature,
    sniff,
)
from server.processing.detect import identify


def _riff(form: bytes) -> bytes:
    return b"RIFF" + (1000).to_bytes(4, "little") + form + b"\0" * 32


def _ftyp(brand: bytes) -> bytes:
    return (20).to_bytes(4, "big") + b"ftyp" + brand + b"\0\0\0\0" + brand + b"\0" * 32


# First bytes as each kind of file starts -> (mime type, media_type, extension).
SIGNATURES = [
    (b"\xff\xd8\xff\xe0\0\x10JFIF\0" + b"\0" * 32, "image/jpeg", "image", "jpg"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 32, "image/png", "image", "png"),
    (b"GIF89a\x01\0\x01\0" + b"\0" * 32, "image/gif", "image", "gif"),
    (_riff(b"WEBPVP8 "), "image/webp", "image", "webp"),
    (_ftyp(b"isom"), "video/mp4", "video", "mp4"),
    (_ftyp(b"qt  "), "video/quicktime", "video", "mov"),
    # A 3GP as FFmpeg and phones write it carries the isom brand: mp4 by signature.
    (b"\0\0\0\x1cftyp3gp4\0\0\x02\x003gp4isomiso2" + b"\0" * 32,
     "video/mp4", "video", "mp4"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\0" * 32,
     "video/webm", "video", "webm"),
    (b"OggS\0\x02" + b"\0" * 40, "audio/ogg", "audio", "ogg"),
    (b"ID3\x03\0\0\0\0\0\0" + b"\0" * 32, "audio/mpeg", "audio", "mp3"),
    (_ftyp(b"M4A "), "audio/mp4", "audio", "m4a"),
    (b"#!AMR\n" + b"\0" * 32, "audio/amr", "audio", "amr"),
    (_riff(b"WAVEfmt "), "audio/wav", "audio", "wav"),        # filetype: audio/x-wav
    (b"fLaC\0\0\0\x22" + b"\0" * 40, "audio/flac", "audio", "flac"),   # audio/x-flac
    (b"%PDF-1.7\n" + b"\0" * 32, "application/pdf", "document", "pdf"),
    (b"{\\rtf1\\ansi " + b"\0" * 32, "application/rtf", "document", "rtf"),
    (b"PK\x03\x04" + b"\0" * 60, "application/zip", "document", "zip"),
]


@pytest.mark.parametrize("head,mime,media_type,ext", SIGNATURES,
                         ids=[row[1] for row in SIGNATURES])
def test_signature_gives_the_tables_row(head, mime, media_type, ext):
    expected = MediaKind(mime, media_type, ext)
    assert sniff(head) == expected
    # processing reads the same table: the same bytes, the same answer
    assert identify(head, complete=False) == expected


# Signatures filetype knows that the service never stores: intake refuses them,
# processing names them (for the 415's message) without a media_type.
REFUSED = [
    (b"MZ\x90\0" + b"\0" * 60, "application/x-msdownload"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 60, "application/x-executable"),
    (b"\x1f\x8b\x08\0" + b"\0" * 60, "application/gzip"),
    (b"\0\0\x01\0\x01\0" + b"\0" * 60, "image/x-icon"),
]


@pytest.mark.parametrize("head,mime", REFUSED, ids=[row[1] for row in REFUSED])
def test_signature_outside_the_table_is_refused(head, mime):
    assert signature(head) == mime
    assert sniff(head) is None
    assert identify(head, complete=False) == MediaKind(mime, None, None)


# No signature: intake (signatures only) refuses; processing looks at the text.
NO_SIGNATURE = [
    (b"hello, world\n", "text/plain", "document", "txt"),
    (b"a,b,c\n1,2,3\n4,5,6\n", "text/csv", "document", "csv"),
    (b"<!doctype html><html><body>hi</body></html>", "text/html", None, None),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "image/svg+xml", None, None),
    (b"\x00\x01\x02\x03 binary", "application/octet-stream", None, None),
]


@pytest.mark.parametrize("head,mime,media_type,ext", NO_SIGNATURE,
                         ids=[row[1] for row in NO_SIGNATURE])
def test_without_signature_only_processing_decides(head, mime, media_type, ext):
    assert signature(head) is None
    assert sniff(head) is None
    assert identify(head, complete=True) == MediaKind(mime, media_type, ext)


def test_only_the_first_sniff_bytes_count():
    late_png = b"\0" * SNIFF_BYTES + b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
    assert signature(late_png) is None and sniff(late_png) is None
    assert identify(b"%PDF-1.7\n" + b"x" * (2 * SNIFF_BYTES), complete=True).mime_type \
        == "application/pdf"


# Names -> the table's row (filetype's own names are not ours where they differ).
NAMES = [
    ("image/jpeg", "image", "jpg"),
    ("image/tiff", "image", "tif"),
    ("video/x-matroska", "video", "mkv"),
    ("audio/ogg", "audio", "ogg"),
    ("audio/wav", "audio", "wav"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     "document", "docx"),
    ("text/plain", "document", "txt"),
    ("text/csv", "document", "csv"),
    ("audio/x-wav", None, None),
    ("text/html", None, None),
]


@pytest.mark.parametrize("mime,media_type,ext", NAMES, ids=[row[0] for row in NAMES])
def test_kind_of_a_name(mime, media_type, ext):
    assert kind_of(mime) == MediaKind(mime, media_type, ext)


def test_every_signed_row_is_one_filetype_can_find():
    ours = {CANONICAL.get(t.mime, t.mime) for t in filetype.types}
    assert set(SIGNED) <= ours
    # and filetype names no text type: text is processing's to find
    assert not ours & set(TEXT)


def test_known_is_the_signed_and_the_text_types_and_all_allowed_by_default():
    assert set(KNOWN) == set(SIGNED) | set(TEXT)
    assert DEFAULT_ALLOWED == frozenset(KNOWN)
    assert {media_type for media_type, _ in KNOWN.values()} == {
        "image", "video", "audio", "document"}


RAW = [
    ("image/jpeg", True), ("Video/MP4", True), ("audio/ogg; codecs=opus", True),
    ("application/octet-stream", True), ("application/pdf", True),
    ("application/vnd.ms-excel", True),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", True),
    ("multipart/form-data; boundary=x", False), ("application/json", False),
    ("text/plain", False), ("application/x-www-form-urlencoded", False),
]


@pytest.mark.parametrize("content_type,raw", RAW, ids=[row[0] for row in RAW])
def test_raw_upload_type(content_type, raw):
    assert is_raw_upload_type(content_type) is raw
