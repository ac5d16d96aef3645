"""Lossless metadata stripping, as pure functions on real files made by Pillow."""
import io

import pytest
from PIL import Image, PngImagePlugin

from server.errors import InvalidMedia
from server.processing import metadata
from tests.media import animated_gif, exif_photo


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
