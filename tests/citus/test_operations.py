"""More of the service against a distributed store: resumable uploads (tus), search,
media_file_data() and the media_files_complete view, conditionals, the same bytes
from two messages, the heartbeat's reclaim of a dead instance's uploads."""
from __future__ import annotations

import base64
import hashlib
import uuid

import asyncpg

from server.store.sqlfiles import Q
from tests.citus.test_distribute import _upload_multipart, _upload_raw
from tests.dbutil import fetchval, new_message
from tests.media import jpeg_bytes

TUS = {"Tus-Resumable": "1.0.0"}


def _meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}"
                    for k, v in kw.items())


async def test_tus_upload_in_pieces(citus_client, distributed):
    message = await new_message(distributed.dsn)
    data = jpeg_bytes(20_000, seed=30)
    r = await citus_client.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": str(len(data)),
        "Upload-Metadata": _meta(message_id=message, filename="t.jpg")})
    assert r.status == 201, await r.text()
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    offset = 0
    for size in (7000, 7000, 6000):
        r = await citus_client.patch(url, data=data[offset:offset + size], headers={
            **TUS, "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset)})
        assert r.status == 204, await r.text()
        offset += size
    media_id = r.headers["Media-Id"]
    body = await (await citus_client.get(f"/api/media/serve/{media_id}")).read()
    assert body == data
    head = await citus_client.head(url, headers=TUS)
    assert head.headers["Media-Id"] == media_id


async def test_search_lists_media_from_every_shard(citus_client, distributed):
    message = await new_message(distributed.dsn)
    ids = {(await _upload_raw(citus_client, message, jpeg_bytes(1_500, seed=s)))["id"]
           for s in range(40, 48)}
    seen, cursor = [], None
    while True:
        q = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await (await citus_client.get(f"/api/media?{q}")).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))   # newest first, no repeats across pages


async def test_file_data_function_and_view_answer(citus_client, distributed):
    data = jpeg_bytes(8_000, seed=50)
    body = await _upload_multipart(citus_client, await new_message(distributed.dsn), data)
    expected = base64.b64encode(data).decode()
    assert await fetchval(distributed.dsn, "SELECT media_file_data($1)", body["id"]) == expected
    assert await fetchval(distributed.dsn, "SELECT file_data FROM media_files_complete "
                          "WHERE id = $1", body["id"]) == expected
    assert await fetchval(distributed.dsn, "SELECT media_file_data(-1)") is None


async def test_conditional_get_and_the_same_bytes_from_two_messages(citus_client, distributed):
    data = jpeg_bytes(6_000, seed=60)
    first = await _upload_raw(citus_client, await new_message(distributed.dsn), data)
    second = await _upload_raw(citus_client, await new_message(distributed.dsn), data)
    assert first["id"] != second["id"]
    r1 = await citus_client.get(first["url"])
    etag = r1.headers["ETag"]
    assert etag == (await citus_client.get(second["url"])).headers["ETag"]
    assert etag.strip('"') == hashlib.sha256(data).hexdigest()
    again = await citus_client.get(first["url"], headers={"If-None-Match": etag})
    assert again.status == 304



async def test_uploads_of_a_dead_instance_are_reclaimed(distributed):
    # The heartbeat's reclaim, on the cluster: rows made by the test, aged by hand.
    dead, live = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(distributed.dsn)
    try:
        await conn.execute("INSERT INTO media_instances (id, hostname, pid, last_seen) "
                           "VALUES ($1, 'a', 1, now() - interval '1 hour'), "
                           "($2, 'b', 2, now())", dead, live)
        ids = {}
        for owner in (dead, live):
            ids[owner] = await conn.fetchval(
                "INSERT INTO media_files (file_name, original_name, mime_type, media_type,"
                " chunk_size, instance_id, updated_at) VALUES ($1, 'x', 'image/jpeg', "
                "'image', 3, $2, now() - interval '1 hour') RETURNING id",
                uuid.uuid4().hex, owner)
        gone = await Q.reclaim_dead_instance_uploads.fetch(conn, dead_seconds=60, batch=100)
        gone_ids = {r["id"] for r in gone}
        assert ids[dead] in gone_ids and ids[live] not in gone_ids
        assert await conn.fetchval("SELECT count(*) FROM media_files WHERE id = $1",
                                   ids[live]) == 1
    finally:
        await conn.close()
