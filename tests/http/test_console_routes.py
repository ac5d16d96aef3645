"""The routes the console added: its files (open, strict CSP), whoami, stats, the audit
log's actor filter and pages, and search by name and by content (sha256)."""
from __future__ import annotations

import hashlib

import pytest

from server.api.console import CSP
from tests.media import png_bytes

UPLOAD = "/api/media/upload-production"


async def _upload(client, message_id: int, data: bytes, name: str) -> dict:
    resp = await client.post(UPLOAD, params={"message_id": str(message_id), "filename": name},
                             data=data, headers={"Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


@pytest.mark.parametrize("path, type_", [("/console", "text/html"), ("/console/", "text/html"),
                                         ("/console/app.js", "text/javascript"),
                                         ("/console/console.css", "text/css")])
async def test_console_files_are_open_with_a_strict_csp(anon_client, path, type_):
    resp = await anon_client.get(path)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == type_
    assert resp.headers["Content-Security-Policy"] == CSP
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'",
                      "frame-ancestors 'none'", "img-src 'self' blob: data:"):
        assert directive in CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapi%2Faccess.py", "%2E%2E", "App.JS",
                                  "index.html%00", "x.py"])
async def test_only_the_console_files_are_served(anon_client, name):
    resp = await anon_client.get(f"/console/{name}")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


@pytest.mark.parametrize("scope", ["read", "write", "admin"])
async def test_whoami_tells_a_key_its_name_and_scope(client, aiohttp_client, key_for, scope):
    key = await key_for(scope, f"who-{scope}")
    other = await aiohttp_client(client.server, headers={"Authorization": f"Bearer {key}"})
    resp = await other.get("/api/whoami")
    assert resp.status == 200
    assert await resp.json() == {"name": f"who-{scope}", "scope": scope}


async def test_whoami_needs_a_valid_key(anon_client, aiohttp_client, client):
    assert (await anon_client.get("/api/whoami")).status == 401
    wrong = await aiohttp_client(client.server, headers={"Authorization": "Bearer nope"})
    resp = await wrong.get("/api/whoami")
    assert resp.status == 401
    assert (await resp.json())["error"] == "invalid_credentials"


async def test_stats_with_growth_for_admins_only(client, client_as, message_id):
    await _upload(client, message_id, png_bytes(), "a.png")
    resp = await client.get("/api/stats", params={"days": "7"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["media_by_type"]["image"]["count"] == 1
    assert body["growth_days"] == 7
    assert len(body["growth"]) == 1 and body["growth"][0]["files"] == 1
    assert body["uploads_in_progress"]["count"] == 0
    assert set(body["zapi"]) >= {"pending", "failed_or_unknown"}
    writer = await client_as("write")
    assert (await writer.get("/api/stats")).status == 403


@pytest.mark.parametrize("days", ["0", "367", "x", "1.5", "-1", "٣"])
async def test_stats_bad_days_are_400(client, days):
    resp = await client.get("/api/stats", params={"days": days})
    assert resp.status == 400
    assert "days" in (await resp.json())["message"]


async def test_audit_actor_filter_and_pages(client, client_as, message_id):
    ids = [(await _upload(client, message_id, png_bytes(), f"{i}.png"))["id"] for i in range(5)]
    writer = await client_as("write")
    assert (await writer.delete(f"/api/media/{ids[0]}")).status == 204
    seen, cursor = [], None
    while True:
        params = {"actor": "test-admin", "limit": "2", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/api/audit", params=params)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert len(body["entries"]) <= 2
        seen += body["entries"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [e["media_id"] for e in seen] == ids[::-1]
    assert {e["actor"] for e in seen} == {"test-admin"}
    resp = await client.get("/api/audit", params={"action": "delete"})
    assert [e["actor"] for e in (await resp.json())["entries"]] != ["test-admin"]
    for bad in ({"cursor": "garbage!"}, {"actor": "x" * 121}):
        resp = await client.get("/api/audit", params=bad)
        assert resp.status == 400, bad


async def test_search_by_name_and_by_content(client, store, message_id):
    other = await store.create_message()
    data = png_bytes()
    a = await _upload(client, message_id, data, "Report-June.png")
    b = await _upload(client, other, data, "copy.png")
    c = await _upload(client, other, png_bytes(8, 8), "june-party.png")

    async def ids(**params):
        resp = await client.get("/api/media", params=params)
        assert resp.status == 200, await resp.text()
        return [m["id"] for m in (await resp.json())["items"]]

    assert await ids(name="JUNE") == [c["id"], a["id"]]
    assert await ids(name="june", media_type="document") == []
    sha = a["sha256"]
    assert sha == b["sha256"] == hashlib.sha256(data).hexdigest()
    assert await ids(sha256=sha) == [b["id"], a["id"]]
    assert await ids(sha256=sha, limit="1") == [b["id"]]
    assert await ids(sha256="0" * 64) == []


@pytest.mark.parametrize("params", [
    {"sha256": "abc"}, {"sha256": "A" * 64}, {"name": ""}, {"name": "x" * 256},
    {"name": "a\x00b"}, {"name": "a", "sha256": "0" * 64},
    {"name": "a", "message_id": "1"}, {"sha256": "0" * 64, "mime_type": "image/png"}])
async def test_search_bad_name_or_content_is_400(client, params):
    resp = await client.get("/api/media", params=params)
    assert resp.status == 400, params
    assert (await resp.json())["error"] == "bad_request"
