"""Type detection and the per-upload options, as pure functions (no server)."""
import pytest

from server.errors import BadRequest
from server.processing.detect import decode_text, identify, looks_like_csv, markup_type
from server.processing.policy import Options, Policy, image_plan, options_from
from server.settings import Settings, replace_settings
from tests.media import (
    animated_gif,
    av_sample,
    exif_photo,
    heic_bytes,
    jpeg_bytes,
    photo_bytes,
    png_bytes,
)


@pytest.mark.parametrize("make,mime,media_type", [
    (jpeg_bytes, "image/jpeg", "image"),
    (png_bytes, "image/png", "image"),
    (animated_gif, "image/gif", "image"),
    (lambda: photo_bytes(40, 30, fmt="WEBP"), "image/webp", "image"),
    (heic_bytes, "image/heic", "image"),
    (lambda: photo_bytes(40, 30, fmt="BMP"), "image/bmp", "image"),
    (lambda: photo_bytes(40, 30, fmt="TIFF"), "image/tiff", "image"),
    (lambda: av_sample("mp4", video="libx264"), "video/mp4", "video"),
    (lambda: av_sample("webm", video="libvpx"), "video/webm", "video"),
    (lambda: av_sample("ogg", audio="libopus"), "audio/ogg", "audio"),
    (lambda: av_sample("mp3", audio="libmp3lame"), "audio/mpeg", "audio"),
    (lambda: av_sample("ipod", audio="aac"), "audio/mp4", "audio"),
    (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "application/pdf",
     "document"),
    (lambda: "olá, mundo\nsegunda linha\n".encode(), "text/plain", "document"),
    (lambda: b"name,qty,price\napple,3,1.20\npear,5,0.90\n", "text/csv", "document"),
    (lambda: b"a;b;c\n1;2;3\n4;5;6\n", "text/csv", "document"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_every_allowed_type_is_detected(make, mime, media_type):
    found = identify(make()[:8192], complete=True)
    assert (found.mime_type, found.media_type) == (mime, media_type)


@pytest.mark.parametrize("data,mime", [
    (b"<!DOCTYPE html><html><body>hi</body></html>", "text/html"),
    (b"\xef\xbb\xbf  <html lang=pt>", "text/html"),
    (b'<?xml version="1.0"?>\n<!-- x -->\n<svg xmlns="http://www.w3.org/2000/svg">'
     b"<script>alert(1)</script></svg>", "image/svg+xml"),
    (b'<?xml version="1.0"?><root/>', "application/xml"),
    (b"<p>just a paragraph</p>", "text/html"),
    (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 64 + b"PE\0\0",
     "application/x-msdownload"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
    (b"\xff\xfe\xfd", "application/octet-stream"),
], ids=["html", "html-bom", "svg-script", "xml", "fragment", "exe", "nul", "not-utf8"])
def test_refused_types_are_named(data, mime):
    found = identify(data, complete=True)
    assert found.mime_type == mime and found.media_type is None


@pytest.mark.parametrize("data,complete,expected", [
    (b"plain", True, "plain"),
    ("açã".encode()[:-1], False, "aç"),        # cut inside a character: fine mid-stream
    ("açã".encode()[:-1], True, None),          # ... but not at the end of the file
    (b"tab\there\r\n", True, "tab\there\r\n"),
    (b"nul\x00", True, None),
    (b"bell\x07", True, None),
    (b"\xef\xbb\xbfbom", True, "bom"),
])
def test_decode_text(data, complete, expected):
    got = decode_text(data, complete=complete)
    assert (got if expected is None or got is None else got.startswith(expected[:2])) == \
        (expected if expected is None else True)


@pytest.mark.parametrize("text,complete,expected", [
    ("a,b\n1,2\n", True, True),
    ("a\tb\tc\n1\t2\t3\n", True, True),
    ("one line, with a comma\n", True, False),
    ("Hello, world.\nHow are you, friend? Fine.\n", True, False),
    ("a,b\n1,2\n3,4,5,6\n", True, False),
    ("a,b\n1,2\n3,", False, True),              # the cut last line is not judged
])
def test_looks_like_csv(text, complete, expected):
    assert looks_like_csv(text, complete=complete) is expected


def test_markup_only_when_it_starts_like_markup():
    assert markup_type(b"price < 3 and <html> later") is None


@pytest.mark.parametrize("params,expected", [
    ({}, Options()),
    ({"compress": "false"}, Options(compress=False)),
    ({"compress": "1", "quality": "60"}, Options(compress=True, quality=60)),
    ({"quality": "100"}, Options(quality=100)),
])
def test_options_from_params(params, expected):
    assert options_from(params) == expected


@pytest.mark.parametrize("name,value", [("compress", "maybe"), ("quality", "0"),
                                        ("quality", "101"), ("quality", "8x"),
                                        ("quality", "１２")])
def test_bad_options_are_400(name, value):
    with pytest.raises(BadRequest):
        Options().with_field(name, value)


@pytest.mark.parametrize("server_on,opts,compress,quality", [
    (True, Options(), True, 82),
    (True, Options(compress=False), False, 82),
    (False, Options(), False, 82),
    (False, Options(quality=50), True, 50),          # asking for a quality asks to compress
    (True, Options(compress=False, quality=50), False, 50),
])
def test_image_plan(server_on, opts, compress, quality):
    settings = replace_settings(Settings(), processing__image_compress=server_on)
    plan = image_plan(Policy.from_settings(settings), opts)
    assert (plan.compress, plan.quality) == (compress, quality)


def test_per_type_limits_never_exceed_the_overall_limit():
    policy = Policy.from_settings(replace_settings(
        Settings(), uploads__max_bytes=1000, processing__max_image_bytes=500,
        processing__max_video_bytes=10**9))
    assert policy.max_bytes["image"] == 500 and policy.max_bytes["video"] == 1000


def test_exif_photo_sample_has_what_it_claims():
    from PIL import Image
    import io
    with Image.open(io.BytesIO(exif_photo())) as im:
        exif = im.getexif()
        assert exif[0x0112] == 6 and exif.get_ifd(0x8825)
