"""POST /api/media/import-url through a real server, fetching from a real origin server
on loopback. Refusals are tried only against loopback targets, and each asserts the
origin saw nothing; the wider address table is tests/pure/test_addresses.py."""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import socket

import pytest
from aiohttp import web

from PIL import Image

from server.ingest.url import PinnedResolver
from tests.media import exif_photo, jpeg_bytes, png_bomb

URL = "/api/media/import-url"
PHOTO = jpeg_bytes(20_000, seed=5)


class Origin:
    """A loopback web server that counts every request it gets."""

    def __init__(self):
        self.hits: list[str] = []
        self.files: dict[str, bytes] = {}     # /file/<name>: served as it is
        self.release = asyncio.Event()        # /held answers once it is set
        self.cut_off = asyncio.Event()        # /trickle's client hung up
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self.handle)
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        path = request.path
        if path == "/photo.jpg":
            return web.Response(body=PHOTO, content_type="image/jpeg")
        if path.startswith("/hop/"):   # /hop/N redirects N more times, then to the photo
            n = int(path.rsplit("/", 1)[1])
            raise web.HTTPFound("/photo.jpg" if n <= 1 else f"/hop/{n - 1}")
        if path == "/to":
            raise web.HTTPFound(request.query["u"])
        if path == "/big":
            resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            await resp.prepare(request)   # chunked: no Content-Length to refuse early
            await resp.write(PHOTO)
            for _ in range(40):
                await resp.write(b"\0" * 4096)
            return resp
        if path == "/slow":
            await asyncio.sleep(30)
        if path.startswith("/file/"):
            return web.Response(body=self.files[path[6:]],
                                content_type="application/octet-stream")
        if path == "/held":
            await self.release.wait()
            return web.Response(body=PHOTO, content_type="image/jpeg")
        if path == "/trickle":   # a JPEG's first bytes, then a byte every 50 ms
            return await self.trickle(request)
        if path == "/gzipped":   # sent coded although we asked for identity
            return web.Response(body=gzip.compress(PHOTO), content_type="image/jpeg",
                                headers={"Content-Encoding": "gzip"})
        if path == "/text":
            return web.Response(text="<html>not media</html>", content_type="text/html")
        if path == "/named":
            return web.Response(body=PHOTO, content_type="image/jpeg", headers={
                "Content-Disposition": 'attachment; filename="from-header.jpg"'})
        return web.Response(status=404)

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await resp.prepare(request)
        try:
            await resp.write(PHOTO[:100])
            for b in PHOTO[100:]:
                await asyncio.sleep(0.05)
                await resp.write(bytes([b]))
        except (ConnectionError, asyncio.CancelledError):   # aiohttp cancels on hang-up
            self.cut_off.set()
            raise
        return resp


@pytest.fixture
async def origin(aiohttp_server):
    o = Origin()
    server = await aiohttp_server(o.app, host="127.0.0.1")
    o.port = server.port
    return o


@pytest.fixture
def make_client(server_for):
    return server_for


@pytest.fixture
async def open_client(make_client):
    """Loopback allowed, as tests and private networks need."""
    return await make_client(import_url__allow_http=True,
                             import_url__allow_private=True, import_url__timeout=3.0)


async def post(client, message_id, url, **extra):
    return await client.post(URL, json={"message_id": message_id, "url": url, **extra})


async def expect(resp, status, code):
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"] == code, body
    return body["message"]


async def count_media(pool):
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM media_files")


# -- success ---------------------------------------------------------------------

async def test_import_stores_the_bytes(open_client, origin, message_id, pool):
    resp = await post(open_client, message_id, f"http://127.0.0.1:{origin.port}/photo.jpg")
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["message_id"] == message_id and body["mime_type"] == "image/jpeg"
    assert body["original_name"] == "photo.jpg"
    assert body["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert resp.headers["Location"] == f"/api/media/{body['id']}"
    served = await open_client.get(body["url"])
    assert await served.read() == PHOTO


async def test_name_from_field_then_header(open_client, origin, message_id):
    base = f"http://127.0.0.1:{origin.port}"
    r1 = await post(open_client, message_id, f"{base}/named")
    assert (await r1.json())["original_name"] == "from-header.jpg"
    r2 = await post(open_client, message_id, f"{base}/named", file_name="chosen.jpg")
    assert (await r2.json())["original_name"] == "chosen.jpg"


async def test_three_redirects_followed(open_client, origin, message_id):
    resp = await post(open_client, message_id, f"http://127.0.0.1:{origin.port}/hop/3")
    assert resp.status == 201
    assert origin.hits == ["/hop/3", "/hop/2", "/hop/1", "/photo.jpg"]


# -- refusals: nothing fetched ----------------------------------------------------

@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/photo.jpg", "http://[::1]:{port}/photo.jpg",
    "http://localhost:{port}/photo.jpg", "http://127.1:{port}/photo.jpg",
    "http://0.0.0.0:{port}/photo.jpg", "http://2130706433:{port}/photo.jpg",
    "http://0x7f000001:{port}/photo.jpg", "http://0177.0.0.1:{port}/photo.jpg",
    "http://[::ffff:127.0.0.1]:{port}/photo.jpg", "http://LOCALHOST:{port}/photo.jpg",
])
async def test_loopback_refused(make_client, origin, message_id, pool,
                                target):
    client = await make_client(
                               import_url__allow_http=True)
    msg = await expect(await post(client, message_id, target.format(port=origin.port)),
                       400, "url_not_allowed")
    assert "loopback" in msg or "unspecified" in msg, msg
    assert origin.hits == []
    assert await count_media(pool) == 0


async def test_http_refused_when_https_required(client, origin, message_id):
    msg = await expect(await post(client, message_id,
                                  f"http://127.0.0.1:{origin.port}/photo.jpg"),
                       400, "url_not_allowed")
    assert "https" in msg
    assert origin.hits == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "/relative",
                                 "gopher://localhost/", "http://user:pw@127.0.0.1/x",
                                 "not a url", ""])
async def test_other_schemes_and_shapes_refused(open_client, message_id, url):
    await expect(await post(open_client, message_id, url), 400, "url_not_allowed")


@pytest.mark.parametrize("target", ["http://0.0.0.0:{port}/photo.jpg",
                                    "http://[::]:{port}/photo.jpg",
                                    "http://0:{port}/photo.jpg"])
async def test_redirect_to_loopback_refused(open_client, origin, message_id, pool, target):
    # Even with private addresses allowed, 0.0.0.0 and :: (which reach this host) never are.
    resp = await open_client.post(URL, json={
        "message_id": message_id,
        "url": f"http://127.0.0.1:{origin.port}/to?u={target.format(port=origin.port)}"})
    await expect(resp, 400, "url_not_allowed")
    assert len(origin.hits) == 1 and origin.hits[0].startswith("/to?")
    assert await count_media(pool) == 0


async def test_redirect_rechecks_host_allow_list(make_client, origin,
                                                 message_id):
    client = await make_client(import_url__allow_http=True,
                               import_url__allow_private=True,
                               import_url__hosts=("localhost",))
    hop = f"http://127.0.0.1:{origin.port}/photo.jpg"
    resp = await post(client, message_id, f"http://localhost:{origin.port}/to?u={hop}")
    assert "MEDIA_IMPORT_HOSTS" in await expect(resp, 400, "url_not_allowed")
    assert origin.hits == [f"/to?u={hop}"]
    direct = await post(client, message_id, hop)
    await expect(direct, 400, "url_not_allowed")
    assert len(origin.hits) == 1


async def test_redirect_to_other_scheme_refused(open_client, origin, message_id):
    resp = await post(open_client, message_id,
                      f"http://127.0.0.1:{origin.port}/to?u=file:///etc/passwd")
    await expect(resp, 400, "url_not_allowed")


async def test_too_many_redirects(open_client, origin, message_id, pool):
    resp = await post(open_client, message_id, f"http://127.0.0.1:{origin.port}/hop/4")
    assert "redirects" in await expect(resp, 502, "import_failed")
    assert len(origin.hits) == 4   # the fifth request is never made
    assert await count_media(pool) == 0


# -- the origin misbehaves ------------------------------------------------------------

async def test_size_limit_while_streaming(make_client, origin, message_id,
                                          pool):
    client = await make_client(import_url__allow_http=True,
                               import_url__allow_private=True,
                               uploads__max_bytes=len(PHOTO) + 10_000)
    await expect(await post(client, message_id, f"http://127.0.0.1:{origin.port}/big"),
                 413, "payload_too_large")
    assert await count_media(pool) == 0


async def test_size_limit_from_content_length(make_client, origin,
                                              message_id, pool):
    client = await make_client(import_url__allow_http=True,
                               import_url__allow_private=True, uploads__max_bytes=1000)
    await expect(await post(client, message_id, f"http://127.0.0.1:{origin.port}/photo.jpg"),
                 413, "payload_too_large")
    assert await count_media(pool) == 0


async def test_total_timeout(make_client, origin, message_id):
    client = await make_client(import_url__allow_http=True,
                               import_url__allow_private=True, import_url__timeout=1.0)
    await expect(await post(client, message_id, f"http://127.0.0.1:{origin.port}/slow"),
                 504, "import_timeout")


async def test_origin_error_and_refused_connection(open_client, origin, message_id):
    await expect(await post(open_client, message_id, f"http://127.0.0.1:{origin.port}/nope"),
                 502, "import_failed")
    with socket.socket() as s:   # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    await expect(await post(open_client, message_id, f"http://127.0.0.1:{dead}/x"),
                 502, "import_failed")


async def test_not_media_refused(open_client, origin, message_id, pool):
    await expect(await post(open_client, message_id, f"http://127.0.0.1:{origin.port}/text"),
                 415, "unsupported_media_type")
    assert await count_media(pool) == 0


async def test_coded_body_refused_as_an_upload_is(open_client, origin, message_id, pool):
    await expect(await post(open_client, message_id,
                            f"http://127.0.0.1:{origin.port}/gzipped"),
                 415, "unsupported_content_encoding")
    assert await count_media(pool) == 0


# -- the upload's pipeline: types, limits, processing, slots, pace ---------------------

@pytest.fixture
async def processing_open_client(processing_client_with):
    """Loopback allowed, and processing as deployed (compression, metadata stripping)."""
    async def start(**changes):
        return await processing_client_with(import_url__allow_http=True,
                                            import_url__allow_private=True, **changes)
    return start


def _image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


async def test_gps_is_stripped_as_on_upload(processing_open_client, origin, message_id):
    client = await processing_open_client()
    origin.files["phone.jpg"] = sent = exif_photo(120, 80, orientation=6)
    assert _image(sent).getexif().get_ifd(0x8825)   # the origin's file has a location
    resp = await post(client, message_id, f"http://127.0.0.1:{origin.port}/file/phone.jpg")
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["dimensions"] == {"width": 80, "height": 120}
    assert body["is_compressed"] is True
    stored = await (await client.get(body["url"])).read()
    assert stored != sent and body["sha256"] == hashlib.sha256(stored).hexdigest()
    exif = _image(stored).getexif()
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)
    assert 0x010F not in exif   # the camera make went too


async def test_imported_like_uploaded_with_previews(processing_open_client, origin,
                                                    message_id):
    client = await processing_open_client()
    origin.files["big.jpg"] = sent = exif_photo(600, 400)
    imported = await post(client, message_id, f"http://127.0.0.1:{origin.port}/file/big.jpg")
    assert imported.status == 201, await imported.text()
    imported = await imported.json()
    uploaded = await client.post(
        f"/api/media/upload-production?message_id={message_id}&filename=big.jpg",
        data=sent, headers={"Content-Type": "image/jpeg"})
    assert uploaded.status == 201, await uploaded.text()
    uploaded = await uploaded.json()
    assert "preview" in imported["variants"]
    same = ("sha256", "file_size", "dimensions", "mime_type", "is_compressed",
            "compression_quality", "original_name")
    assert {k: imported[k] for k in same} == {k: uploaded[k] for k in same}
    assert imported["variants"].keys() == uploaded["variants"].keys()
    preview = await client.get(imported["variants"]["preview"]["url"])
    assert preview.status == 200
    assert max(_image(await preview.read()).size) < 600


@pytest.mark.parametrize("name,data,changes,status,code,words", [
    ("bomb.png", png_bomb(50_000), {}, 422, "media_too_complex", "50000x50000"),
    ("photo.jpg", PHOTO, {"processing__allowed_types": frozenset({"image/png"})},
     415, "unsupported_media_type", "image/jpeg"),
    ("photo.jpg", PHOTO, {"processing__max_image_bytes": 1000},
     413, "payload_too_large", "image files are limited to 1000 bytes"),
], ids=["png-50000x50000", "type-not-allowed", "per-type-limit"])
async def test_refused_as_an_upload_is(processing_open_client, origin, message_id, pool,
                                       name, data, changes, status, code, words):
    client = await processing_open_client(**changes)
    origin.files[name] = data
    url = f"http://127.0.0.1:{origin.port}/file/{name}"
    assert words in await expect(await post(client, message_id, url), status, code)
    # The upload route says the same of the same bytes.
    uploaded = await client.post(
        f"/api/media/upload-production?message_id={message_id}&filename={name}",
        data=data, headers={"Content-Type": "application/octet-stream"})
    assert words in await expect(uploaded, status, code)
    async with pool.acquire() as conn:
        for table in ("media_files", "content_chunks", "media_contents", "media_variants"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_a_trickling_origin_is_cut_off(make_client, origin, message_id, pool):
    # 20 bytes a second against a minimum of 1,000 over each 1 s window; the total
    # timeout (30 s) is far off, and no read waits for the idle timeout.
    client = await make_client(import_url__allow_http=True,
                               import_url__allow_private=True, import_url__timeout=30.0,
                               uploads__min_rate=1000, uploads__rate_window=1.0)
    resp = await post(client, message_id, f"http://127.0.0.1:{origin.port}/trickle")
    assert "minimum upload rate" in await expect(resp, 504, "import_timeout")
    await asyncio.wait_for(origin.cut_off.wait(), 10)
    assert await count_media(pool) == 0


async def test_an_import_holds_an_upload_slot(make_client, origin, message_id):
    client = await make_client(import_url__allow_http=True,
                               import_url__allow_private=True, import_url__timeout=30.0,
                               uploads__max_concurrent=1)
    held = asyncio.create_task(post(client, message_id,
                                    f"http://127.0.0.1:{origin.port}/held"))
    try:
        while "/held" not in origin.hits:   # the import is under way, in its slot
            assert not held.done(), await (await held).text()
            await asyncio.sleep(0.02)
        upload = await client.post(
            f"/api/media/upload-production?message_id={message_id}",
            data=PHOTO, headers={"Content-Type": "image/jpeg"})
        await expect(upload, 503, "too_many_uploads")
        assert upload.headers["Retry-After"].isdigit()
        second = await post(client, message_id, f"http://127.0.0.1:{origin.port}/photo.jpg")
        await expect(second, 503, "too_many_uploads")
        assert "/photo.jpg" not in origin.hits
    finally:
        origin.release.set()
        first = await held
    assert first.status == 201, await first.text()
    # The slot is free again once the import is done.
    again = await client.post(f"/api/media/upload-production?message_id={message_id}",
                              data=PHOTO, headers={"Content-Type": "image/jpeg"})
    assert again.status == 201, await again.text()


# -- the request itself -------------------------------------------------------------

async def test_unknown_message_fetches_nothing(open_client, origin):
    await expect(await post(open_client, 999999, f"http://127.0.0.1:{origin.port}/photo.jpg"),
                 404, "message_not_found")
    assert origin.hits == []


@pytest.mark.parametrize("body,code", [
    (b"not json", "invalid_json"), (b"[1, 2]", "bad_request"),
    (b'{"url": "https://x.example/a.jpg"}', "invalid_message_id"),
    (b'{"message_id": "abc", "url": "https://x.example/a.jpg"}', "invalid_message_id"),
    (b'{"message_id": true, "url": "https://x.example/a.jpg"}', "invalid_message_id"),
    (b'{"message_id": 1}', "url_not_allowed"),
    (b'{"message_id": 1, "url": 5}', "bad_request"),
])
async def test_bad_bodies(client, body, code):
    resp = await client.post(URL, data=body, headers={"Content-Type": "application/json"})
    await expect(resp, 400, code)


# -- the resolver, directly -------------------------------------------------------------

async def test_resolver_refuses_a_name_with_any_refused_address():
    from server.ingest.url import AddressRefused
    r = PinnedResolver(allow_private=False)
    try:
        with pytest.raises(AddressRefused, match="loopback"):
            await r.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await r.close()


async def test_resolver_returns_the_checked_addresses():
    r = PinnedResolver(allow_private=True)
    try:
        infos = await r.resolve("localhost", 80, socket.AF_INET)
        assert infos and {i["host"] for i in infos} == {"127.0.0.1"}
        literal = await r.resolve("0x7f000001", 80, socket.AF_INET)
        assert [i["host"] for i in literal] == ["127.0.0.1"]
        assert all(i["flags"] & socket.AI_NUMERICHOST for i in literal)
    finally:
        await r.close()
