"""Lossless metadata stripping, as pure functions on real files made by Pillow (images)
and PyAV (video and audio containers, remuxed); and previews made without any."""
import io
import time

import av
import pytest
from PIL import Image, PngImagePlugin

from server.errors import InvalidMedia, MediaTooComplex
from server.processing import metadata, remux
from tests.media import (
    LOCATION,
    XMP_UUID,
    animated_gif,
    av_sample,
    exif_photo,
    packet_digests,
    with_cover_art,
    with_tags,
)


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_jpeg_loses_exif_gps_comment_and_trailer_keeps_pixels_and_profile(progressive):
    src = _open(exif_photo(64, 40))
    icc = b"\0" * 128 + b"fake-profile-but-kept"
    exif = src.getexif()
    buf = io.BytesIO()
    src.save(buf, "JPEG", exif=exif.tobytes(), comment=b"where I was", icc_profile=icc,
             progressive=progressive, quality=90)
    data = buf.getvalue() + b"\xff\xd8 a second picture with its own EXIF \xff\xd9"
    out = metadata.strip_jpeg(data, orientation=6)
    im = _open(out)
    assert im.tobytes() == _open(data).tobytes()
    assert im.getexif()[0x0112] == 6 and len(im.getexif()) == 1
    assert "comment" not in im.info and im.info.get("icc_profile") == icc
    assert not out.endswith(b"\xff\xd9 a second picture with its own EXIF \xff\xd9")
    assert out.endswith(b"\xff\xd9") and len(out) < len(data)


def test_jpeg_orientation_1_leaves_no_exif_at_all():
    out = metadata.strip_jpeg(exif_photo(), orientation=1)
    assert b"Exif\0\0" not in out


@pytest.mark.parametrize("bad", [b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\xff\xff",
                                 exif_photo()[:400], b"GIF89a"])
def test_jpeg_structure_errors_are_invalid_media(bad):
    with pytest.raises(InvalidMedia):
        metadata.strip_jpeg(bad)


def test_png_text_chunks_go_profile_and_pixels_stay():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>")
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(buf, "PNG", pnginfo=info,
                                                 icc_profile=b"\0" * 200)
    out = metadata.strip_png(buf.getvalue() + b"trailing junk")
    im = _open(out)
    assert im.text == {} and "icc_profile" in im.info
    assert im.tobytes() == _open(buf.getvalue()).tobytes()
    with pytest.raises(InvalidMedia):
        metadata.strip_png(buf.getvalue()[:40])


def test_webp_exif_and_xmp_go():
    src = _open(exif_photo(40, 30))
    buf = io.BytesIO()
    src.save(buf, "WEBP", exif=src.getexif().tobytes(), xmp=b"<x:xmpmeta/>", quality=80)
    out = metadata.strip_webp(buf.getvalue())
    im = _open(out)
    assert "exif" not in im.info and "xmp" not in im.info
    assert im.size == (40, 30)


def test_gif_frames_counted_and_comment_dropped():
    data = animated_gif(5)
    frames, out = metadata.walk_gif(data, strip=True)
    assert frames == 5
    im = Image.open(io.BytesIO(out))
    assert im.n_frames == 5 and "comment" not in im.info
    assert b"NETSCAPE2.0" in out            # the loop count stays
    with pytest.raises(InvalidMedia):
        metadata.walk_gif(data[:30])


# -- video and audio containers (remux.strip_container) ------------------------------

CONTAINERS = [   # (muxer the test writes with, mime, codecs, tag options)
    ("mp4", "video/mp4", dict(video="libx264", audio="aac"), dict(keys=True, xmp=True)),
    ("mov", "video/quicktime", dict(video="libx264", audio="aac"), dict(xmp=True)),
    ("3gp", "video/3gpp", dict(video="libx264", audio="aac"), {}),
    ("webm", "video/webm", dict(video="libvpx", audio="libopus"), {}),
    ("matroska", "video/x-matroska", dict(video="libx264", audio="aac"), {}),
    ("ipod", "audio/mp4", dict(audio="aac"), dict(keys=True)),
    ("ogg", "audio/ogg", dict(audio="libopus"), {}),
    ("mp3", "audio/mpeg", dict(audio="libmp3lame"), {}),
    ("flac", "audio/flac", dict(audio="flac"), {}),
    ("wav", "audio/wav", dict(audio="pcm_s16le"), {}),
]


def _tags(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as c:
        found = dict(c.metadata)
        for s in c.streams:
            found.update({f"{s.index}:{k}": v for k, v in s.metadata.items()})
    return found


def _private(tags: dict) -> dict:
    """Tags someone wrote (not those every muxer writes: handler_name, and Matroska's
    muxing application, bare "Lavf" when bit-exact)."""
    return {k: v for k, v in tags.items() if v != "Lavf" and (
            any(w in k.lower() for w in ("location", "comment", "title", "encoder",
                                             "xyz", "creation")) or k.endswith(":name")
            or "secret" in v or "40.7128" in v)}


def _strip(tmp_path, data: bytes, mime: str) -> bytes:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.write_bytes(data)
    remux.strip_container(str(src), str(dst), mime, time.monotonic() + 60)
    return dst.read_bytes()


@pytest.mark.parametrize("fmt,mime,codecs,tagging", CONTAINERS,
                         ids=[c[0] for c in CONTAINERS])
def test_container_loses_its_tags_keeps_every_packet(tmp_path, fmt, mime, codecs, tagging):
    sample = av_sample("mp4" if fmt in ("3gp", "matroska", "mov") else fmt,
                       seconds=1.5, **codecs)
    sent = with_tags(sample, fmt, **tagging)
    assert _private(_tags(sent))                     # there was something to remove
    out = _strip(tmp_path, sent, mime)
    assert _private(_tags(out)) == {}
    for secret in (b"secret", LOCATION.encode(), XMP_UUID, b"mdta", b"\xa9xyz"):
        assert secret not in out
    # Not re-encoded: the same coded packets, at the same times.
    assert packet_digests(out) == packet_digests(sent)
    with av.open(io.BytesIO(sent)) as a, av.open(io.BytesIO(out)) as b:
        assert b.format.name == a.format.name
        assert abs(b.duration - a.duration) <= 0.05 * av.time_base


def test_rotation_survives_and_the_index_comes_first(tmp_path):
    sent = with_tags(av_sample("mp4", video="libx264", audio="aac", rotation=90), "mp4",
                     keys=True)
    out = _strip(tmp_path, sent, "video/mp4")
    assert sent.index(b"moov") > sent.index(b"mdat")    # as encoders write it
    assert out.index(b"moov") < out.index(b"mdat")      # faststart
    with av.open(io.BytesIO(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (64, 48, 90)
        assert c.streams.video[0].frames == 20


def test_iphone_hevc_keeps_its_hvc1_sample_entry(tmp_path):
    # Remuxed as FFmpeg's default hev1, Safari and QuickTime would not play it.
    sent = with_tags(av_sample("mp4", video="libx265", rotation=90), "mov",
                     video_tag="hvc1")
    out = _strip(tmp_path, sent, "video/quicktime")
    assert _private(_tags(out)) == {}
    assert b"hvc1" in out and b"hev1" not in out
    with av.open(io.BytesIO(out)) as c:
        assert c.streams.video[0].codec_context.codec_tag == "hvc1"
        assert next(c.decode(video=0)).rotation == 90
    assert packet_digests(out) == packet_digests(sent)


def test_cover_art_and_data_tracks_are_left_behind(tmp_path):
    sent = with_cover_art(av_sample("mp3", audio="libmp3lame"))
    out = _strip(tmp_path, sent, "audio/mpeg")
    with av.open(io.BytesIO(out)) as c:
        assert [s.type for s in c.streams] == ["audio"]
    assert packet_digests(out) == [p for p in packet_digests(sent) if p[0] == "audio"]


@pytest.mark.parametrize("bad", [b"", b"\x00\x00\x00\x18ftypmp42" + b"\0" * 100],
                         ids=["empty", "no-streams"])
def test_unreadable_container_is_invalid_media(tmp_path, bad):
    with pytest.raises(InvalidMedia):
        _strip(tmp_path, bad, "video/mp4")


def test_past_the_deadline_is_too_complex(tmp_path):
    src = tmp_path / "in"
    src.write_bytes(av_sample("mp4", video="libx264"))
    with pytest.raises(MediaTooComplex):
        remux.strip_container(str(src), str(tmp_path / "out"), "video/mp4",
                              time.monotonic() - 1)


# -- previews --------------------------------------------------------------------------

@pytest.mark.parametrize("make,name,secret", [
    (lambda: exif_photo(120, 80), "p.jpg", b"secret comment"),
    (lambda: animated_gif(3), "a.gif", b"made by a test"),
], ids=["jpeg-comment", "gif-comment"])
async def test_previews_carry_no_comment(processing_client, message_id, make, name, secret):
    from tests.http.test_processing_images import created, fetch, post
    sent = make()
    assert secret in sent
    body = await created(await post(processing_client, message_id, sent, name=name))
    data = await fetch(processing_client, body["variants"]["preview"]["url"])
    im = Image.open(io.BytesIO(data))
    assert not {"comment", "exif", "xmp"} & set(im.info)
    assert secret not in data and b"Exif" not in data
