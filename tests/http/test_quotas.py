"""Quotas and upload rates per API key (server/hygiene/quotas.py): 413 quota_exceeded
found while streaming with nothing kept, 429 with Retry-After past the rate, usage
given back on delete, tokens counted against their issuer, GET /api/usage, and no
overshoot under parallel uploads of one key."""
from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest

from server.hygiene.quotas import set_quota
from tests.dbutil import bearer
from tests.media import jpeg_bytes

UPLOAD = "/api/media/upload-production"
KiB = 1024


@pytest.fixture
async def keyed(client, aiohttp_client, key_for, db_dsn):
    """``await keyed(name, **limits)``: a client of the test server with a new write
    key of that name and those limits."""
    async def make(name: str, scope: str = "write", **limits):
        key = await key_for(scope, name)
        conn = await asyncpg.connect(db_dsn)
        try:
            assert await set_quota(conn, name, **limits)
        finally:
            await conn.close()
        return await aiohttp_client(client.server, headers=bearer(key))
    return make


async def upload(client, message_id, data: bytes):
    return await client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                             headers={"Content-Type": "image/jpeg"})


async def usage(pool, name: str) -> dict:
    async with pool.acquire() as conn:   # test-only SQL: what the service recorded
        row = await conn.fetchrow(
            "SELECT u.bytes, u.files, u.reserved FROM key_usage u "
            "JOIN api_keys k ON k.id = u.key_id WHERE k.name = $1", name)
    return dict(row)


async def leftovers(pool) -> tuple[int, int]:
    async with pool.acquire() as conn:
        return (await conn.fetchval("SELECT count(*) FROM media_files "
                                    "WHERE upload_state = 'uploading'"),
                await conn.fetchval("SELECT count(*) FROM quota_reservations"))


async def test_over_the_byte_quota_is_413_and_nothing_is_kept(keyed, message_id, pool):
    c = await keyed("small", quota_bytes=40 * KiB)
    first = jpeg_bytes(30 * KiB, seed=1)
    r = await upload(c, message_id, first)
    assert r.status == 201
    assert await usage(pool, "small") == {"bytes": len(first), "files": 1, "reserved": 0}
    r = await upload(c, message_id, jpeg_bytes(30 * KiB, seed=2))
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
    assert await usage(pool, "small") == {"bytes": len(first), "files": 1, "reserved": 0}
    assert await leftovers(pool) == (0, 0)
    async with pool.acquire() as conn:
        outcomes = [r["outcome"] for r in await conn.fetch(
            "SELECT outcome FROM media_audit_log WHERE actor = 'small' ORDER BY id")]
    assert outcomes == ["ok", "quota_exceeded"]


async def test_a_large_upload_is_stopped_early(keyed, message_id, pool):
    c = await keyed("tiny", quota_bytes=16 * KiB)
    r = await upload(c, message_id, jpeg_bytes(4 * 1024 * KiB))
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
    assert await usage(pool, "tiny") == {"bytes": 0, "files": 0, "reserved": 0}
    assert await leftovers(pool) == (0, 0)


async def test_deleting_media_gives_its_share_back(keyed, message_id, pool, client):
    c = await keyed("giver", quota_bytes=40 * KiB)
    r = await upload(c, message_id, jpeg_bytes(30 * KiB))
    media_id = (await r.json())["id"]
    assert (await upload(c, message_id, jpeg_bytes(30 * KiB, seed=3))).status == 413
    assert (await c.delete(f"/api/media/{media_id}")).status == 204
    assert await usage(pool, "giver") == {"bytes": 0, "files": 0, "reserved": 0}
    assert (await upload(c, message_id, jpeg_bytes(30 * KiB, seed=3))).status == 201


async def test_the_file_quota(keyed, message_id, pool):
    c = await keyed("onefile", quota_files=1)
    assert (await upload(c, message_id, jpeg_bytes(2 * KiB))).status == 201
    r = await upload(c, message_id, jpeg_bytes(2 * KiB, seed=2))
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
    assert await usage(pool, "onefile") == {"bytes": 2 * KiB, "files": 1, "reserved": 0}


async def test_over_the_rate_is_429_with_retry_after(keyed, message_id, pool):
    c = await keyed("hasty", uploads_per_minute=2)
    statuses = [(await upload(c, message_id, jpeg_bytes(KiB, seed=i))).status
                for i in range(2)]
    r = await upload(c, message_id, jpeg_bytes(KiB, seed=9))
    if r.status == 201:   # the minute turned between two uploads: one more try
        r = await upload(c, message_id, jpeg_bytes(KiB, seed=10))
        statuses.append(201)
    assert statuses[:2] == [201, 201]
    assert r.status == 429 and (await r.json())["error"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_audit_log "
                                   "WHERE actor = 'hasty' AND outcome = 'rate_limited'") == 1


async def test_lifting_a_quota(keyed, message_id, db_dsn):
    c = await keyed("lifted", quota_bytes=0)
    assert (await upload(c, message_id, jpeg_bytes(KiB))).status == 413
    conn = await asyncpg.connect(db_dsn)
    try:
        await set_quota(conn, "lifted", quota_bytes=None)
    finally:
        await conn.close()
    assert (await upload(c, message_id, jpeg_bytes(KiB))).status == 201


async def test_tokens_count_against_the_key_that_issued_them(keyed, message_id, pool,
                                                             anon_client):
    c = await keyed("issuer", quota_bytes=40 * KiB)
    r = await c.post("/api/media/upload-tokens", json={"message_id": message_id})
    token = (await r.json())["token"]
    data = jpeg_bytes(30 * KiB)
    r = await anon_client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                               headers={"Content-Type": "image/jpeg", **bearer(token)})
    assert r.status == 201
    assert await usage(pool, "issuer") == {"bytes": len(data), "files": 1, "reserved": 0}
    r = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                               data=jpeg_bytes(30 * KiB, seed=5),
                               headers={"Content-Type": "image/jpeg", **bearer(token)})
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"


async def test_usage_route(keyed, message_id, client):
    c = await keyed("alice", quota_bytes=1024 * KiB, quota_files=10, uploads_per_minute=60)
    await keyed("bob")
    data = jpeg_bytes(5 * KiB)
    assert (await upload(c, message_id, data)).status == 201
    r = await c.get("/api/usage")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert await r.json() == {"key": "alice", "bytes": len(data), "files": 1,
                              "quota_bytes": 1024 * KiB, "quota_files": 10,
                              "uploads_per_minute": 60}
    assert (await c.get("/api/usage", params={"key": "bob"})).status == 403
    assert (await c.get("/api/usage", params={"all": "1"})).status == 403
    r = await client.get("/api/usage", params={"key": "bob"})   # the admin
    assert (await r.json())["key"] == "bob"
    names, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/usage", params=params)).json()
        names += [i["key"] for i in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert names == ["alice", "bob", "test-admin"]
    r = await client.get("/api/usage", params={"cursor": "bogus!"})
    assert r.status == 400 and (await r.json())["error"] == "invalid_cursor"


async def test_parallel_uploads_of_one_key_never_pass_its_quota(keyed, message_id, pool):
    # 12 uploads of 30 KiB at once against 100 KiB: each reserves its bytes batch by
    # batch (12 KiB with the tests' 3 KiB chunks); the quota's WHERE on the key's
    # usage row lets only what fits through, whatever the interleaving.
    quota = 100 * KiB
    c = await keyed("crowd", quota_bytes=quota)
    files = [jpeg_bytes(30 * KiB, seed=i) for i in range(12)]
    responses = await asyncio.gather(*(upload(c, message_id, f) for f in files))
    statuses = [r.status for r in responses]
    assert set(statuses) <= {201, 413} and 201 in statuses and 413 in statuses
    kept = sum(len(f) for f, s in zip(files, statuses) if s == 201)
    assert kept <= quota
    assert await usage(pool, "crowd") == {"bytes": kept, "files": statuses.count(201),
                                          "reserved": 0}
    assert await leftovers(pool) == (0, 0)
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT coalesce(sum(file_size), 0) FROM media_files "
                                     "WHERE key_id = (SELECT id FROM api_keys "
                                     "WHERE name = 'crowd')")
    assert stored == kept


TUS = {"Tus-Resumable": "1.0.0"}


async def tus_create(client, message_id, length):
    import base64
    meta = f"message_id {base64.b64encode(str(message_id).encode()).decode()}"
    return await client.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": str(length), "Upload-Metadata": meta})


async def test_tus_counts_its_rate_at_creation_and_its_bytes(keyed, message_id, pool):
    c = await keyed("resumer", quota_bytes=40 * KiB, uploads_per_minute=3)
    # Announced beyond the quota: refused before a byte is sent.
    r = await tus_create(c, message_id, 50 * KiB)
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
    data = jpeg_bytes(30 * KiB)
    r = await tus_create(c, message_id, len(data))
    assert r.status == 201
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    r = await c.patch(url, data=data, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert r.status == 204 and r.headers["Media-Id"]
    assert await usage(pool, "resumer") == {"bytes": len(data), "files": 1, "reserved": 0}
    # Three creations counted so far (the refused one too) ... unless the minute
    # turned meanwhile: then create until the rate is reached again.
    for _ in range(4):
        r = await tus_create(c, message_id, 5 * KiB)
        if r.status != 201:
            break
    assert r.status == 429 and (await r.json())["error"] == "rate_limited"
    assert r.headers["Tus-Resumable"] == "1.0.0" and r.headers["Retry-After"]


async def test_a_tus_patch_past_the_quota_is_refused_before_its_body(keyed, message_id):
    import base64
    c = await keyed("deferred", quota_bytes=40 * KiB)
    meta = f"message_id {base64.b64encode(str(message_id).encode()).decode()}"
    r = await c.post("/api/media/tus/", headers={**TUS, "Upload-Defer-Length": "1",
                                                 "Upload-Metadata": meta})
    assert r.status == 201
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    r = await c.patch(url, data=jpeg_bytes(50 * KiB), headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
    r = await c.head(url, headers=TUS)
    assert r.headers["Upload-Offset"] == "0"   # nothing of it kept


async def test_a_chunked_tus_patch_stops_at_the_quota_while_streaming(keyed, message_id,
                                                                      pool):
    import base64
    quota = 40 * KiB
    c = await keyed("streamer", quota_bytes=quota)
    meta = f"message_id {base64.b64encode(str(message_id).encode()).decode()}"
    r = await c.post("/api/media/tus/", headers={**TUS, "Upload-Defer-Length": "1",
                                                 "Upload-Metadata": meta})
    assert r.status == 201
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    octet = {**TUS, "Content-Type": "application/offset+octet-stream"}
    # Within the quota: kept as before.
    r = await c.patch(url, data=b"a" * (10 * KiB), headers={**octet, "Upload-Offset": "0"})
    assert r.status == 204 and r.headers["Upload-Offset"] == str(10 * KiB)
    assert await usage(pool, "streamer") == {"bytes": 0, "files": 0, "reserved": 0}

    sent = 0

    async def body():   # 64 MiB without a Content-Length, unless the server stops it
        nonlocal sent
        piece = b"b" * (64 * KiB)
        for _ in range(1024):
            sent += len(piece)
            yield piece

    try:
        r = await c.patch(url, data=body(), headers={**octet, "Upload-Offset": str(10 * KiB)})
        assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
    except aiohttp.ClientError:   # the server closed the connection before we read it
        pass
    # It stopped reading at the quota, not at the end of the body (what sat in the
    # sockets' buffers aside).
    assert sent < 16 * 1024 * KiB
    r = await c.head(url, headers=TUS)
    offset = int(r.headers["Upload-Offset"])
    batch = 3 * KiB * 4   # the tests' chunk size times WRITE_BATCH: one reservation step
    assert quota - batch < offset <= quota   # what fitted is kept, nothing past it
    assert await usage(pool, "streamer") == {"bytes": 0, "files": 0, "reserved": 0}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM quota_reservations") == 0
        outcomes = [r["outcome"] for r in await conn.fetch(
            "SELECT outcome FROM media_audit_log WHERE actor = 'streamer' ORDER BY id")]
    assert outcomes[-1] == "quota_exceeded"
    # Only what is left of the quota may still come: a PATCH within it goes on.
    r = await c.patch(url, data=b"c" * (quota - offset),
                      headers={**octet, "Upload-Offset": str(offset)})
    assert r.status == 204 and r.headers["Upload-Offset"] == str(quota)
    r = await c.patch(url, data=b"d", headers={**octet, "Upload-Offset": str(quota)})
    assert r.status == 413 and (await r.json())["error"] == "quota_exceeded"
