"""The audit log: a row for each action, written with the change it records (a failed
or rolled-back change leaves a failure row, never a success row), client addresses
from trusted proxies only, and GET /api/audit."""
from __future__ import annotations

import ipaddress

import aiohttp
import pytest

from server.security.audit import AuditEntry
from tests.dbutil import bearer
from tests.media import jpeg_bytes, png_bytes

UPLOAD = "/api/media/upload-production"


async def audit_rows(pool, where: str = "TRUE") -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(   # test-only SQL: reading what the service wrote
            "SELECT actor, action, media_id, message_id, host(client_addr) AS addr, "
            f"user_agent, request_id, outcome FROM media_audit_log WHERE {where} ORDER BY id")
    return [dict(r) for r in rows]


async def test_upload_and_delete_rows(client, pool, message_id):
    resp = await client.post(UPLOAD, params={"message_id": str(message_id)}, data=png_bytes(),
                             headers={"Content-Type": "image/png", "User-Agent": "app/2.1",
                                      "X-Request-Id": "req-123"})
    assert resp.status == 201
    assert resp.headers["X-Request-Id"] == "req-123"
    media_id = (await resp.json())["id"]
    assert (await client.delete(f"/api/media/{media_id}")).status == 204
    assert await audit_rows(pool) == [
        {"actor": "test-admin", "action": "upload", "media_id": media_id,
         "message_id": message_id, "addr": "127.0.0.1", "user_agent": "app/2.1",
         "request_id": "req-123", "outcome": "ok"},
        {"actor": "test-admin", "action": "delete", "media_id": media_id,
         "message_id": message_id, "addr": "127.0.0.1", "user_agent": client_ua(),
         "request_id": (await audit_rows(pool, "action = 'delete'"))[0]["request_id"],
         "outcome": "ok"},
    ]
    assert len((await audit_rows(pool, "action = 'delete'"))[0]["request_id"]) == 32


async def test_a_deduplicated_upload_is_audited_as_an_upload(client, pool, message_id):
    # The same bytes twice (a forwarded photo): stored once, two media, two upload rows,
    # each naming its own media, exactly as two different files would.
    data = png_bytes()
    ids = []
    for _ in range(2):
        resp = await client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                                 headers={"Content-Type": "image/png"})
        assert resp.status == 201
        ids.append((await resp.json())["id"])
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(DISTINCT content_id) FROM media_files "
                                   "WHERE id = ANY($1::int[])", ids) == 1
    assert [(r["action"], r["media_id"], r["outcome"]) for r in await audit_rows(pool)] == [
        ("upload", ids[0], "ok"), ("upload", ids[1], "ok")]


def client_ua() -> str:
    from aiohttp.http import SERVER_SOFTWARE
    return SERVER_SOFTWARE


async def test_failed_actions_leave_failure_rows(client, pool, message_id):
    resp = await client.post(UPLOAD, params={"message_id": "424242"}, data=png_bytes(),
                             headers={"Content-Type": "image/png"})
    assert resp.status == 404
    resp = await client.post(UPLOAD, params={"message_id": str(message_id)},
                             data=b"\0not a media file at all",
                             headers={"Content-Type": "image/png"})
    assert resp.status == 415
    assert (await client.delete("/api/media/999")).status == 404
    rows = await audit_rows(pool)
    assert [(r["action"], r["message_id"], r["media_id"], r["outcome"]) for r in rows] == [
        ("upload", 424242, None, "message_not_found"),
        ("upload", message_id, None, "unsupported_media_type"),
        ("delete", None, 999, "media_not_found"),
    ]


async def test_an_upload_rolled_back_at_the_end_has_no_success_row(client, pool):
    # The file first, then a message id that does not exist: the store finds out in
    # the final UPDATE (foreign key), which rolls back with its audit INSERT.
    with aiohttp.MultipartWriter("form-data") as mp:
        part = mp.append(jpeg_bytes(20_000), {"Content-Type": "image/jpeg"})
        part.set_content_disposition("form-data", name="file", filename="a.jpg")
        part = mp.append("777777")
        part.set_content_disposition("form-data", name="message_id")
    resp = await client.post(UPLOAD, data=mp)
    assert resp.status == 404
    rows = await audit_rows(pool)
    assert [(r["action"], r["message_id"], r["outcome"]) for r in rows] == [
        ("upload", 777777, "message_not_found")]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0


async def test_the_audit_row_and_the_change_commit_together(store, pool, message_id):
    class FailsAfterWriting:
        """Writes its row, then fails: the transaction must take both back."""
        async def write(self, conn, **fields):
            await AuditEntry(actor="t", action="upload", **fields).write(conn)
            raise RuntimeError("after the audit row")

    up = await store.begin_upload(file_name="x.jpg", original_name="x.jpg",
                                  mime_type="image/jpeg", media_type="image")
    await up.write(jpeg_bytes(10_000))
    with pytest.raises(RuntimeError):
        await up.finish(message_id, audit=FailsAfterWriting())
    await up.abort()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_audit_log") == 0
        assert await conn.fetchval("SELECT count(*) FROM media_files "
                                   "WHERE upload_state = 'complete'") == 0


async def test_a_delete_rolled_back_keeps_the_file_and_has_no_row(store, pool, message_id):
    class Fails:
        async def write(self, conn, **fields):
            await AuditEntry(actor="t", action="delete", **fields).write(conn)
            raise RuntimeError("after the audit row")

    up = await store.begin_upload(file_name="x.jpg", original_name="x.jpg",
                                  mime_type="image/jpeg", media_type="image")
    await up.write(jpeg_bytes(10_000))
    rec = await up.finish(message_id)
    with pytest.raises(RuntimeError):
        await store.delete(rec.id, audit=Fails())
    assert (await store.stat(rec.id)).id == rec.id
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_audit_log") == 0


async def test_denied_access_is_audited_but_anonymous_noise_is_not(
        client, anon_client, client_as, pool, message_id):
    reader = await client_as("read")
    assert (await reader.delete("/api/media/1")).status == 403
    assert (await anon_client.get("/api/media/1",
                                  headers=bearer("msk_" + "Z" * 43))).status == 401
    assert (await anon_client.get("/api/media/serve/1?exp=1&sig=" + "A" * 43)).status == 403
    assert (await anon_client.get("/api/media/1")).status == 401     # no credential: no row
    rows = await audit_rows(pool, "action = 'access_denied'")
    assert [(r["actor"].startswith("test-read"), r["actor"], r["media_id"], r["outcome"])
            for r in rows] == [
        (True, rows[0]["actor"], 1, "403 forbidden"),
        # Credentials that are not valid are counted per minute, address and reason:
        # the media id (free for a client to vary) is not kept.
        (False, "unknown-key", None, "401 invalid_credentials"),
        (False, "signed-url", None, "403 invalid_signature"),
    ]


async def test_forwarded_for_is_believed_from_trusted_proxies_only(client, client_with, pool,
                                                                  message_id):
    spoof = {"X-Forwarded-For": "203.0.113.7", "Content-Type": "image/png"}
    params = {"message_id": str(message_id)}
    assert (await client.post(UPLOAD, params=params, data=png_bytes(),
                              headers=spoof)).status == 201
    behind = await client_with(security__trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    assert (await behind.post(UPLOAD, params=params, data=png_bytes(),
                              headers=spoof)).status == 201
    assert [r["addr"] for r in await audit_rows(pool)] == ["127.0.0.1", "203.0.113.7"]


async def test_get_audit_filters(client, pool, message_id):
    ids = []
    for _ in range(3):
        resp = await client.post(UPLOAD, params={"message_id": str(message_id)},
                                 data=png_bytes(), headers={"Content-Type": "image/png"})
        ids.append((await resp.json())["id"])
    assert (await client.delete(f"/api/media/{ids[0]}")).status == 204

    async def entries(**params):
        resp = await client.get("/api/audit", params={k: str(v) for k, v in params.items()})
        assert resp.status == 200, await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
        return (await resp.json())["entries"]

    everything = await entries()
    assert [(e["action"], e["media_id"]) for e in everything] == [
        ("delete", ids[0]), ("upload", ids[2]), ("upload", ids[1]), ("upload", ids[0])]
    assert everything[0]["client_addr"] == "127.0.0.1"
    assert [e["action"] for e in await entries(media_id=ids[0])] == ["delete", "upload"]
    assert [e["media_id"] for e in await entries(action="upload", limit=2)] == ids[:0:-1]
    assert await entries(since="2999-01-01T00:00:00Z") == []
    assert len(await entries(since="2000-01-01")) == 4
    for bad in ({"media_id": "x"}, {"limit": "0"}, {"limit": "100000"},
                {"since": "yesterday"}, {"action": "é"}):
        resp = await client.get("/api/audit", params=bad)
        assert resp.status == 400, bad
        assert (await resp.json())["error"] == "bad_request"


async def test_monitoring_queries_run(pool, client, message_id):
    from server.store.sqlfiles import Q
    assert (await client.post(UPLOAD, params={"message_id": str(message_id)}, data=png_bytes(),
                              headers={"Content-Type": "image/png"})).status == 201
    async with pool.acquire() as conn:
        per_day = await Q.audit_actions_per_key_per_day.fetch(conn, days=1)
        assert [(r["actor"], r["action"], r["actions"]) for r in per_day] == [
            ("test-admin", "upload", 1)]
        assert await Q.audit_denied_access.fetch(conn, days=1) == []
        last = await Q.audit_last_actions_on_media.fetch(conn, media_id=1)
        assert [r["action"] for r in last] == ["upload"]
