"""POST /api/media/import-url through a real server, fetching from a real origin server
on loopback. Refusals are tried only against loopback targets, and each asserts the
origin saw nothing; the wider address table is tests/test_addresses.py."""
from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest
from aiohttp import web

from server.ingest.url import PinnedResolver
from tests.media import jpeg_bytes

URL = "/api/media/import-url"
PHOTO = jpeg_bytes(20_000, seed=5)


class Origin:
    """A loopback web server that counts every request it gets."""

    def __init__(self):
        self.hits: list[str] = []
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
        if path == "/text":
            return web.Response(text="<html>not media</html>", content_type="text/html")
        if path == "/named":
            return web.Response(body=PHOTO, content_type="image/jpeg", headers={
                "Content-Disposition": 'attachment; filename="from-header.jpg"'})
        return web.Response(status=404)


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
    return await make_client(media_import_allow_http=True,
                             media_import_allow_private=True, media_import_timeout=3.0)


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
                               media_import_allow_http=True)
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
    client = await make_client(media_import_allow_http=True,
                               media_import_allow_private=True,
                               media_import_hosts=("localhost",))
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
    client = await make_client(media_import_allow_http=True,
                               media_import_allow_private=True,
                               max_upload_bytes=len(PHOTO) + 10_000)
    await expect(await post(client, message_id, f"http://127.0.0.1:{origin.port}/big"),
                 413, "payload_too_large")
    assert await count_media(pool) == 0


async def test_size_limit_from_content_length(make_client, origin,
                                              message_id, pool):
    client = await make_client(media_import_allow_http=True,
                               media_import_allow_private=True, max_upload_bytes=1000)
    await expect(await post(client, message_id, f"http://127.0.0.1:{origin.port}/photo.jpg"),
                 413, "payload_too_large")
    assert await count_media(pool) == 0


async def test_total_timeout(make_client, origin, message_id):
    client = await make_client(media_import_allow_http=True,
                               media_import_allow_private=True, media_import_timeout=1.0)
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
