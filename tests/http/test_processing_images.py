"""Images through a real server with the processing defaults: dimensions as displayed,
compression, privacy, HEIC, animations, previews, and what is refused."""
import hashlib
import io

import aiohttp
import pytest
from PIL import Image

from tests.media import (
    animated_gif,
    exif_photo,
    heic_bytes,
    photo_bytes,
    png_bomb,
)

URL = "/api/media/upload-production"


async def post(client, message_id, data, name="photo.jpg", query="", fields=()):
    fd = aiohttp.FormData(default_to_multipart=True)
    fd.add_field("message_id", str(message_id))
    fd.add_field("file", data, filename=name, content_type="application/octet-stream")
    for k, v in fields:
        fd.add_field(k, v)
    return await client.post(URL + query, data=fd)


async def created(resp) -> dict:
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def fetch(client, url) -> bytes:
    resp = await client.get(url)
    assert resp.status == 200
    return await resp.read()


async def count(pool, table):
    async with pool.acquire() as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")   # our own table names


async def assert_refused(resp, pool, status, code, *words):
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"] == code
    for w in words:
        assert w in body["message"]
    for table in ("media_files", "content_chunks", "media_variants", "media_contents"):
        assert await count(pool, table) == 0


def _image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _no_private_metadata(im: Image.Image) -> None:
    exif = im.getexif()
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)      # no GPS
    assert 0x010F not in exif                                   # no camera make
    assert "comment" not in im.info and "xmp" not in im.info


async def test_exif_orientation_6_comes_back_upright_without_gps(processing_client,
                                                                  message_id):
    sent = exif_photo(120, 80, orientation=6)
    body = await created(await post(processing_client, message_id, sent))
    assert body["dimensions"] == {"width": 80, "height": 120}
    assert body["is_compressed"] is True and body["compression_quality"] == 82
    stored = await fetch(processing_client, body["url"])
    assert body["sha256"] == hashlib.sha256(stored).hexdigest() != hashlib.sha256(sent).hexdigest()
    assert body["file_size"] == len(stored) < len(sent)
    im = _image(stored)
    assert im.size == (80, 120)
    assert im.getexif().get(0x0112, 1) == 1
    _no_private_metadata(im)
    # The red left half of the sideways photo is now on top, blue at the bottom.
    r, g, b = im.convert("RGB").getpixel((40, 10))
    assert r > b + 60
    r, g, b = im.convert("RGB").getpixel((40, 110))
    assert b > r + 60


@pytest.mark.parametrize("how", ["query", "form-field-after-file"])
async def test_compress_false_keeps_pixels_but_not_location(processing_client, message_id,
                                                            how):
    sent = exif_photo(120, 80, orientation=6)
    if how == "query":
        resp = await post(processing_client, message_id, sent, query="?compress=false")
    else:
        resp = await post(processing_client, message_id, sent, fields=[("compress", "false")])
    body = await created(resp)
    assert body["is_compressed"] is False and body["compression_quality"] is None
    assert body["dimensions"] == {"width": 80, "height": 120}
    stored = await fetch(processing_client, body["url"])
    assert stored != sent and body["sha256"] == hashlib.sha256(stored).hexdigest()
    im = _image(stored)
    _no_private_metadata(im)
    assert im.getexif()[0x0112] == 6            # orientation kept: still shown upright
    assert im.tobytes() == _image(sent).tobytes()   # not re-encoded: the same pixels


async def test_keep_metadata_and_no_compression_stores_the_bytes_as_sent(
        processing_client_with, message_id):
    client = await processing_client_with(processing__image_compress=False,
                                          processing__keep_image_metadata=True)
    sent = exif_photo()
    body = await created(await post(client, message_id, sent))
    assert await fetch(client, body["url"]) == sent
    assert body["dimensions"] == {"width": 80, "height": 120}


async def test_quality_per_upload(processing_client, message_id):
    body = await created(await post(processing_client, message_id,
                                    photo_bytes(400, 300, quality=98), query="?quality=40"))
    assert body["is_compressed"] is True and body["compression_quality"] == 40


async def test_bad_quality_is_400_and_nothing_stored(processing_client, pool, message_id):
    resp = await post(processing_client, message_id, photo_bytes(40, 30), query="?quality=0")
    await assert_refused(resp, pool, 400, "bad_request", "quality")


async def test_longest_edge_capped(processing_client, message_id):
    body = await created(await post(processing_client, message_id,
                                    photo_bytes(3000, 1000, quality=90)))
    assert body["dimensions"] == {"width": 2560, "height": 853}
    assert _image(await fetch(processing_client, body["url"])).size == (2560, 853)


async def test_original_kept_when_reencoding_is_not_smaller(processing_client, message_id):
    sent = photo_bytes(300, 200, quality=30)
    body = await created(await post(processing_client, message_id, sent))
    assert body["is_compressed"] is False
    assert await fetch(processing_client, body["url"]) == sent   # nothing to strip in it


async def test_heic_becomes_jpeg(processing_client, message_id):
    body = await created(await post(processing_client, message_id, heic_bytes(96, 64),
                                    name="IMG_0001.HEIC"))
    assert body["mime_type"] == "image/jpeg" and body["file_name"].endswith(".jpg")
    assert body["original_name"] == "IMG_0001.jpg"
    assert body["dimensions"] == {"width": 96, "height": 64}
    im = _image(await fetch(processing_client, body["url"]))
    assert im.format == "JPEG" and im.size == (96, 64)


async def test_animated_gif_keeps_its_frames_but_not_its_comment(processing_client,
                                                                 message_id):
    body = await created(await post(processing_client, message_id, animated_gif(3),
                                    name="a.gif"))
    assert body["mime_type"] == "image/gif" and body["is_compressed"] is False
    im = Image.open(io.BytesIO(await fetch(processing_client, body["url"])))
    assert im.n_frames == 3 and "comment" not in im.info
    assert body["variants"]["preview"]["mime_type"] in ("image/jpeg", "image/webp")


async def test_png_with_alpha_stays_png(processing_client, message_id):
    body = await created(await post(processing_client, message_id,
                                    photo_bytes(200, 100, fmt="PNG", alpha=True), name="s.png"))
    assert body["mime_type"] == "image/png"
    assert _image(await fetch(processing_client, body["url"])).mode == "RGBA"


async def test_preview_variant(processing_client, pool, message_id, aiohttp_client):
    body = await created(await post(processing_client, message_id,
                                    exif_photo(1200, 800, orientation=6)))
    preview = body["variants"]["preview"]
    # A signed URL whose signature covers the variant it names.
    assert preview["url"].startswith(f"/api/media/serve/{body['id']}?variant=preview&exp=")
    anon = await aiohttp_client(processing_client.server)     # no API key: the link alone
    assert (await anon.get(preview["url"])).status == 200
    forged = preview["url"].replace("variant=preview", "variant=m4a")
    assert (await anon.get(forged)).status == 403
    assert preview["mime_type"] == "image/jpeg"
    assert preview["dimensions"] == {"width": 213, "height": 320}
    resp = await processing_client.get(preview["url"])
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"
    data = await resp.read()
    assert len(data) == preview["file_size"] < 20_000
    assert resp.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert _image(data).size == (213, 320)
    # Same Range and conditional logic as the media itself.
    part = await processing_client.get(preview["url"], headers={"Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    again = await processing_client.get(preview["url"],
                                        headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    head = await processing_client.head(preview["url"])
    assert head.status == 200 and head.headers["Content-Length"] == str(len(data))
    # The metadata routes list it too.
    meta = await (await processing_client.get(f"/api/media/{body['id']}")).json()
    assert meta["variants"] == body["variants"]
    # Deleting the media deletes its variants.
    assert (await processing_client.delete(f"/api/media/{body['id']}")).status == 204
    assert (await processing_client.get(preview["url"])).status == 404
    assert await count(pool, "media_variants") == 0


@pytest.mark.parametrize("variant", ["m4a", "nope", "", "preview%00"])
async def test_unknown_or_absent_variant_is_404(processing_client, message_id, variant):
    body = await created(await post(processing_client, message_id, photo_bytes(40, 30)))
    resp = await processing_client.get(f"/api/media/serve/{body['id']}?variant={variant}")
    assert resp.status == 404
    assert (await resp.json())["error"] == "media_not_found"


async def test_deleting_the_message_removes_variants(processing_client, pool, message_id):
    await created(await post(processing_client, message_id, photo_bytes(40, 30)))
    assert await count(pool, "media_variants") == 3     # the preview, two thumbnails
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM messages WHERE id = $1", message_id)
    assert await count(pool, "media_variants") == 0


# -- refused --------------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
       b"<script>alert(1)</script></svg>")
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 64 + b"PE\0\0" + b"\0" * 200


@pytest.mark.parametrize("data,name,status,code,named", [
    (HTML, "photo.jpg", 415, "unsupported_media_type", "text/html"),
    (EXE, "report.pdf", 415, "unsupported_media_type", "application/x-msdownload"),
    (SVG, "logo.svg", 415, "unsupported_media_type", "image/svg+xml"),
    (b"\xff\xd8\xff\xe0" + HTML, "glued.jpg", 422, "invalid_media", "JPEG"),
    (png_bomb(50_000), "bomb.png", 422, "media_too_complex", "50000x50000"),
    (photo_bytes(60, 40)[:-200], "cut.jpg", 422, "invalid_media", "JPEG"),
], ids=["html-as-jpg", "exe-as-pdf", "svg-script", "jpeg-header-on-html", "png-bomb",
        "truncated-jpeg"])
async def test_hostile_files_are_refused_and_nothing_stored(processing_client, pool,
                                                            message_id, data, name, status,
                                                            code, named):
    resp = await post(processing_client, message_id, data, name=name)
    await assert_refused(resp, pool, status, code, named)


async def test_real_huge_png_is_refused_before_decoding(processing_client, pool, message_id):
    # A genuinely encoded 11000x10000 PNG (110 MP, one colour, so it is small on the wire).
    buf = io.BytesIO()
    Image.new("L", (11_000, 10_000), 7).save(buf, "PNG")
    assert len(buf.getvalue()) < 1_000_000
    resp = await post(processing_client, message_id, buf.getvalue(), name="huge.png")
    await assert_refused(resp, pool, 422, "media_too_complex")


async def test_gif_with_thousands_of_frames_is_refused(processing_client, pool, message_id):
    resp = await post(processing_client, message_id, animated_gif(3000, size=200),
                      name="many.gif")
    await assert_refused(resp, pool, 422, "media_too_complex", "3000 frames")


async def test_empty_file_is_400(processing_client, pool, message_id):
    resp = await post(processing_client, message_id, b"", name="empty.jpg")
    await assert_refused(resp, pool, 400, "empty_file")


async def test_text_and_csv_are_stored(processing_client, message_id):
    body = await created(await post(processing_client, message_id,
                                    b"name,qty\napple,3\npear,5\n", name="list.csv"))
    assert body["mime_type"] == "text/csv" and body["media_type"] == "document"
    body = await created(await post(processing_client, message_id,
                                    "notas da reunião\n".encode(), name="notes.txt"))
    assert body["mime_type"] == "text/plain" and body["variants"] == {}


async def test_text_with_a_nul_after_the_first_bytes_is_refused(processing_client, pool,
                                                                message_id):
    data = b"a" * 20_000 + b"\0" + b"b" * 100
    resp = await post(processing_client, message_id, data, name="x.txt")
    await assert_refused(resp, pool, 422, "invalid_media", "text")


async def test_variant_and_media_never_share_cached_chunks(processing_client, message_id):
    # Small reads go through the in-memory chunk cache (MEDIA_CACHE_BYTES): the preview's
    # first chunk must not be answered with the media's, nor the other way round.
    body = await created(await post(processing_client, message_id, exif_photo(600, 400)))
    media = await fetch(processing_client, body["url"])
    preview_url = body["variants"]["preview"]["url"]
    preview = await fetch(processing_client, preview_url)
    for url, whole in ((body["url"], media), (preview_url, preview)) * 2:
        part = await processing_client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status == 206 and await part.read() == whole[:100]
