"""Quarantine (server/hygiene/quarantine.py): every media showing the content answers
451 on GET and HEAD, signed URLs included, never cached; admins see why in the JSON;
new uploads of the same bytes are refused; release; the paged list; the audit rows;
and another instance that had the media cached sees the quarantine at once."""
from __future__ import annotations

import asyncio

import pytest

from server.store.media import STORE
from tests.media import jpeg_bytes

UPLOAD = "/api/media/upload-production"


async def upload(client, message_id, data: bytes) -> dict:
    r = await client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                          headers={"Content-Type": "image/jpeg"})
    assert r.status == 201, await r.text()
    return await r.json()


async def quarantine(client, media_id: int, reason: str = "abuse report #17"):
    return await client.post(f"/api/media/{media_id}/quarantine", json={"reason": reason})


async def test_every_media_of_the_content_answers_451(client, message_id, anon_client):
    data = jpeg_bytes(20_000)
    first, second = await upload(client, message_id, data), await upload(client, message_id, data)
    other = await upload(client, message_id, jpeg_bytes(20_000, seed=2))
    r = await quarantine(client, first["id"])
    assert r.status == 201
    body = await r.json()
    assert body["quarantined"] is True and body["sha256"] == first["sha256"]
    for media in (first, second):
        for method in ("GET", "HEAD"):
            for c, url in ((client, f"/api/media/serve/{media['id']}"),
                           (anon_client, media["url"])):        # the signed URL
                r = await c.request(method, url)
                assert r.status == 451, (method, url)
                assert r.headers["Cache-Control"] == "no-store"
        # A cache revalidating gets the 451 too, never a 304.
        r = await client.get(f"/api/media/serve/{media['id']}",
                             headers={"If-None-Match": f'"{media["sha256"]}"'})
        assert r.status == 451
    r = await client.get(f"/api/media/serve/{second['id']}")
    assert (await r.json())["error"] == "media_quarantined"
    assert (await client.get(f"/api/media/serve/{other['id']}")).status == 200


async def test_admins_see_the_reason(client, message_id, client_as):
    media = await upload(client, message_id, jpeg_bytes(9_000))
    before = await (await client.get(f"/api/media/{media['id']}")).json()
    assert "quarantined" not in before and "quarantine_reason" not in before
    await quarantine(client, media["id"], "CSAM hash match")
    after = await (await client.get(f"/api/media/{media['id']}")).json()
    assert after["quarantined"] is True and after["quarantine_reason"] == "CSAM hash match"
    reader = await client_as("read")
    shown = await (await reader.get(f"/api/media/{media['id']}")).json()
    assert "quarantined" not in shown and "quarantine_reason" not in shown


async def test_new_uploads_of_the_content_are_refused(client, message_id, pool):
    data = jpeg_bytes(15_000)
    media = await upload(client, message_id, data)
    await quarantine(client, media["id"])
    r = await client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                          headers={"Content-Type": "image/jpeg"})
    assert r.status == 422 and (await r.json())["error"] == "quarantined_content"
    async with pool.acquire() as conn:   # test-only SQL: nothing of it kept
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 1


async def test_release_list_and_audit(client, message_id, pool, client_as):
    a = await upload(client, message_id, jpeg_bytes(5_000, seed=1))
    b = await upload(client, message_id, jpeg_bytes(5_000, seed=2))
    writer = await client_as("write")
    assert (await quarantine(writer, a["id"])).status == 403
    assert (await quarantine(client, a["id"], "first")).status == 201
    assert (await quarantine(client, b["id"], "second")).status == 201
    again = await quarantine(client, b["id"], "other words")
    assert again.status == 200 and (await again.json())["already"] is True
    r = await client.post(f"/api/media/{a['id']}/quarantine", json={})
    assert r.status == 400
    assert (await quarantine(client, 999_999)).status == 404
    pages, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/quarantine", params=params)).json()
        pages.append([(i["media_id"], i["reason"], i["media"]) for i in page["items"]])
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == [[(b["id"], "second", 1)], [(a["id"], "first", 1)]]
    assert (await writer.get("/api/quarantine")).status == 403
    assert (await client.delete(f"/api/media/{a['id']}/quarantine")).status == 204
    assert (await client.get(f"/api/media/serve/{a['id']}")).status == 200
    r = await client.delete(f"/api/media/{a['id']}/quarantine")
    assert r.status == 404 and (await r.json())["error"] == "not_quarantined"
    async with pool.acquire() as conn:
        rows = [tuple(r) for r in await conn.fetch(
            "SELECT action, media_id, outcome FROM media_audit_log "
            "WHERE action LIKE 'quarantine%' ORDER BY id")]
    assert rows == [("quarantine", a["id"], "ok"),
                    ("quarantine", b["id"], "ok"),
                    ("quarantine", b["id"], "ok: already quarantined"),
                    ("quarantine", 999_999, "media_not_found"),
                    ("quarantine_release", a["id"], "ok"),
                    ("quarantine_release", a["id"], "not_quarantined")]


async def _until(check, what: str, tries: int = 400) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"never: {what}")


async def test_another_instance_sees_it_at_once(server_for, message_id):
    a = await server_for(store__metadata_cache_seconds=30)
    b = await server_for(store__metadata_cache_seconds=30, key=None)
    for c in (a, b):
        store = c.app[STORE]

        async def trusted(store=store):
            return store._stat_trusted
        await _until(trusted, "the deletion feed to connect")
    media = await upload(a, message_id, jpeg_bytes(20_000))
    assert (await b.head(media["url"])).status == 200
    assert media["id"] in b.app[STORE]._stats   # B answers from its cache now
    assert (await quarantine(a, media["id"])).status == 201

    async def withheld():
        return (await b.head(media["url"])).status == 451
    await _until(withheld, "the other instance to see the quarantine")
    assert (await a.delete(f"/api/media/{media['id']}/quarantine")).status == 204

    async def served():
        return (await b.head(media["url"])).status == 200
    await _until(served, "the other instance to see the release")


async def test_only_an_admin_deletes_quarantined_media(client, message_id, client_as):
    media = await upload(client, message_id, jpeg_bytes(7_000))
    await quarantine(client, media["id"])
    writer = await client_as("write")
    r = await writer.delete(f"/api/media/{media['id']}")
    assert r.status == 409 and (await r.json())["error"] == "quarantine_hold"
    assert (await client.delete(f"/api/media/{media['id']}")).status == 204


async def test_listings_show_it_to_admins_as_the_single_media_does(client, message_id):
    media = await upload(client, message_id, jpeg_bytes(6_000))
    await quarantine(client, media["id"], "spam")
    single = await (await client.get(f"/api/media/{media['id']}")).json()
    listed = await (await client.get(f"/api/messages/{message_id}/media")).json()
    found = await (await client.get("/api/media", params={"message_id": message_id})).json()
    assert listed["items"] == [single] and found["items"] == [single]
    assert single["quarantine_reason"] == "spam"


async def test_variants_are_withheld_with_their_media(processing_client, message_id,
                                                     anon_client):
    from tests.media import photo_bytes
    r = await processing_client.post(UPLOAD, params={"message_id": str(message_id)},
                                     data=photo_bytes(900, 600),
                                     headers={"Content-Type": "image/jpeg"})
    media = await r.json()
    preview = media["variants"]["preview"]["url"]
    assert (await anon_client.get(preview)).status == 200
    assert (await quarantine(processing_client, media["id"])).status == 201
    r = await anon_client.get(preview)
    assert r.status == 451 and r.headers["Cache-Control"] == "no-store"
