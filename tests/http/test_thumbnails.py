"""Thumbnails through a real server: every size and method, formats, animation, a
video's frame, made once (also by two instances at once), served like the media,
listed and signed in the JSON, refused cleanly, and gone with their media."""
import asyncio
import hashlib
import io
import tempfile
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image, ImageStat

from server.legacy.importer import IMPORTED
from server.processing import ondemand
from server.processing.pipeline import PROCESSING
from server.store.media import STORE
from tests.http.test_processing_images import count, created, post
from tests.http.test_tus_processing import media, tus_upload
from tests.legacy_util import make_chat, run_import
from tests.pure.test_thumbnails_pure import decode
from tests.media import av_sample, jpeg_bytes, photo_bytes

SERVE = "/api/media/serve/{}?variant=thumbnail&width={}&height={}&method={}"


def serve_url(media_id, w, h, method, animated=False):
    return SERVE.format(media_id, w, h, method) + ("&animated=true" if animated else "")


def image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


async def thumb(client, url, status=200) -> tuple[bytes, dict]:
    resp = await client.get(url)
    body = await resp.read()
    assert resp.status == status, body
    return body, resp.headers


async def variant_names(pool, media_id) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT name FROM media_variants WHERE media_id = $1 "
                                "ORDER BY name", media_id)
    return [r["name"] for r in rows]


def moving_gif(frames: int, size: int = 120) -> bytes:
    """An animated GIF whose frames differ clearly (a square walking across)."""
    imgs = []
    for i in range(frames):
        img = Image.new("RGB", (size, size), (240, 240, 240))
        x = i * (size - 30) // max(1, frames - 1)
        img.paste((200, 20, 20), (x, size // 3, x + 30, size // 3 + 30))
        imgs.append(img)
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return buf.getvalue()


def around(rgb: Image.Image, x: int, y: int) -> tuple:
    """The mean colour of the 5x5 pixels around (x, y): the photo's noise, kept where a
    thumbnail is not scaled down, would make one pixel's colour a matter of chance."""
    return rgb.crop((x - 2, y - 2, x + 3, y + 3)).resize((1, 1), Image.BOX).getpixel((0, 0))


def red(p) -> bool:
    return p[0] > 150 and p[2] < 110


def blue(p) -> bool:
    return p[2] > 150 and p[0] < 110


@pytest.mark.parametrize("w,h,method,size", [
    (32, 32, "crop", (32, 32)),
    (96, 96, "crop", (96, 96)),
    (320, 240, "scale", (320, 160)),
    (640, 480, "scale", (400, 200)),     # never enlarged past the original
    (800, 600, "scale", (400, 200)),
    (50, 50, "crop", (96, 96)),          # the smallest configured size covering it
    (300, 100, "scale", (320, 160)),
])
async def test_each_size_and_method(processing_client, message_id, w, h, method, size):
    # Left half red, right half blue, 400x200.
    body = await created(await post(processing_client, message_id, photo_bytes(400, 200)))
    data, headers = await thumb(processing_client, serve_url(body["id"], w, h, method))
    im = image(data)
    assert (im.format, headers["Content-Type"]) == ("JPEG", "image/jpeg")
    assert im.size == size
    rgb = im.convert("RGB")
    y = im.height // 2
    if method == "crop":
        # The centre square of a 2:1 picture: its left quarter red, right quarter blue.
        assert red(around(rgb, 2, y)) and blue(around(rgb, im.width - 3, y))
    else:
        assert abs(im.width / im.height - 2) < 0.02          # aspect kept
        assert red(around(rgb, im.width // 4, y)) and blue(around(rgb, 3 * im.width // 4, y))


async def test_transparency_gives_png(processing_client, message_id):
    img = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
    img.paste((10, 200, 30, 255), (20, 20, 100, 60))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    body = await created(await post(processing_client, message_id, buf.getvalue(),
                                    name="sticker.png"))
    data, headers = await thumb(processing_client, serve_url(body["id"], 96, 96, "crop"))
    im = image(data)
    assert headers["Content-Type"] == "image/png" and im.mode == "RGBA"
    assert im.getpixel((0, 0))[3] == 0 and im.getpixel((48, 48))[3] == 255


async def test_animated_gif_thumbnail_moves_only_when_asked(processing_client, message_id,
                                                            pool):
    body = await created(await post(processing_client, message_id,
                                    moving_gif(6), name="a.gif"))
    data, headers = await thumb(processing_client,
                                serve_url(body["id"], 96, 96, "crop", animated=True))
    im = image(data)
    assert headers["Content-Type"] == "image/webp"
    assert im.n_frames == 6 and im.size == (96, 96)
    data, _ = await thumb(processing_client, serve_url(body["id"], 96, 96, "crop"))
    assert getattr(image(data), "n_frames", 1) == 1
    # The JSON's URLs ask for the moving one, which the upload made already.
    url = next(t["url"] for t in body["thumbnails"] if t["width"] == 96)
    assert "animated=true" in url
    assert "thumb_96x96_crop_anim" in await variant_names(pool, body["id"])


async def test_animated_webp_upload_and_its_thumbnail(processing_client, message_id):
    frames = [Image.new("RGBA", (80, 60), (i * 50, 20, 200 - i * 40, 255)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=80, loop=0)
    body = await created(await post(processing_client, message_id, buf.getvalue(),
                                    name="sticker.webp"))
    assert body["mime_type"] == "image/webp" and body["dimensions"] == {"width": 80, "height": 60}
    stored = image(await (await processing_client.get(body["url"])).read())
    assert stored.n_frames == 4                       # kept moving
    data, _ = await thumb(processing_client,
                          serve_url(body["id"], 320, 240, "scale", animated=True))
    im = image(data)
    assert im.n_frames == 4 and im.size == (80, 60)


async def test_avif_upload_and_its_thumbnail(processing_client, message_id):
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (30, 160, 90)).save(buf, "AVIF")
    body = await created(await post(processing_client, message_id, buf.getvalue(),
                                    name="photo.avif"))
    assert body["media_type"] == "image" and body["dimensions"] == {"width": 160, "height": 120}
    data, _ = await thumb(processing_client, serve_url(body["id"], 96, 96, "crop"))
    im = image(data).convert("RGB")
    assert im.size == (96, 96)
    assert all(abs(a - b) < 20 for a, b in zip(im.getpixel((48, 48)), (30, 160, 90)))
    assert body["placeholder"]


async def test_animation_over_the_byte_limit_gets_a_still(processing_client_with, message_id):
    client = await processing_client_with(processing__thumbnail_max_animated_bytes=100,
                                          processing__thumbnail_eager=())
    body = await created(await post(client, message_id, moving_gif(5), name="a.gif"))
    data, _ = await thumb(client, serve_url(body["id"], 96, 96, "crop", animated=True))
    assert getattr(image(data), "n_frames", 1) == 1


async def test_video_thumbnail_is_not_the_black_first_frame(processing_client, message_id,
                                                            pool):
    # av_sample's first frame is black; the others are coloured.
    clip = av_sample("mp4", video="libx264", seconds=3, width=160, height=120)
    body = await created(await post(processing_client, message_id, clip, name="v.mp4"))
    # Every size made at upload, from the frame decoded then.
    assert len(await variant_names(pool, body["id"])) == 1 + 5
    data, headers = await thumb(processing_client, serve_url(body["id"], 320, 240, "scale"))
    im = image(data)
    assert headers["Content-Type"] == "image/jpeg" and im.size == (160, 120)
    assert ImageStat.Stat(im.convert("L")).mean[0] > 60
    assert body["placeholder"] and len(body["placeholder"]) == 28


async def test_made_once_then_served_from_the_store(processing_client, message_id, pool):
    body = await created(await post(processing_client, message_id, photo_bytes(300, 200)))
    mid = body["id"]
    url = serve_url(mid, 640, 480, "scale")
    assert "thumb_640x480_scale" not in await variant_names(pool, mid)
    results = await asyncio.gather(*(thumb(processing_client, url) for _ in range(8)))
    assert len({hashlib.sha256(d).hexdigest() for d, _ in results}) == 1
    assert (await variant_names(pool, mid)).count("thumb_640x480_scale") == 1
    async with pool.acquire() as conn:
        made_at = await conn.fetchval("SELECT created_at FROM media_variants WHERE "
                                      "media_id = $1 AND name = 'thumb_640x480_scale'", mid)
    await thumb(processing_client, url)
    async with pool.acquire() as conn:
        assert made_at == await conn.fetchval(
            "SELECT created_at FROM media_variants WHERE media_id = $1 "
            "AND name = 'thumb_640x480_scale'", mid)


async def test_two_instances_make_it_once(processing_client_with, message_id, pool):
    a = await processing_client_with(processing__thumbnail_eager=())
    b = await processing_client_with(processing__thumbnail_eager=())
    body = await created(await post(a, message_id, photo_bytes(600, 400)))
    url = serve_url(body["id"], 800, 600, "scale")
    results = await asyncio.gather(*(thumb(c, url) for c in (a, b) * 4))
    assert len({d for d, _ in results}) == 1
    assert await variant_names(pool, body["id"]) == ["preview", "thumb_800x600_scale"]


async def test_served_with_etag_range_and_conditionals(processing_client, message_id):
    body = await created(await post(processing_client, message_id, photo_bytes(300, 200)))
    url = serve_url(body["id"], 320, 240, "scale")
    data, headers = await thumb(processing_client, url)
    etag = headers["ETag"]
    assert etag == f'"{hashlib.sha256(data).hexdigest()}"' != f'"{body["sha256"]}"'
    assert headers["Accept-Ranges"] == "bytes" and "max-age" in headers["Cache-Control"]
    resp = await processing_client.get(url, headers={"If-None-Match": etag})
    assert resp.status == 304
    resp = await processing_client.get(url, headers={"Range": "bytes=2-11"})
    assert resp.status == 206 and await resp.read() == data[2:12]
    assert resp.headers["Content-Range"] == f"bytes 2-11/{len(data)}"
    resp = await processing_client.head(url)
    assert resp.status == 200 and resp.headers["Content-Length"] == str(len(data))


async def test_json_lists_signed_thumbnails_and_a_placeholder(processing_client, anon_client,
                                                              message_id, pool):
    body = await created(await post(processing_client, message_id, photo_bytes(300, 200)))
    thumbs = body["thumbnails"]
    assert [(t["width"], t["height"], t["method"]) for t in thumbs] == [
        (32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
        (800, 600, "scale")]
    assert len(body["placeholder"]) == 28
    # The eager sizes were made at upload; thumbnails are not listed as variants.
    assert await variant_names(pool, body["id"]) == ["preview", "thumb_32x32_crop",
                                                     "thumb_96x96_crop"]
    assert set(body["variants"]) == {"preview"}
    for t in thumbs:
        q = parse_qs(urlsplit(t["url"]).query)
        assert q["sig"] and q["exp"] and q["width"] == [str(t["width"])]
        resp = await anon_client.get(t["url"])
        assert resp.status == 200, await resp.text()
    # The signature covers the size: another size with the same signature is refused.
    tampered = thumbs[0]["url"].replace("width=32", "width=96")
    assert (await anon_client.get(tampered)).status == 403
    # The same JSON on reading it back.
    again = await (await processing_client.get(f"/api/media/{body['id']}")).json()
    assert again["placeholder"] == body["placeholder"] and len(again["thumbnails"]) == 5


async def test_audio_has_none(processing_client, message_id):
    body = await created(await post(processing_client, message_id,
                                    av_sample("ogg", audio="libopus", seconds=1), name="v.ogg"))
    assert body["thumbnails"] == [] and body["placeholder"] is None
    resp = await processing_client.get(serve_url(body["id"], 96, 96, "crop"))
    assert resp.status == 404 and (await resp.json())["error"] == "no_thumbnail"


async def test_undecodable_source_is_422_not_500(processing_client_with, message_id):
    client = await processing_client_with(processing__enabled=False)    # stored unchecked
    body = await created(await post(client, message_id, jpeg_bytes(5000)[:3] + b"\0" * 4000))
    resp = await client.get(serve_url(body["id"], 96, 96, "crop"))
    assert resp.status == 422 and (await resp.json())["error"] == "invalid_media"


@pytest.mark.parametrize("query", ["&width=0&height=5", "&width=5", "&width=5&height=5&method=x",
                                   "&width=5&height=5&animated=maybe"])
async def test_bad_parameters_are_400(processing_client, message_id, query):
    body = await created(await post(processing_client, message_id, photo_bytes(40, 30)))
    resp = await processing_client.get(f"/api/media/serve/{body['id']}?variant=thumbnail{query}")
    assert resp.status == 400 and (await resp.json())["error"] == "bad_request"


async def test_thumbnails_go_with_their_media(processing_client, message_id, pool):
    body = await created(await post(processing_client, message_id, photo_bytes(300, 200)))
    await thumb(processing_client, serve_url(body["id"], 320, 240, "scale"))
    assert await count(pool, "media_variants") == 4
    assert (await processing_client.delete(f"/api/media/{body['id']}")).status in (200, 204)
    assert await count(pool, "media_variants") == 0
    # Their contents wait for the reclaim like the media's, then go.
    await processing_client.app[STORE].reclaim_orphaned_contents(0)
    assert await count(pool, "content_chunks") == 0
    resp = await processing_client.get(serve_url(body["id"], 320, 240, "scale"))
    assert resp.status == 404


async def test_tus_uploads_get_them_too(processing_client, message_id, pool):
    r, _ = await tus_upload(processing_client, message_id, photo_bytes(300, 200))
    assert r.status == 204, await r.text()
    body = await media(processing_client, int(r.headers["Media-Id"]))
    assert len(body["placeholder"]) == 28 and len(body["thumbnails"]) == 5
    assert await variant_names(pool, body["id"]) == ["preview", "thumb_32x32_crop",
                                                     "thumb_96x96_crop"]


async def test_legacy_imports_get_them_too(store, pool, tmp_path):
    chat = await make_chat(pool, tmp_path)
    report, _ = await run_import(store, chat)
    ids = {r.name: r.media_id for r in report.rows if r.outcome == IMPORTED}
    # Bytes kept as they were (no --process), thumbnails and placeholder made all the same.
    assert await variant_names(pool, ids["a.jpg"]) == ["preview", "thumb_32x32_crop",
                                                       "thumb_96x96_crop"]
    assert await variant_names(pool, ids["b.png"]) == ["preview", "thumb_32x32_crop_anim",
                                                       "thumb_96x96_crop_anim"]
    assert (await store.stat(ids["a.jpg"])).placeholder


async def test_a_refusal_is_remembered_not_decoded_again(processing_client_with, message_id,
                                                         monkeypatch):
    client = await processing_client_with(processing__enabled=False)
    body = await created(await post(client, message_id, jpeg_bytes(5000)[:3] + b"\0" * 4000))
    url = serve_url(body["id"], 96, 96, "crop")
    resp = await client.get(url)
    assert resp.status == 422
    processing = client.server.app[PROCESSING]
    assert list(processing.thumbnail_refusals) == [(body["id"], "thumb_96x96_crop")]

    async def must_not_run(*args):
        raise AssertionError("decoded again")
    monkeypatch.setattr(ondemand, "_make", must_not_run)
    for _ in range(3):
        resp = await client.get(url)
        assert resp.status == 422 and (await resp.json())["error"] == "invalid_media"


async def test_the_placeholder_decodes_to_the_picture(processing_client, message_id):
    # Left half red, right half blue: so is the decoded placeholder.
    body = await created(await post(processing_client, message_id, photo_bytes(320, 160)))
    out = decode(body["placeholder"], 8, 4)
    assert red(out[2 * 8 + 1]) and blue(out[2 * 8 + 6]), out


async def test_a_still_beyond_the_source_pixels_is_422(processing_client_with, message_id):
    client = await processing_client_with(processing__thumbnail_max_source_pixels=5000)
    body = await created(await post(client, message_id,
                                    photo_bytes(100, 100, fmt="PNG"), name="a.png"))
    assert body["placeholder"] is None          # nothing made at upload either
    resp = await client.get(serve_url(body["id"], 96, 96, "crop"))
    assert resp.status == 422 and (await resp.json())["error"] == "media_too_complex"


async def test_an_animation_beyond_the_source_pixels_gets_a_still(processing_client_with,
                                                                  message_id):
    # 6 frames of 120x120 = 86,400 pixels together; one frame is 14,400.
    client = await processing_client_with(processing__thumbnail_max_source_pixels=50_000)
    body = await created(await post(client, message_id, moving_gif(6), name="a.gif"))
    data, _ = await thumb(client, serve_url(body["id"], 96, 96, "crop", animated=True))
    assert getattr(image(data), "n_frames", 1) == 1


async def test_making_leaves_no_spool_file(processing_client_with, message_id, tmp_path,
                                           monkeypatch):
    # A private temporary folder: other test runs on the machine spool files too.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = await processing_client_with(processing__thumbnail_eager=())
    good = await created(await post(client, message_id, photo_bytes(200, 100)))
    await asyncio.gather(*(thumb(client, serve_url(good["id"], 320, 240, "scale"))
                           for _ in range(4)))
    plain = await processing_client_with(processing__enabled=False)
    bad = await created(await post(plain, message_id, jpeg_bytes(5000)[:3] + b"\0" * 4000))
    assert (await plain.get(serve_url(bad["id"], 96, 96, "crop"))).status == 422
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("media-spool-")] == []
