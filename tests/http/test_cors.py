"""CORS through a real server: preflights for the routes browsers call (serving,
uploads with a token) allowed or refused, and the headers on the actual responses."""
from __future__ import annotations

import pytest

from tests.dbutil import bearer
from tests.media import png_bytes

APP = "https://chat.example.com"
UPLOAD = "/api/media/upload-production"


@pytest.fixture
async def cors(client_with):
    return await client_with(security__cors_origins=(APP, "http://localhost:3000"))


async def preflight(client, path: str, origin: str | None, method: str,
                    headers: str = "authorization, range"):
    h = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    if origin:
        h["Origin"] = origin
    return await client.options(path, headers=h)


async def test_preflight_for_serving_and_token_uploads(cors):
    for path, method in [("/api/media/serve/1", "GET"), ("/api/media/serve/1", "HEAD"),
                         (UPLOAD, "POST")]:
        resp = await preflight(cors, path, APP, method)
        assert resp.status == 204, (path, await resp.text())
        h = resp.headers
        assert h["Access-Control-Allow-Origin"] == APP
        assert method in h["Access-Control-Allow-Methods"]
        for name in ("Authorization", "Range", "If-Range", "If-None-Match"):
            assert name in h["Access-Control-Allow-Headers"]
        assert h["Vary"] == "Origin"
        assert "Access-Control-Allow-Credentials" not in h


@pytest.mark.parametrize("path,origin,method", [
    ("/api/media/serve/1", "https://evil.example.com", "GET"),
    ("/api/media/serve/1", None, "GET"),
    ("/api/media/serve/1", APP, "DELETE"),
    ("/api/media/serve/1", APP, "POST"),
    (UPLOAD, APP, "PUT"),
])
async def test_preflight_refused(cors, path, origin, method):
    resp = await preflight(cors, path, origin, method)
    assert resp.status == 403
    assert (await resp.json())["error"] == "cors_refused"
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_no_cors_unless_configured(client):
    resp = await preflight(client, "/api/media/serve/1", APP, "GET")
    assert resp.status == 403
    resp = await client.get("/api/media/serve/1", headers={"Origin": APP})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Vary" not in resp.headers


async def test_routes_browsers_do_not_call_have_no_preflight(cors):
    resp = await preflight(cors, "/api/media/1", APP, "DELETE")
    assert resp.status == 405


async def test_actual_responses_carry_the_cors_headers(cors, message_id, aiohttp_client):
    resp = await cors.post(UPLOAD, params={"message_id": str(message_id)}, data=png_bytes(),
                           headers={"Content-Type": "image/png", "Origin": APP})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    url = (await resp.json())["url"]
    browser = await aiohttp_client(cors.server)     # no key: the signed URL
    for headers, status in [({"Origin": APP, "Range": "bytes=0-9"}, 206),
                            ({"Origin": APP}, 200)]:
        resp = await browser.get(url, headers=headers)
        assert resp.status == status
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        exposed = resp.headers["Access-Control-Expose-Headers"]
        for name in ("Content-Range", "ETag", "Content-Length", "Accept-Ranges"):
            assert name in exposed
        assert "Origin" in resp.headers.getall("Vary")
    # An error is readable by the page too (it can show why).
    resp = await browser.get("/api/media/serve/1", headers={"Origin": APP})
    assert resp.status == 401 and resp.headers["Access-Control-Allow-Origin"] == APP
    # Another origin gets the bytes' response without the permission to read them.
    resp = await browser.get(url, headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Origin" in resp.headers.getall("Vary")


async def test_a_token_upload_from_a_browser(cors, aiohttp_client, message_id):
    token = (await (await cors.post("/api/media/upload-tokens",
                                    json={"message_id": message_id})).json())["token"]
    phone = await aiohttp_client(cors.server)
    assert (await preflight(phone, UPLOAD, APP, "POST", "authorization, content-type")
            ).status == 204
    resp = await phone.post(UPLOAD, params={"message_id": str(message_id)}, data=png_bytes(),
                            headers={"Content-Type": "image/png", "Origin": APP,
                                     **bearer(token)})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == APP


async def test_wildcard_origin(client_with):
    c = await client_with(security__cors_origins=("*",))
    resp = await preflight(c, "/api/media/serve/1", "https://anything.example", "GET")
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in resp.headers
